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
from functools import lru_cache

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from msinet.model.arch import Conv, MSINetConfig, aspp_convs, decoder_convs, encoder_convs
from msinet.weights.store import WeightsMeta, load_arrays

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
FULL = "full:"  # the hash covers the whole model; files sealed before it cover initializers


def write_onnx(weights: str | os.PathLike, output: str | os.PathLike) -> None:
    """The fp32 ONNX file of a weights file, written whole."""
    from msinet.imaging.files import written_whole

    with written_whole(output) as tmp:
        onnx.save(build_from_weights(weights), str(tmp))


def graph_hash(model: onnx.ModelProto) -> str:
    """sha256 of everything the model computes with and says about itself: every node (type,
    inputs, outputs, attributes, in order), initializer, graph input and output, and metadata
    entry but the hash itself."""
    h = hashlib.sha256()
    g = model.graph
    for part in (*g.node, *sorted(g.initializer, key=lambda t: t.name), *g.input, *g.output):
        h.update(part.SerializeToString(deterministic=True))
    for p in sorted(model.metadata_props, key=lambda p: p.key):
        if p.key != GRAPH_HASH_KEY:
            h.update(f"{p.key}={p.value}\n".encode())
    return FULL + h.hexdigest()


def initializer_hash(model: onnx.ModelProto) -> str:
    """The hash of files sealed before `graph_hash` covered the whole model."""
    h = hashlib.sha256()
    for t in sorted(model.graph.initializer, key=lambda t: t.name):
        h.update(t.SerializeToString())
    return h.hexdigest()


# Looked through when comparing structures: int8's quantize/dequantize pairs, and Relu, which
# ONNX Runtime's QDQ quantization folds into the following quantized range (a uint8 range
# starting at 0 is a Relu). A Relu turned into anything else is still a foreign node.
LOOKED_THROUGH = ("QuantizeLinear", "DequantizeLinear", "Relu")
# Attributes at their ONNX defaults, which some writers spell out and others leave out.
DEFAULT_ATTRS = {("auto_pad", b"NOTSET"), ("group", 1), ("ceil_mode", 0), ("storage_order", 0),
                 ("strides", (1, 1)), ("dilations", (1, 1)), ("start", 0),
                 ("cubic_coeff_a", -0.75), ("exclude_outside", 0), ("extrapolation_value", 0.0),
                 ("nearest_mode", b"round_prefer_floor")}  # fmt: skip


def structure(model: onnx.ModelProto) -> str:
    """What the graph computes, with names, node order and weights left out: a hash over the
    output's computation, each node hashed from its type, its attributes (defaults dropped)
    and what feeds each input in order (another node's hash, a parameter, the input);
    LOOKED_THROUGH nodes stand for what feeds them."""
    g = model.graph
    params = {t.name for t in g.initializer}
    inputs = {i.name for i in g.input}
    made_by = {out: node for node in g.node for out in node.output}
    memo: dict[str, str] = {}

    def sig(name: str, depth: int = 0) -> str:
        if not name:
            return "none"
        if name in params:
            return "param"
        if name in inputs:
            return "input"
        if name in memo:
            return memo[name]
        node = made_by.get(name)
        if node is None or depth > 500:
            return "unknown"
        if node.op_type in LOOKED_THROUGH:
            memo[name] = sig(node.input[0], depth + 1)
            return memo[name]
        attrs = ((a.name, helper.get_attribute_value(a)) for a in node.attribute)
        attrs = ((k, tuple(v) if isinstance(v, list) else v) for k, v in attrs)
        kept = tuple(sorted(a for a in attrs if a not in DEFAULT_ATTRS))
        feeds = tuple(sig(i, depth + 1) for i in node.input)
        memo[name] = hashlib.sha256(repr((node.op_type, kept, feeds)).encode()).hexdigest()
        return memo[name]

    return "|".join(sig(o.name) for o in g.output)


@lru_cache(maxsize=8)
def reference_structure(config: MSINetConfig) -> str:
    """The structure of the graph msinet builds for this configuration (no weights needed;
    built once per configuration, not at every load)."""
    from msinet.model.arch import parameter_shapes

    stand_ins = {k: np.zeros(1, np.float32) for k in parameter_shapes(config)}
    return structure(build_graph(stand_ins, WeightsMeta.from_config(config)))


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
    from msinet.weights.store import read_header

    return read_header(path).get("content_sha256", "")


def props(model: onnx.ModelProto) -> dict[str, str]:
    """An ONNX model's metadata (msinet's: format, config, hashes, calibration) as a dict."""
    return {p.key: p.value for p in model.metadata_props}


def meta_of(model: onnx.ModelProto) -> WeightsMeta:
    return WeightsMeta.from_header(props(model))
