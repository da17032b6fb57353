"""Where an engine runs: `cpu` (the default), `cuda`, `cuda:N` or `mps`.

The torch engine runs on any torch device; the fp32 ONNX engine on CUDA through ONNX
Runtime's CUDA execution provider (`onnxruntime-gpu`, `pip install 'msinet[gpu]'`). The int8
engine is a CPU engine (its kernels and self-check are the CPU's). A device that is not there
is one line naming what is missing, never a silent run on the CPU.
"""

from __future__ import annotations

import re

DEVICE_HELP = "cpu (default), cuda, cuda:N or mps: where the engine runs (msinet[gpu] for onnx)"
PATTERN = re.compile(r"cpu|mps|cuda(:\d+)?")


class DeviceError(ValueError):
    """The device asked for is not usable here."""


def parse_device(spec: str | None) -> str:
    spec = (spec or "cpu").strip().lower()
    if not PATTERN.fullmatch(spec):
        raise DeviceError(f"device {spec!r}: give cpu, cuda, cuda:N or mps")
    return spec


def index_of(device: str) -> int:
    return int(device.partition(":")[2] or 0)


def torch_device(device: str) -> str:
    """`device` checked against this torch build and machine."""
    import torch

    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            build = "a CUDA build" if torch.version.cuda else "a CPU-only build"
            raise DeviceError(f"device {device}: torch sees no CUDA GPU here (torch "
                              f"{torch.__version__}, {build}); run on --device cpu")  # fmt: skip
        if index_of(device) >= torch.cuda.device_count():
            raise DeviceError(f"device {device}: this machine has "
                              f"{torch.cuda.device_count()} CUDA GPU(s)")  # fmt: skip
    if device == "mps" and not torch.backends.mps.is_available():
        raise DeviceError("device mps: torch sees no Apple GPU here; run on --device cpu")
    return device


def onnx_providers(device: str) -> list:
    """ONNX Runtime's execution providers for `device`, CPU last (for the rare operator the
    GPU provider lacks)."""
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device == "mps":
        raise DeviceError("device mps: the ONNX engines run on cpu or cuda; use --engine torch")
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        raise DeviceError(f"device {device}: this onnxruntime has no CUDA execution provider "
                          "(pip install 'msinet[gpu]', or --engine torch)")  # fmt: skip
    return [("CUDAExecutionProvider", {"device_id": index_of(device)}), "CPUExecutionProvider"]
