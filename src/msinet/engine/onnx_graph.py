"""MSI-Net as an ONNX graph, built straight from a weights file: no torch, no tracing.

The graph states the official operators directly: max pooling with stride 1 and one padded
row/column at the bottom/right (ONNX pads never win a max), bilinear `Resize` with
coordinate_transformation_mode="asymmetric" (TF1 `resize_bilinear`), and the per-image min-max
normalisation. Input `images`: (B, 3, H, W) float32 RGB 0..255, H and W multiples of 8, all
dynamic. Output `saliency`: (B, 1, H, W) in 0..1.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from msinet.arch import Conv, aspp_convs, decoder_convs, encoder_convs
from msinet.weights import WeightsMeta, load_arrays

OPSET = 17


class GraphBuilder:
    def __init__(self, tensors: dict[str, np.ndarray]) -> None:
        self.tensors = tensors
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._n = 0

    def name(self, hint: str) -> str:
        self._n += 1
        return f"{hint}_{self._n}"

    def const(self, name: str, value: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(value, name))
        return name

    def op(self, op_type: str, inputs: list[str], hint: str = "", exact: bool = False, **attrs):
        """Add a node; its name (and output) is `hint` as given when `exact`, else numbered."""
        out = hint if exact else self.name(hint or op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out

    def conv(self, x: str, c: Conv) -> str:
        """A convolution of the spec, TF "same" padding; named by its official TF scope."""
        w = self.tensors[f"{c.key}.weight"].astype(np.float32)
        b = self.tensors[f"{c.key}.bias"].astype(np.float32)
        pad = c.dilation * (c.kernel - 1) // 2
        y = self.op(
            "Conv",
            [x, self.const(f"{c.key}.weight", w), self.const(f"{c.key}.bias", b)],
            c.key.removeprefix("encoder.").replace(".", "/"),
            exact=True,
            kernel_shape=[c.kernel, c.kernel],
            pads=[pad] * 4,
            dilations=[c.dilation, c.dilation],
        )
        return self.op("Relu", [y]) if c.relu else y

    def upsample2x(self, x: str) -> str:
        scales = self.const(self.name("scales"), np.array([1, 1, 2, 2], np.float32))
        return self.op(
            "Resize",
            [x, "", scales],
            "resize_bilinear",
            mode="linear",
            coordinate_transformation_mode="asymmetric",
        )


def build_graph(tensors: dict[str, np.ndarray], meta: WeightsMeta) -> onnx.ModelProto:
    g = GraphBuilder(tensors)
    x = "images"
    if meta.input_order == "bgr":
        x = g.op("Gather", [x, g.const("bgr", np.array([2, 1, 0], np.int64))], "to_bgr", axis=1)
    mean = np.array(meta.mean, np.float32).reshape(1, 3, 1, 1)
    x = g.op("Sub", [x, g.const("mean", mean)], "sub_mean")

    config = meta.config()
    # Encoder: VGG16; pool4/pool5 keep the resolution, conv5 is dilated.
    pools = []
    for b, block in enumerate(encoder_convs(), start=1):
        for c in block:
            x = g.conv(x, c)
        if b <= 3:
            x = g.op("MaxPool", [x], f"pool{b}", kernel_shape=[2, 2], strides=[2, 2])
        else:
            x = g.op("MaxPool", [x], f"pool{b}", kernel_shape=[2, 2], strides=[1, 1],
                     pads=[0, 0, 1, 1])  # fmt: skip
        if b >= 3:
            pools.append(x)
    features = g.op("Concat", pools, "encoder_output", axis=1)  # (B, 1280, H/8, W/8)

    # ASPP
    aspp = aspp_convs(config)
    branches = [g.conv(features, aspp[f"conv1_{i}"]) for i in (1, 2, 3, 4)]
    context = g.op("ReduceMean", [features], "global_mean", axes=[2, 3], keepdims=1)
    context = g.conv(context, aspp["conv1_5"])
    branches.append(g.op("Expand", [context, g.op("Shape", [branches[0]])], "broadcast"))
    x = g.conv(g.op("Concat", branches, "aspp_concat", axis=1), aspp["conv2"])

    # Decoder: bilinear x2 before each of the first three convolutions.
    for i, c in enumerate(decoder_convs(config)):
        x = g.conv(g.upsample2x(x) if i < 3 else x, c)

    # Per-image min-max normalisation.
    x = g.op("Sub", [x, g.op("ReduceMin", [x], axes=[1, 2, 3], keepdims=1)])
    peak = g.op("ReduceMax", [x], axes=[1, 2, 3], keepdims=1)
    eps = g.const("eps", np.array(config.eps, np.float32))
    g.nodes.append(helper.make_node("Div", [x, g.op("Add", [peak, eps])], ["saliency"]))

    dims = ["batch", "height", "width"]
    graph = helper.make_graph(
        g.nodes,
        "msinet",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [dims[0], 3, *dims[1:]])],
        [helper.make_tensor_value_info("saliency", TensorProto.FLOAT, [dims[0], 1, *dims[1:]])],
        g.initializers,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="msinet"
    )
    model.ir_version = 8
    for k, v in meta.to_header().items():
        model.metadata_props.add(key=k, value=v)
    return model


def build_from_weights(path: str | os.PathLike) -> onnx.ModelProto:
    """A checked ONNX model of the weights file at `path` (its hash verified on reading),
    sealed with the hash of its own weights."""
    tensors, meta = load_arrays(path)
    model = build_graph(tensors, meta)
    model.metadata_props.add(key="source_content_sha256", value=_content_hash(path))
    onnx.checker.check_model(model)
    return seal(model)


# An .onnx file's own integrity: the hash of its initializers (the weights, float or int8),
# verified on loading as safetensors' content_sha256 is.
GRAPH_HASH_KEY = "graph_sha256"


def graph_hash(model: onnx.ModelProto) -> str:
    h = hashlib.sha256()
    for t in sorted(model.graph.initializer, key=lambda t: t.name):
        h.update(t.SerializeToString())
    return h.hexdigest()


def set_metadata(model: onnx.ModelProto, key: str, value: str) -> onnx.ModelProto:
    """Set (or replace) one metadata entry."""
    kept = [p for p in model.metadata_props if p.key != key]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    model.metadata_props.add(key=key, value=value)
    return model


def seal(model: onnx.ModelProto) -> onnx.ModelProto:
    """Record (or renew) the graph hash in the model's metadata."""
    return set_metadata(model, GRAPH_HASH_KEY, graph_hash(model))


def _content_hash(path: str | os.PathLike) -> str:
    from msinet.weights import read_header

    return read_header(path).get("content_sha256", "")


def meta_of(model: onnx.ModelProto) -> WeightsMeta:
    props = {p.key: p.value for p in model.metadata_props}
    return WeightsMeta.from_header(props)
