"""Inference engines: each takes the same preprocessed batch and returns the same maps.

Input: (B, 3, H, W) float32 RGB in 0..255, H and W multiples of 8 (what `preprocess.batch`
makes). Output: (B, H, W) float32 maps, min-max normalised per image to 0..1.
"""

from __future__ import annotations

import os
from pathlib import Path

from msinet.engine.base import Engine, check_batch
from msinet.engine.device import DeviceError, parse_device
from msinet.weights.files import check_file, is_onnx

__all__ = [
    "ENGINES",
    "DeviceError",
    "Engine",
    "auto_engine",
    "check_batch",
    "check_weights",
    "load_engine",
    "under_load",
]


def missing(extra: str, e: ModuleNotFoundError) -> ModuleNotFoundError:
    """The same error, saying what to install (from Python as from the CLI)."""
    return ModuleNotFoundError(f"{e.name} is not installed; pip install 'msinet[{extra}]'",
                               name=e.name)  # fmt: skip


def _torch(weights: Path, threads: int | None, device: str, amp: str | None) -> Engine:
    try:
        from msinet.engine.torch import TorchEngine
    except ModuleNotFoundError as e:
        raise missing("torch", e) from None
    return TorchEngine(weights, threads=threads, device=device, amp=amp)


def _onnxruntime() -> None:
    try:
        import onnxruntime  # noqa: F401
    except ModuleNotFoundError as e:
        raise missing("onnx", e) from None


def _onnx(weights: Path, threads: int | None, device: str, amp: str | None) -> Engine:
    _onnxruntime()
    from msinet.engine.onnx import OnnxEngine

    _no_amp("onnx", amp)
    return OnnxEngine(weights, threads=threads, device=device)


def _onnx_int8(weights: Path, threads: int | None, device: str, amp: str | None) -> Engine:
    _onnxruntime()
    from msinet.engine.onnx import load_int8

    _kind_for("onnx-int8", weights)
    _no_amp("onnx-int8", amp)
    if device != "cpu":
        raise DeviceError(f"device {device}: the onnx-int8 engine runs on the CPU; on a GPU "
                          "use --engine onnx (msinet[gpu]) or --engine torch")  # fmt: skip
    return load_int8(weights, threads=threads)


def _no_amp(name: str, amp: str | None) -> None:
    if amp:
        raise ValueError(f"--amp {amp} is the torch engine's mixed precision, not {name}'s")


def _kind_for(name: str, weights: Path) -> None:
    """The file kind an engine reads: torch a .safetensors file, onnx-int8 an .onnx file."""
    if name == "onnx-int8" and not is_onnx(weights):
        raise ValueError("the onnx-int8 engine runs a quantized .onnx file (msinet export "
                         "--format onnx --int8), not " + str(weights))  # fmt: skip
    if name == "torch" and is_onnx(weights):
        raise ValueError(f"the torch engine runs .safetensors weights, not {weights}")


def check_weights(name: str, weights: str | os.PathLike) -> None:
    """What `load_engine` checks of the file (its kind, seal, hashes, architecture), without
    building the model: for a server whose workers or replicas each load their own."""
    weights = Path(weights)
    _kind_for(name, weights)
    check_file(weights)


# The engines by name: the one list that the CLI's choices, the server's settings, the metrics'
# labels and the shipped files (weights.store) read. Adding an engine is an entry here.
BUILDERS = {"torch": _torch, "onnx": _onnx, "onnx-int8": _onnx_int8}
ENGINES = tuple(BUILDERS)


# The fastest engine that passes the fidelity bar (msinet bench, docs/engines.md): on the CPU,
# int8 ONNX Runtime for the shipped model, fp32 ONNX Runtime for other weights files; on a GPU,
# ONNX Runtime's CUDA provider where onnxruntime-gpu is installed, else torch.
def auto_engine(weights: str | os.PathLike | None, device: str = "cpu") -> str:
    try:
        import onnxruntime as ort
    except ImportError:
        return "torch"
    if device == "cpu":
        return "onnx-int8" if weights is None else "onnx"
    cuda = "CUDAExecutionProvider" in ort.get_available_providers()
    return "onnx" if device.startswith("cuda") and cuda else "torch"


def load_engine(name: str, weights: str | os.PathLike, threads: int | None = None, *,
                device: str = "cpu", amp: str | None = None) -> Engine:  # fmt: skip
    """`weights`: an msinet .safetensors file (torch, onnx) or an msinet .onnx file (onnx,
    onnx-int8, which needs a quantized graph from `msinet export --format onnx --int8`);
    `device` (engine/device.py) and `amp` (torch's autocast: bf16 or fp16) where it runs."""
    if name not in BUILDERS:
        raise ValueError(f"unknown engine {name!r}; available: {', '.join(ENGINES)}")
    return BUILDERS[name](Path(weights), threads, parse_device(device), amp)


def under_load(engine: Engine) -> tuple[Engine | None, int]:
    """How a server runs calls side by side on `engine`: (the engine for them, how many at
    once). ONNX Runtime: a single-threaded sibling, one call per thread, so each core runs a
    whole call (docs/serving.md); a lone call still takes every thread. Torch, whose threads
    are process-wide: the engine itself (None), two calls, the second filling the first's
    serial operators."""
    from msinet.engine.onnx import OnnxEngine

    if isinstance(engine, OnnxEngine):
        return engine.single_threaded(), engine.threads
    return None, 2
