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

import numpy as np

from msinet.arch import MSINetConfig, official_name, parameter_shapes
from msinet.preprocess import SIZE_PRESETS
from msinet.weights import WeightsError, WeightsMeta, save_arrays

OFFICIAL_MEAN = (103.939, 116.779, 123.68)
# The official graph subtracts the BGR means from RGB input without flipping the channels.
OFFICIAL_CONFIG = MSINetConfig(input_order="rgb", mean=OFFICIAL_MEAN)


def expected_variables() -> dict[str, str]:
    """Official TF variable name -> our state-dict key, for every parameter."""
    return {official_name(k): k for k in parameter_shapes()}


def _protos():
    try:
        from tensorboard.compat.proto import graph_pb2, meta_graph_pb2, types_pb2
    except ImportError as e:
        raise WeightsError(
            "reading official TF files needs the GraphDef definitions shipped by tensorboard: "
            "pip install 'msinet[official]'"
        ) from e
    return graph_pb2, meta_graph_pb2, types_pb2


def _numpy_dtypes() -> dict[int, type]:
    """TF DataType -> numpy, for the official weights' types (float32, float16)."""
    _, _, types = _protos()
    return {types.DT_FLOAT: np.float32, types.DT_HALF: np.float16}


def tensor_to_array(t) -> np.ndarray:
    """A TensorProto as numpy (float32/float16 only: the official weights' types)."""
    _, _, types = _protos()
    dtypes = _numpy_dtypes()
    if t.dtype not in dtypes:
        raise WeightsError(f"unsupported tensor dtype {types.DataType.Name(t.dtype)}")
    dtype = dtypes[t.dtype]
    shape = tuple(d.size for d in t.tensor_shape.dim)
    n = int(np.prod(shape)) if shape else 1
    if t.tensor_content:
        a = np.frombuffer(t.tensor_content, dtype=dtype).copy()
    elif dtype is np.float32:
        a = np.asarray(t.float_val, np.float32)
    else:
        a = np.asarray(t.half_val, np.uint16).view(np.float16)
    if a.size == 1 and n > 1:  # TF stores a constant fill as one value
        a = np.full(n, a[0], dtype)
    return a.reshape(shape)


def graph_constants(graph) -> dict[str, np.ndarray]:
    """Const nodes of a GraphDef whose names are official variable names."""
    wanted = set(expected_variables())
    out = {}
    for node in graph.node:
        if node.op == "Const" and node.name in wanted:
            out[node.name] = tensor_to_array(node.attr["value"].tensor)
    return out


def _varint(data: bytes, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        b = data[i]
        value |= (b & 0x7F) << shift
        i += 1
        if not b & 0x80:
            return value, i
        shift += 7


def _fields(data: bytes, what: str):
    """(field number, value) pairs of a protobuf message: ints for varints, bytes for
    length-delimited fields, fixed-size fields skipped. For the few messages that no shipped
    package defines (SavedModel, BundleHeaderProto, BundleEntryProto)."""
    i = 0
    while i < len(data):
        key, i = _varint(data, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(data, i)
            yield field, value
        elif wire == 2:
            n, i = _varint(data, i)
            yield field, data[i : i + n]
            i += n
        elif wire in (1, 5):
            i += 8 if wire == 1 else 4
        else:
            raise WeightsError(f"{what} is not a valid protobuf message")


def _saved_model_graphs(data: bytes) -> list:
    """MetaGraphDefs from a saved_model.pb: SavedModel is {1: schema version, 2: MetaGraphDef*}."""
    _, meta_graph_pb2, _ = _protos()
    graphs = []
    for field, value in _fields(data, "saved_model.pb"):
        if field == 2:
            mg = meta_graph_pb2.MetaGraphDef()
            mg.ParseFromString(value)
            graphs.append(mg)
    return graphs


# --- tensor bundles (checkpoints, SavedModel variables/) ---------------------------------------

TABLE_MAGIC = 0xDB4775248B80FB57


def _block_entries(data: bytes, offset: int, size: int) -> list[tuple[bytes, bytes]]:
    """Key/value pairs of one table block (prefix-compressed keys, restart array at the end)."""
    block = data[offset : offset + size]
    if data[offset + size] != 0:
        raise WeightsError("compressed checkpoint index blocks are not supported")
    n_restarts = int.from_bytes(block[-4:], "little")
    end = len(block) - 4 * (n_restarts + 1)
    entries, key, i = [], b"", 0
    while i < end:
        shared, i = _varint(block, i)
        unshared, i = _varint(block, i)
        length, i = _varint(block, i)
        key = key[:shared] + block[i : i + unshared]
        i += unshared
        entries.append((key, block[i : i + length]))
        i += length
    return entries


def read_table(path: Path) -> dict[bytes, bytes]:
    """Every entry of a LevelDB-format table (the checkpoint's .index)."""
    data = path.read_bytes()
    if len(data) < 48 or int.from_bytes(data[-8:], "little") != TABLE_MAGIC:
        raise WeightsError(f"{path} is not a TensorFlow checkpoint index (bad table footer)")
    footer = data[-48:]
    _, i = _varint(footer, 0)  # metaindex offset
    _, i = _varint(footer, i)  # metaindex size
    index_offset, i = _varint(footer, i)
    index_size, _ = _varint(footer, i)
    table = {}
    for _, handle in _block_entries(data, index_offset, index_size):
        offset, j = _varint(handle, 0)
        size, _ = _varint(handle, j)
        table.update(_block_entries(data, offset, size))
    return table


def _bundle_entry(value: bytes) -> dict[str, object]:
    """BundleEntryProto: dtype=1, shape=2, shard_id=3, offset=4, size=5 (crc32c=6 unchecked)."""
    from tensorboard.compat.proto import tensor_shape_pb2

    entry: dict[str, object] = {"dtype": 0, "shape": (), "shard_id": 0, "offset": 0, "size": 0}
    names = {1: "dtype", 3: "shard_id", 4: "offset", 5: "size"}
    for field, v in _fields(value, "a checkpoint index entry"):
        if field in names:
            entry[names[field]] = v
        elif field == 2:
            shape = tensor_shape_pb2.TensorShapeProto()
            shape.ParseFromString(v)
            entry["shape"] = tuple(d.size for d in shape.dim)
        elif field == 7:
            raise WeightsError("partitioned (sliced) checkpoint tensors are not supported")
    return entry


def read_bundle(prefix: Path) -> dict[str, np.ndarray]:
    """The official variables of a tensor bundle `prefix.index` + `prefix.data-*-of-*`."""
    _, _, types = _protos()
    dtypes = _numpy_dtypes()
    index = prefix.with_name(prefix.name + ".index")
    if not index.is_file():
        raise WeightsError(f"{index} not found")
    table = read_table(index)
    header = dict(_fields(table.get(b"", b""), "the checkpoint header"))
    num_shards = int(header.get(1, 1))  # BundleHeaderProto.num_shards
    shards: dict[int, bytes] = {}
    wanted = set(expected_variables())
    out = {}
    for key, value in table.items():
        name = key.decode(errors="replace")
        if name not in wanted:
            continue
        e = _bundle_entry(value)
        if e["dtype"] not in dtypes:
            raise WeightsError(f"{name}: unsupported dtype {types.DataType.Name(e['dtype'])}")
        shard = int(e["shard_id"])
        if shard not in shards:
            data = prefix.with_name(f"{prefix.name}.data-{shard:05d}-of-{num_shards:05d}")
            if not data.is_file():
                raise WeightsError(f"{data} not found (checkpoint data shard)")
            shards[shard] = data.read_bytes()
        raw = shards[shard][int(e["offset"]) : int(e["offset"]) + int(e["size"])]
        out[name] = np.frombuffer(raw, dtype=dtypes[e["dtype"]]).reshape(e["shape"]).copy()
    return out


def read_official(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The official variables (TF names, TF layouts) from a frozen .pb or a SavedModel dir."""
    graph_pb2, _, _ = _protos()
    path = Path(path)
    if path.is_dir():
        pb = path / "saved_model.pb"
        if not pb.is_file():
            raise WeightsError(f"{path} has no saved_model.pb: not a SavedModel")
        found: dict[str, np.ndarray] = {}
        for mg in _saved_model_graphs(pb.read_bytes()):
            found.update(graph_constants(mg.graph_def))
        if not found and (path / "variables" / "variables.index").is_file():
            found = read_bundle(path / "variables" / "variables")
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


def to_msinet(found: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """TF names/HWIO -> our keys/OIHW, with every missing or mis-shaped variable named."""
    names = expected_variables()
    missing = sorted(set(names) - set(found))
    if missing:
        raise WeightsError(f"not an MSI-Net graph: missing {len(missing)} variables: {missing}")
    shapes = parameter_shapes()
    out, wrong = {}, []
    for tf_name, key in names.items():
        a = found[tf_name]
        a = a.transpose(3, 2, 0, 1) if a.ndim == 4 else a  # HWIO -> OIHW
        if tuple(a.shape) != shapes[key]:
            wrong.append(f"{tf_name}: {tuple(found[tf_name].shape)}")
        out[key] = np.ascontiguousarray(a, dtype=np.float32)
    if wrong:
        raise WeightsError(f"shape mismatch for the MSI-Net architecture: {wrong}")
    return out


def guess_dataset(path: Path) -> str:
    m = re.search(r"model_([a-z0-9]+)_(?:cpu|gpu)", path.name)
    return m[1] if m else "salicon"


def convert(path: str | os.PathLike, output: str | os.PathLike, dataset: str | None = None):
    """Write msinet weights (input_order=rgb) from an official file; returns the metadata."""
    path = Path(path)
    dataset = dataset or guess_dataset(path)
    meta = WeightsMeta.from_config(
        OFFICIAL_CONFIG,
        training_size=SIZE_PRESETS.get(dataset, (240, 320)),
        dataset=dataset,
        version="official",
        description=f"official MSI-Net weights converted from {path.name}",
    )
    save_arrays(output, to_msinet(read_official(path)), meta)
    return meta
