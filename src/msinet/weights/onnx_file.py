"""The ONNX file kind: an msinet .onnx file opened and checked (its seal, its weights, its graph
against the architecture), or the graph built from a .safetensors file. The graph itself is
built, sealed and read (metadata, structure) in onnx_graph.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from msinet.weights.onnx_graph import props
from msinet.weights.store import WeightsError


def load_onnx(path: Path):
    """An ONNX model: built from msinet weights (.safetensors) or read from an .onnx file."""
    import onnx

    from msinet.weights.onnx_graph import GRAPH_HASH_KEY, build_from_weights

    if path.suffix == ".onnx":
        if not path.is_file():
            raise WeightsError(f"ONNX file not found: {path}")
        try:
            model = onnx.load(str(path))
            onnx.checker.check_model(model)
        except Exception as e:  # onnx raises several unrelated types for bad files
            raise WeightsError(f"{path} is not a valid ONNX model: {e}") from e
        found = props(model)
        if found.get("format") != "msinet":
            raise WeightsError(f"{path} is not an msinet ONNX model (no msinet metadata)")
        check_graph_hash(model, found.get(GRAPH_HASH_KEY), path)
        check_contents(model, path)
        return model
    return build_from_weights(path)


def check_graph_hash(model, recorded: str | None, path: Path) -> None:
    """An .onnx file is what was exported: its `graph_sha256` (of the whole model; of the
    initializers for files sealed before that), or for a shipped file its pinned hash."""
    from msinet.weights.onnx_graph import FULL, GRAPH_HASH_KEY, graph_hash, initializer_hash
    from msinet.weights.store import SHIPPED, file_sha256

    if recorded is None:
        if file_sha256(path) in {s.int8_sha256 for s in SHIPPED.values()}:
            return
        raise WeightsError(f"{path} carries no {GRAPH_HASH_KEY}; refusing unverified weights "
                           "(re-export it with `msinet export --format onnx`)")  # fmt: skip
    actual = graph_hash(model) if recorded.startswith(FULL) else initializer_hash(model)
    if actual != recorded:
        raise WeightsError(f"{path} is corrupted: its graph or weights do not match "
                           f"{GRAPH_HASH_KEY} in its metadata")  # fmt: skip


def check_contents(model, path: Path) -> None:
    """What no seal can vouch for (anyone can reseal a file): every float weight finite, and
    the graph MSI-Net's own, node for node, whatever its weights (a Relu made a Sigmoid, a
    layer skipped, a foreign graph given msinet metadata are refused in one line)."""
    from onnx import TensorProto, numpy_helper

    from msinet.weights.onnx_graph import meta_of, reference_structure, structure

    floats = (TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE, TensorProto.BFLOAT16)
    for t in model.graph.initializer:
        if t.data_type in floats and not np.isfinite(numpy_helper.to_array(t)).all():
            raise WeightsError(f"{path}: weight {t.name} holds NaN or infinite values")
    try:
        expected = reference_structure(meta_of(model).config())
    except (ValueError, KeyError, TypeError) as e:
        raise WeightsError(f"{path}: its msinet metadata is unreadable ({e})") from None
    if structure(model) != expected:
        raise WeightsError(f"{path}: its graph is not MSI-Net's (operators or connections "
                           "differ from the architecture)")  # fmt: skip
