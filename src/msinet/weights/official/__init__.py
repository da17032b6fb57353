"""Import the official MSI-Net weights (alexanderkroner/saliency) without TensorFlow.

Reads frozen GraphDefs (`model_<dataset>_<cpu|gpu>.pb`) and SavedModels whose graph holds the
weights as constants, using the GraphDef/TensorProto definitions that the `tensorboard`
package ships (`msinet[official]`). Kernels are HWIO in both the CPU (NHWC) and GPU (NCHW)
graphs; they become OIHW. The official input convention (RGB minus [103.939, 116.779,
123.68], no channel flip) is recorded as `input_order=rgb`, so msinet feeds the weights the
way they were trained.

TF1 checkpoints (`.index` + `.data-00000-of-00001`) and SavedModels that keep their weights in
`variables/` are tensor bundles: the `.index` is a LevelDB-format table mapping each tensor name
to a BundleEntryProto (dtype, shape, shard, offset, size), read here directly.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from msinet.imaging.preprocess import SIZE_PRESETS
from msinet.weights.official.bundle import read_bundle
from msinet.weights.official.graphdef import (
    graph_constants,
    protos,
    saved_model_graphs,
    variable_names,
)
from msinet.weights.official.mapping import OFFICIAL_CONFIG, Found, dataset_of, to_msinet
from msinet.weights.store import WeightsError, WeightsMeta, save_arrays


def read_official(path: str | os.PathLike) -> Found:
    """The official variables (TF names, TF layouts) from a frozen .pb, a SavedModel dir (TF1
    or TF2, constants or variables) or a checkpoint."""
    graph_pb2, _, _ = protos()
    path = Path(path)
    if path.is_dir():
        pb = path / "saved_model.pb"
        if not pb.is_file():
            raise WeightsError(f"{path} has no saved_model.pb: not a SavedModel")
        found, names = Found(), {}
        for mg in saved_model_graphs(pb.read_bytes(), pb):
            found.merge(graph_constants(mg.graph_def))
            names.update(variable_names(mg))
        if not found and (path / "variables" / "variables.index").is_file():
            found = read_bundle(path / "variables" / "variables", names)
        return found
    if path.name.endswith(".index") or ".data-" in path.name:  # a checkpoint file: its prefix
        return read_bundle(path.with_name(re.sub(r"\.(index|data-\d+-of-\d+)$", "", path.name)))
    if not path.is_file() and path.with_name(path.name + ".index").is_file():
        return read_bundle(path)
    if not path.is_file():
        raise WeightsError(f"{path} not found")
    graph = graph_pb2.GraphDef()
    try:
        graph.ParseFromString(path.read_bytes())
    except Exception as e:  # protobuf's DecodeError and friends
        raise WeightsError(f"{path} is not a TensorFlow GraphDef: {e}") from e
    return graph_constants(graph)


def convert(path: str | os.PathLike, output: str | os.PathLike, dataset: str | None = None):
    """Write msinet weights (input_order=rgb) from an official file; returns the metadata."""
    path = Path(path)
    dataset = dataset_of(path, dataset)
    meta = WeightsMeta.from_config(
        OFFICIAL_CONFIG,
        training_size=SIZE_PRESETS.get(dataset, (240, 320)),
        dataset=dataset,
        version="official",
        description=f"official MSI-Net weights converted from {path.name}",
    )
    try:
        found = read_official(path)
    except (WeightsError, FileNotFoundError):
        raise
    except Exception as e:  # any other malformation the readers met: one line, never a trace
        raise WeightsError(f"{path} is not a readable official MSI-Net file "
                           f"({type(e).__name__}: {e})") from e  # fmt: skip
    save_arrays(output, to_msinet(found), meta)
    return meta
