"""TF1 tensor bundles (checkpoints, SavedModel `variables/`): the `.index` is a LevelDB-format
table mapping each tensor name to a BundleEntryProto (dtype, shape, shard, offset, size).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from msinet.weights.official.graphdef import fields, numpy_dtypes, protos, varint
from msinet.weights.official.mapping import Found, expected_tf_shapes, official_key
from msinet.weights.store import WeightsError

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
        shared, i = varint(block, i)
        unshared, i = varint(block, i)
        length, i = varint(block, i)
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
    _, i = varint(footer, 0)  # metaindex offset
    _, i = varint(footer, i)  # metaindex size
    index_offset, i = varint(footer, i)
    index_size, _ = varint(footer, i)
    table = {}
    for _, handle in _block_entries(data, index_offset, index_size):
        offset, j = varint(handle, 0)
        size, _ = varint(handle, j)
        table.update(_block_entries(data, offset, size))
    return table


def _bundle_entry(value: bytes) -> dict[str, object]:
    """BundleEntryProto: dtype=1, shape=2, shard_id=3, offset=4, size=5 (crc32c=6 unchecked)."""
    from tensorboard.compat.proto import tensor_shape_pb2

    entry: dict[str, object] = {"dtype": 0, "shape": (), "shard_id": 0, "offset": 0, "size": 0}
    names = {1: "dtype", 3: "shard_id", 4: "offset", 5: "size"}
    for field, v in fields(value, "a checkpoint index entry"):
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
    _, _, types = protos()
    dtypes = numpy_dtypes()
    shapes = expected_tf_shapes()
    index = prefix.with_name(prefix.name + ".index")
    if not index.is_file():
        raise WeightsError(f"{index} not found")
    table = read_table(index)
    header = dict(fields(table.get(b"", b""), "the checkpoint header"))
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
