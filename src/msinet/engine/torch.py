"""Eager PyTorch inference on the CPU or any torch device, in fp32 or with autocast (`amp`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from msinet.engine.base import check_batch
from msinet.engine.device import torch_device
from msinet.weights.torch_io import load_model

# autocast dtypes: mixed precision on GPUs (and CPUs with bf16 units); its fidelity against fp32
# is checked like int8's (tests/unit/engine, docs/scaling.md)
AMP = {None: None, "bf16": torch.bfloat16, "fp16": torch.float16}


class TorchEngine:
    name = "torch"
    self_check = None

    def __init__(self, weights: Path, threads: int | None = None, device: str = "cpu",
                 amp: str | None = None) -> None:  # fmt: skip
        if amp not in AMP:
            raise ValueError(f"amp must be one of {', '.join(a for a in AMP if a)}, got {amp!r}")
        if threads:
            torch.set_num_threads(threads)
        self.threads = torch.get_num_threads()  # process-wide in torch
        self.device = torch.device(torch_device(device))
        self.amp = amp
        self.model = load_model(weights).to(self.device)
        self.meta = self.model.weights_meta

    @torch.inference_mode()
    def predict(self, batch: np.ndarray) -> np.ndarray:
        check_batch(batch)
        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)
        with torch.autocast(self.device.type, dtype=AMP[self.amp], enabled=self.amp is not None):
            out = self.model(x)[:, 0]
        return out.float().cpu().numpy()
