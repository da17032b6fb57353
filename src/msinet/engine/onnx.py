"""ONNX Runtime inference: fp32 graphs built from weights files, or saved (e.g. int8) graphs."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from msinet.engine import check_batch
from msinet.weights import WeightsError


def load_onnx(path: Path):
    """An ONNX model: built from msinet weights (.safetensors) or read from an .onnx file."""
    import onnx

    from msinet.engine.onnx_graph import build_from_weights

    if path.suffix == ".onnx":
        if not path.is_file():
            raise WeightsError(f"ONNX file not found: {path}")
        try:
            model = onnx.load(str(path))
            onnx.checker.check_model(model)
        except Exception as e:  # onnx raises several unrelated types for bad files
            raise WeightsError(f"{path} is not a valid ONNX model: {e}") from e
        if not any(p.key == "format" and p.value == "msinet" for p in model.metadata_props):
            raise WeightsError(f"{path} is not an msinet ONNX model (no msinet metadata)")
        return model
    return build_from_weights(path)


def session_options(threads: int | None):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads or os.cpu_count() or 1
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Idle ORT threads would spin for a while after each run, taking the cores that decoding,
    # resizing and PNG encoding need in a server; let them sleep instead.
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return so


class OnnxEngine:
    """`onnx` (fp32) from a weights file, or any msinet .onnx file (e.g. the int8 one)."""

    def __init__(self, path: Path, threads: int | None = None, name: str = "onnx") -> None:
        import onnxruntime as ort

        from msinet.engine.onnx_graph import meta_of

        model = load_onnx(Path(path))
        self.name = name
        self.meta = meta_of(model)
        self.session = ort.InferenceSession(
            model.SerializeToString(), session_options(threads), providers=["CPUExecutionProvider"]
        )

    def predict(self, batch: np.ndarray) -> np.ndarray:
        check_batch(batch)
        x = np.ascontiguousarray(batch, dtype=np.float32)
        return self.session.run(["saliency"], {"images": x})[0][:, 0]
