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

import collections
import math
import os
import re
from functools import lru_cache
from pathlib import Path

import numpy as np

from msinet.imaging.preprocess import SIZE_PRESETS
from msinet.model.arch import MSINetConfig, official_name, parameter_shapes
from msinet.weights.store import WeightsError, WeightsMeta, check_finite, save_arrays

OFFICIAL_MEAN = (103.939, 116.779, 123.68)
# The official graph subtracts the BGR means from RGB input without flipping the channels.
OFFICIAL_CONFIG = MSINetConfig(input_order="rgb", mean=OFFICIAL_MEAN)


@lru_cache(maxsize=1)
def expected_variables() -> dict[str, str]:
    """Official TF variable name -> our state-dict key, for every parameter."""
    return {official_name(k): k for k in parameter_shapes()}


@lru_cache(maxsize=1)
def expected_tf_shapes() -> dict[str, tuple[int, ...]]:
    """Official TF variable name -> its shape in TF's layout (kernels HWIO)."""
    hwio = (2, 3, 1, 0)  # OIHW -> HWIO
    return {official_name(k): tuple(s[i] for i in hwio) if len(s) == 4 else tuple(s)
            for k, s in parameter_shapes().items()}  # fmt: skip


# What TF appends to a variable's name: tensor index, frozen read ops, checkpoint attribute.
NAME_TAILS = ("/.ATTRIBUTES/VARIABLE_VALUE", "/Read/ReadVariableOp", "/ReadVariableOp")


def official_key(name: str, shape: tuple[int, ...] | None = None) -> tuple[str, int] | None:
    """The official variable a TF name holds, and how directly: 0 for the name itself; 1 for
    the name inside outer scopes (a TF2 function's); 2 for the name without its block scope,
    as Keras 3 names variables ("conv1_1/kernel"), which the declared `shape` decides between
    (conv1/conv1_1 or aspp/conv1_1: their shapes differ). Tails such as `:0` or
    `/.ATTRIBUTES/VARIABLE_VALUE` are dropped. None for anything else (optimizer slots)."""
    wanted = expected_variables()
    if ".OPTIMIZER_SLOT" in name:
        return None
    name = name.split(":", 1)[0]
    for tail in NAME_TAILS:
        name = name.removesuffix(tail)
    if name in wanted:
        return name, 0
    parts = name.split("/")
    for i in range(1, len(parts)):
        inner = "/".join(parts[i:])
        if inner in wanted:
            return inner, 1
    if shape is not None and len(parts) >= 2:
        shapes = expected_tf_shapes()
        fits = [w for w in wanted if w.endswith("/" + name) and shapes[w] == tuple(shape)]
        if len(fits) == 1:
            return fits[0], 2
    return None


class Found(dict):
    """Official name -> array, keeping the most direct of several candidates; a declared
    shape that does not fit MSI-Net is kept as the shape alone (never read or allocated)."""

    def __init__(self) -> None:
        super().__init__()
        self.rank: dict[str, int] = {}

    def offer(self, name: str, rank: int, value) -> None:
        if name in self and self.rank[name] < rank:
            return
        if name in self and self.rank[name] == rank and not _same(self[name], value):
            raise WeightsError(f"{name} appears twice with different values: ambiguous")
        self[name], self.rank[name] = value, rank

    def merge(self, other: Found) -> None:
        for name, value in other.items():
            self.offer(name, other.rank[name], value)


def _same(a, b) -> bool:
    if isinstance(a, tuple) or isinstance(b, tuple):
        return a == b
    return a.shape == b.shape and np.array_equal(a, b)


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


def declared_shape(t) -> tuple[int, ...]:
    return tuple(d.size for d in t.tensor_shape.dim)


def tensor_to_array(t, name: str = "tensor") -> np.ndarray:
    """A TensorProto as numpy (float32/float16 only: the official weights' types), its data
    checked against its declared shape (which the caller has bounded) before allocating."""
    _, _, types = _protos()
    dtypes = _numpy_dtypes()
    if t.dtype not in dtypes:
        raise WeightsError(f"{name}: unsupported tensor dtype {types.DataType.Name(t.dtype)}")
    dtype = dtypes[t.dtype]
    shape = declared_shape(t)
    n = math.prod(shape)
    if t.tensor_content:
        if len(t.tensor_content) != n * np.dtype(dtype).itemsize:
            raise WeightsError(f"{name}: {len(t.tensor_content)} bytes of content for a declared "
                               f"shape {shape} of {np.dtype(dtype).name}")  # fmt: skip
        return np.frombuffer(t.tensor_content, dtype=dtype).reshape(shape).copy()
    values = t.float_val if dtype is np.float32 else t.half_val
    if len(values) not in (1, n):
        raise WeightsError(f"{name}: {len(values)} values for a declared shape {shape}")
    a = np.asarray(values, np.float32) if dtype is np.float32 else (
        np.asarray(values, np.uint16).view(np.float16))  # fmt: skip
    if a.size == 1 and n > 1:  # TF stores a constant fill as one value
        a = np.full(n, a[0], dtype)
    return a.reshape(shape)


def graph_constants(graph) -> Found:
    """The Const nodes of a GraphDef that hold official variables: at the top level (TF1
    frozen graphs) and inside its function library (TF2 `tf.saved_model.save` with frozen
    constants). Each is read only if its declared shape is MSI-Net's."""
    shapes = expected_tf_shapes()
    found = Found()
    nodes = [*graph.node, *(n for f in graph.library.function for n in f.node_def)]
    for node in nodes:
        if node.op != "Const":
            continue
        t = node.attr["value"].tensor
        shape = declared_shape(t)
        if (key := official_key(node.name, shape)) is None:
            continue
        name, rank = key
        found.offer(name, rank, tensor_to_array(t, node.name) if shape == shapes[name] else shape)
    return found


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


def _saved_model_graphs(data: bytes, path: Path) -> list:
    """MetaGraphDefs from a saved_model.pb: SavedModel is {1: schema version, 2: MetaGraphDef*}."""
    _, meta_graph_pb2, _ = _protos()
    graphs = []
    try:
        for field, value in _fields(data, str(path)):
            if field == 2:
                mg = meta_graph_pb2.MetaGraphDef()
                mg.ParseFromString(value)
                graphs.append(mg)
    except WeightsError:
        raise
    except Exception as e:  # a cut varint (IndexError), protobuf's DecodeError
        raise WeightsError(f"{path} is not a valid SavedModel: {type(e).__name__}: {e}") from e
    if not graphs:
        raise WeightsError(f"{path} is not a valid SavedModel: it holds no MetaGraphDef")
    return graphs


def variable_names(mg) -> dict[str, str]:
    """Checkpoint key -> variable name, from a TF2 SavedModel's object graph: Keras and
    tf.Module models key their variables by object paths ("layer_with_weights-0/kernel/
    .ATTRIBUTES/VARIABLE_VALUE"), and only the graph says which variable each one is."""
    nodes = mg.object_graph_def.nodes
    out: dict[str, str] = {}
    # breadth first, children in order: TF keys each object by its first path in that order
    seen, todo = {0}, collections.deque([(0, ())] if len(nodes) else [])
    while todo:
        i, path = todo.popleft()
        node = nodes[i]
        if node.WhichOneof("kind") == "variable" and path:
            out["/".join(path) + "/.ATTRIBUTES/VARIABLE_VALUE"] = node.variable.name
        for child in node.children:
            if child.node_id not in seen and child.node_id < len(nodes):
                seen.add(child.node_id)
                todo.append((child.node_id, (*path, child.local_name)))
    return out


# --- tensor bundles (checkpoints, SavedModel variables/) ---------------------------------------

TABLE_MAGIC = 0xDB4775248B80FB57


def _block_entries(data: bytes, offset: int, size: int) -> list[tuple[bytes, bytes]]:
    """Key/value pairs of one table block (prefix-compressed keys, restart array at the end)."""
    if offset + size >= len(data):
        raise ValueError("a block runs past the end of the file")
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
    try:
        return _table_entries(data)
    except (IndexError, ValueError) as e:  # offsets or varints that run past the data
        raise WeightsError(f"{path} is a damaged TensorFlow checkpoint index ({e})") from e


def _table_entries(data: bytes) -> dict[bytes, bytes]:
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


def read_bundle(prefix: Path, names: dict[str, str] | None = None) -> Found:
    """The official variables of a tensor bundle `prefix.index` + `prefix.data-*-of-*`.
    `names` maps checkpoint keys to variable names where they differ (TF2 object graphs).
    Every entry's shape and extent are checked before its bytes are read."""
    _, _, types = _protos()
    dtypes = _numpy_dtypes()
    shapes = expected_tf_shapes()
    index = prefix.with_name(prefix.name + ".index")
    if not index.is_file():
        raise WeightsError(f"{index} not found")
    table = read_table(index)
    header = dict(_fields(table.get(b"", b""), "the checkpoint header"))
    num_shards = int(header.get(1, 1))  # BundleHeaderProto.num_shards
    found = Found()
    for raw_key, value in table.items():
        key = raw_key.decode(errors="replace")
        variable = (names or {}).get(key, key)
        if official_key(variable) is None and not _short_name(names, key):
            continue  # not ours (optimizer slots, counters): its entry is not even parsed
        e = _bundle_entry(value)
        official = official_key(variable, e["shape"])
        if official is None:
            continue
        name, rank = official
        if e["dtype"] not in dtypes:
            raise WeightsError(f"{key}: unsupported dtype {types.DataType.Name(e['dtype'])}")
        dtype = np.dtype(dtypes[e["dtype"]])
        if e["shape"] != shapes[name]:
            found.offer(name, rank, e["shape"])
            continue
        size, offset = int(e["size"]), int(e["offset"])
        if size != math.prod(e["shape"]) * dtype.itemsize:
            raise WeightsError(f"{key}: {size} bytes for a declared shape {e['shape']}")
        data = prefix.with_name(f"{prefix.name}.data-{int(e['shard_id']):05d}-of-"
                                f"{num_shards:05d}")  # fmt: skip
        if not data.is_file():
            raise WeightsError(f"{data} not found (checkpoint data shard)")
        if offset + size > data.stat().st_size:
            raise WeightsError(f"{data} is truncated: {key} needs bytes {offset}..{offset + size}"
                               f" of {data.stat().st_size}")  # fmt: skip
        with open(data, "rb") as f:
            f.seek(offset)
            raw = f.read(size)
        found.offer(name, rank, np.frombuffer(raw, dtype=dtype).reshape(e["shape"]).copy())
    return found


def _short_name(names: dict[str, str] | None, key: str) -> bool:
    """Whether a checkpoint key's variable has a name that only its shape can place."""
    return bool(names) and key in names and "/" in names[key] and ".OPTIMIZER_SLOT" not in key


def read_official(path: str | os.PathLike) -> Found:
    """The official variables (TF names, TF layouts) from a frozen .pb, a SavedModel dir (TF1
    or TF2, constants or variables) or a checkpoint."""
    graph_pb2, _, _ = _protos()
    path = Path(path)
    if path.is_dir():
        pb = path / "saved_model.pb"
        if not pb.is_file():
            raise WeightsError(f"{path} has no saved_model.pb: not a SavedModel")
        found, names = Found(), {}
        for mg in _saved_model_graphs(pb.read_bytes(), pb):
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


def to_msinet(found: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """TF names/HWIO -> our keys/OIHW, with every missing or mis-shaped variable named."""
    names = expected_variables()
    shapes = expected_tf_shapes()
    missing = sorted(set(names) - set(found))
    wrong = [f"{n}: {v} (MSI-Net: {shapes[n]})" for n, v in found.items() if isinstance(v, tuple)]
    if wrong:
        also = f"; {len(missing)} more variables missing" if missing else ""
        raise WeightsError(f"shape mismatch for the MSI-Net architecture: {wrong}{also}")
    if missing:
        raise WeightsError(f"not an MSI-Net graph: missing {len(missing)} variables: {missing}")
    out = {}
    for tf_name, key in names.items():
        a = found[tf_name]
        a = a.transpose(3, 2, 0, 1) if a.ndim == 4 else a  # HWIO -> OIHW
        out[key] = np.ascontiguousarray(a, dtype=np.float32)
    check_finite(out, "the official weights")
    return out


# The official file names, matched whole: the only names that say which dataset a file was
# trained on. The release's frozen graphs are model_<dataset>_<cpu|gpu>.pb; its training code
# (MSINET.save) writes checkpoints model_<dataset>_<device>.ckpt (.index, .data-*, .meta).
OFFICIAL_FILE = re.compile(r"model_(salicon|mit1003|cat2000|dutomron|pascals|osie|fiwi)_(cpu|gpu)"
                           r"(\.pb|\.ckpt(\.index|\.meta|\.data-\d+-of-\d+)?)")  # fmt: skip


def dataset_of(path: Path, given: str | None) -> str:
    """The dataset the weights were trained on: the flag, else the official release's file
    name; the graphs themselves do not record it, and guessing picks the wrong input size."""
    if given:
        return given
    m = OFFICIAL_FILE.fullmatch(path.name)
    if m is None:
        raise WeightsError(f"cannot tell which dataset {path.name} was trained on (it is not "
                           "named as the official files, model_<dataset>_<cpu|gpu>.pb or .ckpt): "
                           "pass --dataset (salicon, mit1003, cat2000, dutomron, pascals, "
                           "osie or fiwi)")  # fmt: skip
    return m[1]


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
