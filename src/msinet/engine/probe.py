"""The int8 self-check: a probe (inputs and their fp32 maps) carried in the .onnx file's
metadata, run when the file is loaded.

An int8 graph that is exact on one CPU can be wrong on another (ONNX Runtime's int8 kernels
differ by instruction set; see msinet.engine.cpu), so the file checks itself on the CPU it runs on.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

PROBE_KEY = "probe"
# Below this CC (worst probe image) against the fp32 maps the int8 engine is not trusted.
PROBE_MIN_CC = 0.995
# Eight small images: one image's fault can hide in a single map (docs/engines.md).
PROBE_SIZE = (96, 128)
PROBE_IMAGES = 8


@dataclass(frozen=True)
class Probe:
    images: np.ndarray  # (N, 3, H, W) uint8, model input (RGB 0..255)
    maps: np.ndarray  # (N, H, W) float32, the fp32 model's maps of `images`

    def encode(self) -> str:
        buf = io.BytesIO()
        np.savez_compressed(buf, images=self.images, maps=self.maps.astype(np.float16))
        return base64.b64encode(buf.getvalue()).decode("ascii")

    @classmethod
    def decode(cls, text: str) -> Probe:
        with np.load(io.BytesIO(base64.b64decode(text)), allow_pickle=False) as z:
            return cls(z["images"], z["maps"].astype(np.float32))

    def cc(self, predict: Callable[[np.ndarray], np.ndarray]) -> float:
        """Worst correlation between `predict`'s maps of the probe images and the fp32 maps."""
        got = predict(self.images.astype(np.float32))
        ccs = [np.corrcoef(g.ravel(), m.ravel())[0, 1] for g, m in zip(got, self.maps, strict=True)]
        ccs = np.nan_to_num(np.asarray(ccs, np.float64), nan=-1.0)  # NaN maps fail the check
        return float(ccs.min())


@dataclass(frozen=True)
class SelfCheck:
    """What the int8 self-check found on this CPU, and what runs as a result."""

    cpu: str
    probe_cc: float | None  # None: the file carries no probe
    passed: bool
    running: str  # "int8", or the fallback that runs instead

    def summary(self) -> str:
        if self.probe_cc is None:
            return f"int8 file carries no probe: not checked on this CPU ({self.cpu})"
        verdict = "passed" if self.passed else f"FAILED (< {PROBE_MIN_CC})"
        text = f"int8 self-check {verdict}: CC {self.probe_cc:.4f} against fp32 on {self.cpu}"
        return text if self.running == "int8" else f"{text}; running {self.running} instead"

    def as_dict(self) -> dict:
        return {**asdict(self), "min_cc": PROBE_MIN_CC}
