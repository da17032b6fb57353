"""Inference engines: each takes the same preprocessed batch and returns the same maps.

Input: (B, 3, H, W) float32 RGB in 0..255, H and W multiples of 8 (what `preprocess.batch`
makes). Output: (B, H, W) float32 maps, min-max normalised per image to 0..1.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from msinet.weights import WeightsMeta

if TYPE_CHECKING:
    from msinet.engine.probe import SelfCheck


class Engine(Protocol):
    name: str
    meta: WeightsMeta
    self_check: SelfCheck | None  # the int8 self-check on this CPU; None for other engines

    def predict(self, batch: np.ndarray) -> np.ndarray: ...


ENGINES = ("torch", "onnx", "onnx-int8")


# The fastest engine that passes the fidelity bar (msinet bench, docs/engines.md): int8 ONNX
# Runtime for the shipped model, fp32 ONNX Runtime for other weights files.
def auto_engine(weights: str | os.PathLike | None) -> str:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return "torch"
    return "onnx-int8" if weights is None else "onnx"


def check_batch(batch: np.ndarray) -> None:
    """Engines refuse what preprocessing can never produce, naming the problem."""
    if batch.ndim != 4 or batch.shape[1] != 3:
        raise ValueError(f"expected a (B, 3, H, W) batch, got shape {batch.shape}")
    if batch.shape[2] % 8 or batch.shape[3] % 8:
        raise ValueError(f"H and W must be multiples of 8, got {batch.shape[2]}x{batch.shape[3]}")


def load_engine(name: str, weights: str | os.PathLike, threads: int | None = None) -> Engine:
    """`weights`: an msinet .safetensors file (torch, onnx) or an msinet .onnx file (onnx,
    onnx-int8, which needs a quantized graph from `msinet export --format onnx --int8`)."""
    weights = Path(weights)
    if name == "torch":
        from msinet.engine.torch import TorchEngine

        return TorchEngine(weights, threads=threads)
    if name == "onnx":
        from msinet.engine.onnx import OnnxEngine

        return OnnxEngine(weights, threads=threads)
    if name == "onnx-int8":
        from msinet.engine.onnx import load_int8

        if weights.suffix != ".onnx":
            raise ValueError(
                "the onnx-int8 engine runs a quantized .onnx file "
                "(msinet export --format onnx --int8), not " + str(weights)
            )
        return load_int8(weights, threads=threads)
    raise ValueError(f"unknown engine {name!r}; available: {', '.join(ENGINES)}")
