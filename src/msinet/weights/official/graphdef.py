"""Frozen GraphDefs and SavedModel graphs: their constants as arrays, through the
GraphDef/TensorProto definitions that `tensorboard` ships (no TensorFlow).
"""

from __future__ import annotations

import collections
import math
from pathlib import Path

import numpy as np

from msinet.weights.official.mapping import Found, expected_tf_shapes, official_key
from msinet.weights.store import WeightsError


def protos():
    try:
        from tensorboard.compat.proto import graph_pb2, meta_graph_pb2, types_pb2
    except ImportError as e:
        raise WeightsError(
            "reading official TF files needs the GraphDef definitions shipped by tensorboard: "
            "pip install 'msinet[official]'"
        ) from e
    return graph_pb2, meta_graph_pb2, types_pb2


def numpy_dtypes() -> dict[int, type]:
    """TF DataType -> numpy, for the official weights' types (float32, float16)."""
    _, _, types = protos()
    return {types.DT_FLOAT: np.float32, types.DT_HALF: np.float16}


def declared_shape(t) -> tuple[int, ...]:
    return tuple(d.size for d in t.tensor_shape.dim)


def tensor_to_array(t, name: str = "tensor") -> np.ndarray:
    """A TensorProto as numpy (float32/float16 only: the official weights' types), its data
    checked against its declared shape (which the caller has bounded) before allocating."""
    _, _, types = protos()
    dtypes = numpy_dtypes()
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


def varint(data: bytes, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        b = data[i]
        value |= (b & 0x7F) << shift
        i += 1
        if not b & 0x80:
            return value, i
        shift += 7


def fields(data: bytes, what: str):
    """(field number, value) pairs of a protobuf message: ints for varints, bytes for
    length-delimited fields, fixed-size fields skipped. For the few messages that no shipped
    package defines (SavedModel, BundleHeaderProto, BundleEntryProto)."""
    i = 0
    while i < len(data):
        key, i = varint(data, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, i = varint(data, i)
            yield field, value
        elif wire == 2:
            n, i = varint(data, i)
            yield field, data[i : i + n]
            i += n
        elif wire in (1, 5):
            i += 8 if wire == 1 else 4
        else:
            raise WeightsError(f"{what} is not a valid protobuf message")


def saved_model_graphs(data: bytes, path: Path) -> list:
    """MetaGraphDefs from a saved_model.pb: SavedModel is {1: schema version, 2: MetaGraphDef*}."""
    _, meta_graph_pb2, _ = protos()
    graphs = []
    try:
        for field, value in fields(data, str(path)):
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
