"""Official-format files built here (frozen GraphDef, SavedModel) with known random weights;
msinet's output after conversion equals an independent computation of the official graph."""

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("tensorboard", reason="the msinet[official] extra")
from tensorboard.compat.proto import graph_pb2, meta_graph_pb2, types_pb2

from msinet.cli import main
from msinet.imaging.decode import load_image
from msinet.imaging.preprocess import batch, preprocess
from msinet.weights.official.mapping import OFFICIAL_MEAN, expected_variables
from msinet.weights.store import WeightsError
from msinet.weights.torch_io import load_model


def official_weights(seed=0) -> dict[str, np.ndarray]:
    """Random weights in the official names and HWIO layout."""
    from msinet.model.net import MSINet

    shapes = {k: tuple(v.shape) for k, v in MSINet().state_dict().items()}
    rng = np.random.default_rng(seed)
    out = {}
    for tf_name, key in expected_variables().items():
        s = shapes[key]
        hwio = (s[2], s[3], s[1], s[0]) if len(s) == 4 else s
        fan_in = np.prod(hwio[:3]) if len(s) == 4 else 1
        out[tf_name] = (rng.normal(size=hwio) * np.sqrt(2 / fan_in)).astype(np.float32)
        if len(s) == 1:
            out[tf_name] = (rng.normal(size=s) * 0.01).astype(np.float32)
    return out


def graph_def(weights, data_format="NHWC", half=False) -> graph_pb2.GraphDef:
    """A frozen graph: the weights as Const nodes named like the variables, plus the ops."""
    g = graph_pb2.GraphDef()
    x = g.node.add(name="input", op="Placeholder")
    x.attr["dtype"].type = types_pb2.DT_FLOAT
    for name, value in weights.items():
        n = g.node.add(name=name, op="Const")
        v = value.astype(np.float16 if half else np.float32)
        n.attr["dtype"].type = types_pb2.DT_HALF if half else types_pb2.DT_FLOAT
        t = n.attr["value"].tensor
        t.dtype = n.attr["dtype"].type
        for d in v.shape:
            t.tensor_shape.dim.add(size=d)
        t.tensor_content = v.tobytes()
        if name.endswith("/kernel"):
            c = g.node.add(name=name.rsplit("/", 1)[0] + "/Conv2D", op="Conv2D",
                           input=["input", name])  # fmt: skip
            c.attr["data_format"].s = data_format.encode()
    g.node.add(name="output", op="RealDiv", input=["decoder/conv4/Conv2D", "eps"])
    return g


def tf1_upsample2x(x: np.ndarray) -> np.ndarray:
    """resize_bilinear(align_corners=False, half_pixel_centers=False), written out (NCHW)."""
    h, w = x.shape[-2:]
    ys, xs = np.arange(2 * h) / 2, np.arange(2 * w) / 2
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    dy, dx = (ys - y0)[:, None], (xs - x0)[None, :]
    top = x[..., y0, :][..., x0] + (x[..., y0, :][..., x1] - x[..., y0, :][..., x0]) * dx
    bot = x[..., y1, :][..., x0] + (x[..., y1, :][..., x1] - x[..., y1, :][..., x0]) * dx
    return top + (bot - top) * dy


def official_forward(w: dict[str, np.ndarray], rgb: np.ndarray) -> np.ndarray:
    """The official graph's arithmetic, independently of msinet.model.net: RGB minus the means
    (no flip), HWIO convolutions with "same" padding, -inf SAME pooling, TF1 bilinear."""

    def conv(x, name, dilation=1, relu=True):
        k = torch.from_numpy(w[f"{name}/kernel"]).permute(3, 2, 0, 1)
        b = torch.from_numpy(w[f"{name}/bias"])
        pad = dilation * (k.shape[-1] - 1) // 2
        y = F.conv2d(x, k, b, padding=pad, dilation=dilation)
        return F.relu(y) if relu else y

    def pool_same(x):
        return F.max_pool2d(F.pad(x, (0, 1, 0, 1), value=-np.inf), 2, stride=1)

    x = torch.from_numpy(rgb) - torch.tensor(OFFICIAL_MEAN).view(1, 3, 1, 1)
    pools = []
    for b, n in ((1, 2), (2, 2), (3, 3), (4, 3), (5, 3)):
        for i in range(1, n + 1):
            x = conv(x, f"conv{b}/conv{b}_{i}", 2 if b == 5 else 1)
        x = F.max_pool2d(x, 2) if b <= 3 else pool_same(x)
        if b >= 3:
            pools.append(x)
    f = torch.cat(pools, 1)
    ctx = conv(f.mean((2, 3), keepdim=True), "aspp/conv1_5").expand(-1, -1, *f.shape[-2:])
    branches = (
        [conv(f, "aspp/conv1_1")]
        + [conv(f, f"aspp/conv1_{i}", r) for i, r in ((2, 4), (3, 8), (4, 12))]
        + [ctx]
    )
    x = conv(torch.cat(branches, 1), "aspp/conv2")
    for i in (1, 2, 3):
        x = conv(torch.from_numpy(tf1_upsample2x(x.numpy()).astype(np.float32)), f"decoder/conv{i}")
    x = conv(x, "decoder/conv4", relu=False).numpy()
    x = x - x.min(axis=(1, 2, 3), keepdims=True)
    return x / (x.max(axis=(1, 2, 3), keepdims=True) + 1e-7)


@pytest.fixture(scope="module")
def weights():
    return official_weights()


@pytest.fixture(scope="module")
def real_batch(osie_images):
    return batch([preprocess(load_image(p), (240, 320))[0] for p in osie_images[:2]])


@pytest.mark.slow
@pytest.mark.parametrize("data_format", ["NHWC", "NCHW"])
def test_frozen_graph_converts_to_the_official_arithmetic(tmp_path, weights, real_batch,
                                                          data_format):  # fmt: skip
    pb = tmp_path / f"model_salicon_{'cpu' if data_format == 'NHWC' else 'gpu'}.pb"
    pb.write_bytes(graph_def(weights, data_format).SerializeToString())
    out = tmp_path / "official.safetensors"
    assert main(["convert-official", str(pb), "-o", str(out)]) == 0
    model = load_model(out)
    assert model.config.input_order == "rgb" and model.weights_meta.dataset == "salicon"
    with torch.no_grad():
        ours = model(torch.from_numpy(real_batch)).numpy()
    with torch.no_grad():
        ref = official_forward(weights, real_batch)
    np.testing.assert_allclose(ours, ref, atol=1e-5)


def test_saved_model_with_frozen_constants(tmp_path, weights):
    sm = tmp_path / "saved"
    sm.mkdir()
    mg = meta_graph_pb2.MetaGraphDef()
    mg.graph_def.CopyFrom(graph_def(weights, half=True))
    mg.meta_info_def.tags.append("serve")
    body = mg.SerializeToString()

    # SavedModel {saved_model_schema_version = 1; meta_graphs = 2}
    (sm / "saved_model.pb").write_bytes(b"\x08\x01" + b"\x12" + varint(len(body)) + body)
    out = tmp_path / "o.safetensors"
    assert main(["convert-official", str(sm), "-o", str(out), "--dataset", "mit1003"]) == 0
    model = load_model(out)
    assert tuple(model.weights_meta.training_size) == (360, 360)
    w = weights["conv3/conv3_2/kernel"].astype(np.float16).astype(np.float32)
    assert np.array_equal(
        model.encoder.conv3.conv3_2.weight.detach().numpy(), w.transpose(3, 2, 0, 1)
    )


def varint(n: int) -> bytes:
    out = b""
    while True:
        b, n = n & 0x7F, n >> 7
        out += bytes([b | (0x80 if n else 0)])
        if not n:
            return out


def table_block(items, restart_interval=16) -> bytes:
    """A LevelDB table block: prefix-compressed keys, restart points, restart count."""
    buf, restarts, prev = b"", [], b""
    for n, (k, v) in enumerate(items):
        shared = 0
        if n % restart_interval == 0:
            restarts.append(len(buf))
        else:
            while shared < min(len(prev), len(k)) and prev[shared] == k[shared]:
                shared += 1
        buf += varint(shared) + varint(len(k) - shared) + varint(len(v)) + k[shared:] + v
        prev = k
    return (
        buf
        + b"".join(r.to_bytes(4, "little") for r in restarts or [0])
        + len(restarts or [0]).to_bytes(4, "little")
    )


def write_bundle(prefix, tensors: dict[str, np.ndarray]) -> None:
    """A TF tensor bundle (checkpoint): prefix.index (LevelDB table of BundleEntryProto) and
    prefix.data-00000-of-00001 (raw little-endian tensor bytes)."""
    from tensorboard.compat.proto import tensor_shape_pb2

    data, entries = b"", [(b"", b"\x08\x01" + b"\x1a\x02\x08\x01")]  # BundleHeaderProto
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        shape = tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in a.shape]
        ).SerializeToString()
        dtype = {np.dtype(np.float16): types_pb2.DT_HALF, np.dtype(np.int32): types_pb2.DT_INT32}
        dtype = dtype.get(a.dtype, types_pb2.DT_FLOAT)
        entry = (
            b"\x08"
            + varint(dtype)
            + b"\x12"
            + varint(len(shape))
            + shape
            + b"\x20"
            + varint(len(data))
            + b"\x28"
            + varint(a.nbytes)
            + b"\x35"
            + bytes(4)
        )
        entries.append((name.encode(), entry))
        data += a.tobytes()
    entries.sort()
    trailer = b"\x00" + bytes(4)  # no compression, (unchecked) crc
    out, handles = b"", []
    half = len(entries) // 2
    for chunk in (entries[:half], entries[half:]):
        b = table_block(chunk)
        handles.append((chunk[-1][0], len(out), len(b)))
        out += b + trailer
    meta = table_block([])
    meta_at = len(out)
    out += meta + trailer
    index = table_block([(k, varint(o) + varint(n)) for k, o, n in handles], 1)
    index_at = len(out)
    out += index + trailer
    footer = varint(meta_at) + varint(len(meta)) + varint(index_at) + varint(len(index))
    out += footer.ljust(40, b"\x00") + (0xDB4775248B80FB57).to_bytes(8, "little")
    prefix.with_name(prefix.name + ".index").write_bytes(out)
    prefix.with_name(prefix.name + ".data-00000-of-00001").write_bytes(data)


def converted(tmp_path, source, *extra) -> dict[str, np.ndarray]:
    out = tmp_path / f"c{len(list(tmp_path.iterdir()))}.safetensors"
    assert main(["convert-official", str(source), "-o", str(out), *extra]) == 0
    return {k: v.detach().numpy() for k, v in load_model(out).state_dict().items()}


@pytest.mark.slow  # 5-15 s: out of the 3-minute default run; CI runs it
def test_checkpoint_bundle_converts_like_the_frozen_graph(tmp_path, weights):
    pb = tmp_path / "model_osie_gpu.pb"
    pb.write_bytes(graph_def(weights).SerializeToString())
    reference = converted(tmp_path, pb)
    ckpt = tmp_path / "model_osie_gpu.ckpt"
    slots = {f"{k}/Adam": np.zeros_like(v) for k, v in list(weights.items())[:4]}
    write_bundle(ckpt, {**weights, **slots, "beta1_power": np.array(0.9, np.float32)})
    for source in (ckpt, ckpt.with_name(ckpt.name + ".index")):
        ours = converted(tmp_path, source, "--dataset", "osie")
        for k in reference:
            assert np.array_equal(ours[k], reference[k]), k


def test_saved_model_with_variables(tmp_path, weights):
    sm = tmp_path / "hf"
    (sm / "variables").mkdir(parents=True)
    mg = meta_graph_pb2.MetaGraphDef()
    mg.graph_def.node.add(name="input", op="Placeholder")
    body = mg.SerializeToString()
    (sm / "saved_model.pb").write_bytes(b"\x08\x01\x12" + varint(len(body)) + body)
    write_bundle(sm / "variables" / "variables", weights)
    ours = converted(tmp_path, sm, "--dataset", "salicon")
    k = weights["aspp/conv1_3/kernel"]
    assert np.array_equal(ours["aspp.conv1_3.weight"], k.transpose(3, 2, 0, 1))


SALICON = ("--dataset", "salicon")


@pytest.mark.slow  # > 4 s on the 2-core machine: CI runs it
def test_clear_errors(tmp_path, weights, capsys):
    partial = dict(weights)
    del partial["aspp/conv2/kernel"], partial["decoder/conv4/bias"]
    pb = tmp_path / "partial.pb"
    pb.write_bytes(graph_def(partial).SerializeToString())
    assert main(["convert-official", str(pb), "-o", str(tmp_path / "x"), *SALICON]) == 2
    err = capsys.readouterr().err
    assert "not an MSI-Net graph" in err and "aspp/conv2/kernel" in err
    wrong = dict(weights)
    wrong["decoder/conv1/kernel"] = np.zeros((3, 3, 256, 64), np.float32)
    pb.write_bytes(graph_def(wrong).SerializeToString())
    assert main(["convert-official", str(pb), "-o", str(tmp_path / "x"), *SALICON]) == 2
    assert "shape mismatch" in capsys.readouterr().err
    junk = tmp_path / "junk.pb"
    junk.write_bytes(b"\xff\xff\xff garbage")
    with pytest.raises(WeightsError):
        from msinet.weights.official import read_official

        read_official(junk)
    bad_index = tmp_path / "m.ckpt.index"
    bad_index.write_bytes(b"not a table" * 10)
    assert main(["convert-official", str(bad_index), "-o", str(tmp_path / "x"), *SALICON]) == 2
    assert "bad table footer" in capsys.readouterr().err
    ints = tmp_path / "ints.ckpt"
    write_bundle(ints, {**weights, "conv1/conv1_1/bias": np.zeros(64, np.int32)})
    assert main(["convert-official", str(ints), "-o", str(tmp_path / "x"), *SALICON]) == 2
    assert "unsupported dtype" in capsys.readouterr().err


def convert_error(tmp_path, source, capsys, extra=SALICON) -> str:
    """The one line `convert-official` prints for a bad `source` (exit 2, no traceback)."""
    rc = main(["convert-official", str(source), "-o", str(tmp_path / "out.safetensors"),
               *extra])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert not (tmp_path / "out.safetensors").exists()
    return err


def const(g, name, shape, content=b"", dtype=types_pb2.DT_FLOAT):
    n = g.node.add(name=name, op="Const")
    t = n.attr["value"].tensor
    t.dtype = dtype
    for d in shape:
        t.tensor_shape.dim.add(size=d)
    t.tensor_content = content
    return n


def test_the_dataset_comes_from_the_flag_or_the_official_file_name(tmp_path, weights, capsys):
    body = graph_def(weights).SerializeToString()
    (tmp_path / "good_osie.pb").write_bytes(body)
    assert "pass --dataset" in convert_error(tmp_path, tmp_path / "good_osie.pb", capsys, ())
    out = tmp_path / "o.safetensors"
    assert main(["convert-official", str(tmp_path / "good_osie.pb"), "-o", str(out),
                 "--dataset", "osie"]) == 0  # fmt: skip
    assert load_model(out).weights_meta.dataset == "osie"
    (tmp_path / "model_cat2000_cpu.pb").write_bytes(body)
    assert main(["convert-official", str(tmp_path / "model_cat2000_cpu.pb"), "-o", str(out)]) == 0
    assert load_model(out).weights_meta.dataset == "cat2000"


def test_malformed_graphs_are_one_line_and_allocate_nothing_large(tmp_path, weights, capsys):
    g = graph_pb2.GraphDef()
    const(g, "conv1/conv1_1/kernel", (60000, 60000, 3))  # 74 bytes declaring 40 GiB
    tiny = tmp_path / "tiny.pb"
    tiny.write_bytes(g.SerializeToString())
    assert len(tiny.read_bytes()) < 100
    assert "(60000, 60000, 3)" in convert_error(tmp_path, tiny, capsys)
    g = graph_pb2.GraphDef()
    const(g, "conv1/conv1_1/kernel", (2**40, 2**40))
    tiny.write_bytes(g.SerializeToString())
    assert "shape mismatch" in convert_error(tmp_path, tiny, capsys)
    short = graph_def(weights)
    node = next(n for n in short.node if n.name == "conv5/conv5_3/kernel")
    node.attr["value"].tensor.tensor_content = node.attr["value"].tensor.tensor_content[:1000]
    tiny.write_bytes(short.SerializeToString())
    assert "1000 bytes of content for a declared shape" in convert_error(tmp_path, tiny, capsys)
    nan = dict(weights)
    nan["aspp/conv2/bias"] = np.full_like(weights["aspp/conv2/bias"], np.nan)
    tiny.write_bytes(graph_def(nan).SerializeToString())
    assert "non-finite values" in convert_error(tmp_path, tiny, capsys)


def saved_model(folder, mg) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    body = mg.SerializeToString()
    (folder / "saved_model.pb").write_bytes(b"\x08\x01\x12" + varint(len(body)) + body)


def test_malformed_saved_models_and_checkpoints_are_one_line(tmp_path, weights, capsys):
    sm = tmp_path / "sm"
    sm.mkdir()
    (sm / "saved_model.pb").write_bytes(b"\x08")
    assert "not a valid SavedModel" in convert_error(tmp_path, sm, capsys)
    (sm / "saved_model.pb").write_bytes(b"\x08\x01\x12\x05\xff\xff\xff\xff\xff")
    assert "not a valid SavedModel" in convert_error(tmp_path, sm, capsys)
    ckpt = tmp_path / "m.ckpt"
    write_bundle(ckpt, weights)
    data = ckpt.with_name("m.ckpt.data-00000-of-00001")
    whole = data.read_bytes()
    data.write_bytes(whole[: len(whole) // 2])
    assert "is truncated" in convert_error(tmp_path, ckpt, capsys)
    data.write_bytes(whole)
    index = ckpt.with_name("m.ckpt.index")
    table = bytearray(index.read_bytes())
    table[-48:-40] = b"\xff\xff\xff\xff\x0f\x01\xff\x7f"  # block handles far past the end
    index.write_bytes(bytes(table))
    assert "damaged TensorFlow checkpoint index" in convert_error(tmp_path, ckpt, capsys)


@pytest.mark.slow  # 5-15 s: out of the 3-minute default run; CI runs it
def test_tf2_saved_model_with_constants_in_its_function_library(tmp_path, weights):
    """tf.saved_model.save with frozen variables keeps the constants in
    meta_graphs[0].graph_def.library.function[...].node_def, under the function's names."""
    reference = converted(tmp_path, _pb(tmp_path, weights), *SALICON)
    mg = meta_graph_pb2.MetaGraphDef()
    fn = mg.graph_def.library.function.add()
    fn.signature.name = "__inference_call_1234"
    for node in graph_def(weights).node:
        if node.op == "Const":
            copy = fn.node_def.add()
            copy.CopyFrom(node)
            copy.name = f"msi_net/{node.name}/Read/ReadVariableOp"
    saved_model(tmp_path / "tf2", mg)
    ours = converted(tmp_path, tmp_path / "tf2", *SALICON)
    for k in reference:
        assert np.array_equal(ours[k], reference[k]), k


def _pb(tmp_path, weights):
    pb = tmp_path / "ref.pb"
    pb.write_bytes(graph_def(weights).SerializeToString())
    return pb


@pytest.mark.slow  # 5-15 s: out of the 3-minute default run; CI runs it
def test_keras_saved_model_variables_by_object_graph_path(tmp_path, weights):
    """A Keras SavedModel's variables/ bundle keys tensors by object paths; its object graph
    names each variable, as Keras 3 does without the block scope (conv1_1/kernel is conv1's or
    aspp's: the shapes tell). Optimizer slots beside them are ignored."""
    reference = converted(tmp_path, _pb(tmp_path, weights), *SALICON)
    mg = meta_graph_pb2.MetaGraphDef()
    nodes = mg.object_graph_def.nodes
    root = nodes.add()
    root.user_object.identifier = "_tf_keras_model"
    tensors = {}
    for i, (name, value) in enumerate(sorted(weights.items())):
        layer = nodes.add()
        layer.user_object.identifier = "_tf_keras_layer"
        root.children.add(node_id=len(nodes) - 1, local_name=f"layer_with_weights-{i}")
        var = nodes.add()  # Keras 3 names a variable "<layer>/<weight>": no block scope
        var.variable.name = "/".join(name.split("/")[-2:])
        layer.children.add(node_id=len(nodes) - 1, local_name=name.rsplit("/", 1)[1])
        key = f"layer_with_weights-{i}/{name.rsplit('/', 1)[1]}/.ATTRIBUTES/VARIABLE_VALUE"
        tensors[key] = value
        slot = key.replace("/.ATTRIBUTES", "/.OPTIMIZER_SLOT/optimizer/m/.ATTRIBUTES")
        tensors[slot] = np.zeros_like(value)
    saved_model(tmp_path / "keras", mg)
    (tmp_path / "keras" / "variables").mkdir()
    write_bundle(tmp_path / "keras" / "variables" / "variables", tensors)
    ours = converted(tmp_path, tmp_path / "keras", *SALICON)
    for k in reference:
        assert np.array_equal(ours[k], reference[k]), k


@pytest.mark.parametrize("name, dataset", [
    ("model_osie_cpu.ckpt", "osie"), ("model_osie_cpu.ckpt.index", "osie"),
    ("model_salicon_gpu.ckpt.data-00000-of-00001", "salicon"), ("model_mit1003_cpu.pb", "mit1003"),
])  # fmt: skip
def test_the_training_codes_checkpoint_names_say_the_dataset(name, dataset):
    from msinet.weights.official.mapping import dataset_of

    assert dataset_of(Path(name), None) == dataset
    with pytest.raises(WeightsError, match=r"\.pb or \.ckpt"):
        dataset_of(Path("model_osie_cpu.ckpt.bak"), None)
