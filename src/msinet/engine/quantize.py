"""Static int8 quantization (QDQ, per-channel weights) calibrated on real images.

Weights use 7 bits (`reduce_range`): on CPUs without VNNI (AVX2, AVX-512 without VNNI) ONNX
Runtime's u8s8 kernels add pairs of u8 x s8 products in 16 bits (`vpmaddubsw`), which saturate
with 8-bit weights (255 * 127 * 2 > 32767) and gave maps at CC 0.93 against fp32 on an AVX2
EPYC; with 7-bit weights the sums fit (255 * 64 * 2 < 32767) and every CPU computes the same,
at the same speed. Measured in docs/engines.md. The file also carries a probe (engine/probe.py)
that checks it on the CPU it is loaded on.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from msinet.engine.probe import PROBE_IMAGES, PROBE_KEY, PROBE_SIZE, Probe
from msinet.imaging.decode import load_image
from msinet.imaging.files import written_whole
from msinet.imaging.preprocess import batch, preprocess

# Layers kept in float: the decoder's last convolutions shape the final map most directly
# (per-layer sensitivity, see docs/engines.md).
KEEP_FLOAT = ("decoder/conv3", "decoder/conv4")


def make_probe(model, images: list[Path], size: tuple[int, int] = PROBE_SIZE) -> Probe:
    """`images` at `size`, rounded to uint8, and the fp32 `model`'s maps of exactly those."""
    import onnxruntime as ort

    from msinet.engine.onnx import all_cores, session_options

    x = np.rint(batch([preprocess(load_image(p), size)[0] for p in images])).astype(np.uint8)
    session = ort.InferenceSession(model.SerializeToString(), session_options(all_cores()),
                                   providers=["CPUExecutionProvider"])  # fmt: skip
    maps = session.run(["saliency"], {"images": x.astype(np.float32)})[0][:, 0]
    return Probe(x, maps)


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
    probe_images: list[Path] | None = None,
) -> Path:
    """Write an int8 QDQ model of `weights` calibrated on `calibration` images, with a probe of
    `probe_images` (default: the first calibration images) for the self-check at load."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from msinet.weights.onnx_graph import build_from_weights, meta_of, seal

    if not calibration:
        raise ValueError("int8 quantization needs calibration images")
    model = build_from_weights(weights)
    meta = meta_of(model)
    methods = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
               "entropy": CalibrationMethod.Entropy}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        fp32, prepped = Path(tmp) / "fp32.onnx", Path(tmp) / "prepped.onnx"
        quantized_path = Path(tmp) / "int8.onnx"
        onnx.save(model, fp32)
        quant_pre_process(str(fp32), str(prepped), skip_symbolic_shape=True)
        quantize_static(
            str(prepped),
            str(quantized_path),
            ImageCalibration(calibration, tuple(meta.training_size)),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            reduce_range=True,
            nodes_to_exclude=list(keep_float),
            calibrate_method=methods[method],
        )
        quantized = onnx.load(str(quantized_path))
    del quantized.metadata_props[:]
    for p in model.metadata_props:
        quantized.metadata_props.add(key=p.key, value=p.value)
    probe = make_probe(model, probe_images or calibration[:PROBE_IMAGES])
    quantized.metadata_props.add(key=PROBE_KEY, value=probe.encode())
    note = f"int8 QDQ per-channel 7-bit weights (reduce_range), {method}, {len(calibration)} images"
    quantized.metadata_props.add(key="quantization", value=f"{note}, float: {','.join(keep_float)}")
    seal(quantized)
    with written_whole(output) as tmp:  # a failed or interrupted export leaves no file
        onnx.save(quantized, str(tmp))
    return Path(output)
