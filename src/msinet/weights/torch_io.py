"""MSI-Net weights files <-> the torch model: load, save, and start from VGG16."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open

from msinet.model.net import MSINet
from msinet.weights.store import (
    WeightsMeta,
    check_state,
    load_arrays,
    read_header,
    save_arrays,
)


def save_model(
    model: MSINet, path: str | os.PathLike, meta: WeightsMeta, dtype: str = "float32"
) -> str:
    """Save a model's parameters (float32 or float16) with metadata; returns the content hash."""
    tensors = {k: v.detach().cpu().numpy().astype(dtype) for k, v in model.state_dict().items()}
    return save_arrays(path, tensors, meta)


def load_model(path: str | os.PathLike) -> MSINet:
    """Build an MSINet whose input convention and weights come from the file."""
    tensors, meta = load_arrays(path)  # checked: hash, names, shapes, finite values
    model = MSINet(meta.config())
    state = {k: torch.from_numpy(v.astype(np.float32)) for k, v in tensors.items()}
    model.load_state_dict(state)
    model.weights_meta = meta  # type: ignore[attr-defined]
    return model.eval()


def init_from_vgg16(model: MSINet, path: str | os.PathLike) -> None:
    """Load VGG16 conv weights (keys conv1_1.weight … conv5_3.bias, OIHW) into the encoder."""
    path = Path(path)
    read_header(path)  # clear error for a missing or non-safetensors file
    with safe_open(str(path), "np") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    encoder = model.encoder.state_dict()
    remapped = {f"{k.split('_')[0]}.{k}": v for k, v in tensors.items()}  # conv1.conv1_1.weight
    check_state(remapped, {k: tuple(v.shape) for k, v in encoder.items()})
    state = {k: torch.from_numpy(v.astype(np.float32)) for k, v in remapped.items()}
    model.encoder.load_state_dict(state)
