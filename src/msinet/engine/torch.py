"""Eager PyTorch inference on the CPU (or any torch device)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from msinet.engine.base import check_batch
from msinet.weights.torch_io import load_model


class TorchEngine:
    name = "torch"
    self_check = None

    def __init__(self, weights: Path, threads: int | None = None, device: str = "cpu") -> None:
        if threads:
            torch.set_num_threads(threads)
        self.threads = torch.get_num_threads()  # process-wide in torch
        self.device = torch.device(device)
        self.model = load_model(weights).to(self.device)
        self.meta = self.model.weights_meta

    @torch.inference_mode()
    def predict(self, batch: np.ndarray) -> np.ndarray:
        check_batch(batch)
        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)
        return self.model(x)[:, 0].cpu().numpy()
