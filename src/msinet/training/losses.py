"""Training losses on batches of maps shaped (B, 1, H, W)."""

from __future__ import annotations

import torch


def kld_loss(target: torch.Tensor, pred: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """The official MSI-Net loss: each map / (eps + its sum), then
    sum P * log(eps + P / (eps + Q)) per image, averaged over the batch. `pred` is the
    min-max normalised output, as in the official graph."""
    p = target / (eps + target.sum(dim=(1, 2, 3), keepdim=True))
    q = pred / (eps + pred.sum(dim=(1, 2, 3), keepdim=True))
    return (p * torch.log(eps + p / (eps + q))).sum(dim=(1, 2, 3)).mean()


def cc_loss(target: torch.Tensor, pred: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """1 - Pearson correlation per image, averaged."""
    t = target.flatten(1) - target.flatten(1).mean(1, keepdim=True)
    p = pred.flatten(1) - pred.flatten(1).mean(1, keepdim=True)
    cc = (t * p).sum(1) / (eps + t.norm(dim=1) * p.norm(dim=1))
    return (1 - cc).mean()


def nss_loss(fixations: torch.Tensor, pred: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """-NSS: the z-scored prediction's mean over fixated pixels (`fixations` > 0), averaged."""
    p = pred.flatten(1)
    z = (p - p.mean(1, keepdim=True)) / (eps + p.std(1, keepdim=True))
    f = (fixations.flatten(1) > 0).to(z.dtype)
    return -((z * f).sum(1) / f.sum(1).clamp_min(1)).mean()
