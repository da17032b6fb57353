"""Static int8 quantization (QDQ, per-channel weights) calibrated on real images."""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from msinet.image import load_image
from msinet.preprocess import batch, preprocess

# Layers kept in float: the decoder's last convolutions shape the final map most directly
# (per-layer sensitivity, see docs/engines.md).
KEEP_FLOAT = ("decoder/conv3", "decoder/conv4")


class ImageCalibration:
    """Feeds preprocessed real images to ONNX Runtime's calibrator, one at a time."""

    def __init__(self, images: Iterable[Path], size: tuple[int, int]) -> None:
        self.images = iter(list(images))
        self.size = size

    def get_next(self) -> dict[str, np.ndarray] | None:
        path = next(self.images, None)
        if path is None:
            return None
        x, _ = preprocess(load_image(path), self.size)
        return {"images": batch([x])}


def quantize_int8(
    weights: str | Path,
    calibration: list[Path],
    output: str | Path,
    keep_float: Iterable[str] = KEEP_FLOAT,
    method: str = "minmax",
) -> Path:
    """Write an int8 QDQ model of `weights` calibrated on `calibration` images."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from msinet.engine.onnx_graph import build_from_weights, meta_of

    if not calibration:
        raise ValueError("int8 quantization needs calibration images")
    model = build_from_weights(weights)
    meta = meta_of(model)
    methods = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
               "entropy": CalibrationMethod.Entropy}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        fp32, prepped = Path(tmp) / "fp32.onnx", Path(tmp) / "prepped.onnx"
        onnx.save(model, fp32)
        quant_pre_process(str(fp32), str(prepped), skip_symbolic_shape=True)
        quantize_static(
            str(prepped),
            str(output),
            ImageCalibration(calibration, tuple(meta.training_size)),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=list(keep_float),
            calibrate_method=methods[method],
        )
    quantized = onnx.load(str(output))
    del quantized.metadata_props[:]
    for p in model.metadata_props:
        quantized.metadata_props.add(key=p.key, value=p.value)
    note = f"int8 QDQ per-channel, {method}, {len(calibration)} images"
    quantized.metadata_props.add(key="quantization", value=f"{note}, float: {','.join(keep_float)}")
    onnx.save(quantized, str(output))
    return Path(output)
