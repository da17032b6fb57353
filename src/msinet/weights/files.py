"""The two weights file kinds in one place: msinet .safetensors files and the .onnx files
exported from them. Everything that must tell them apart (reading metadata, checking a file,
the hash of the float weights behind it, writing a density calibration into it) asks here."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from msinet.weights.store import WeightsError, WeightsMeta, load_arrays, read_header, save_arrays


def is_onnx(path: str | os.PathLike) -> bool:
    return Path(path).suffix == ".onnx"


def read_meta(path: str | os.PathLike) -> WeightsMeta:
    """A file's metadata, without building an engine (an .onnx file is checked whole)."""
    if is_onnx(path):
        from msinet.weights.onnx_file import load_onnx
        from msinet.weights.onnx_graph import meta_of

        return meta_of(load_onnx(Path(path)))
    return WeightsMeta.from_header(read_header(path))


def check_file(path: str | os.PathLike) -> None:
    """Seal, hashes and architecture checked, nothing built: for servers whose workers or
    replicas each load their own copy."""
    if is_onnx(path):
        from msinet.weights.onnx_file import load_onnx

        load_onnx(Path(path))
    else:
        load_arrays(path)


def source_hash(path: str | os.PathLike) -> str:
    """The content hash of the float weights behind a file: its own for .safetensors, the one
    it was exported from for .onnx."""
    if is_onnx(path):
        from msinet.weights.onnx_file import load_onnx
        from msinet.weights.onnx_graph import props

        return props(load_onnx(Path(path))).get("source_content_sha256", "")
    return read_header(path).get("content_sha256", "")


def write_density(path: str | os.PathLike, density, source: str) -> None:
    """Write a density calibration into the metadata of a file of the model it was fitted for
    (`source`: that model's content hash); the file is replaced whole."""
    path = Path(path)
    if is_onnx(path):
        import onnx

        from msinet.imaging.files import written_whole
        from msinet.weights.onnx_file import load_onnx
        from msinet.weights.onnx_graph import props, seal, set_metadata

        model = load_onnx(path)
        if props(model).get("source_content_sha256") != source:
            raise WeightsError(f"{path} was not made from the calibrated weights (its "
                               "source_content_sha256 differs)")  # fmt: skip
        with written_whole(path) as tmp:
            onnx.save(seal(set_metadata(model, "density", density.to_json())), str(tmp))
        return
    if read_header(path).get("content_sha256") != source:  # before reading the tensors
        raise WeightsError(f"{path} holds other weights than the calibrated ones")
    tensors, meta = load_arrays(path)
    save_arrays(path, tensors, replace(meta, density=density))
