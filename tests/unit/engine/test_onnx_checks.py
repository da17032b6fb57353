"""Issue 29, item 2: an .onnx file is checked whole: its seal covers the whole model, its
weights are finite, and its graph is MSI-Net's whatever it was resealed with."""

import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from msinet.weights.onnx_graph import build_from_weights, initializer_hash, seal, set_metadata
from msinet.weights.store import default_weights


@pytest.fixture(scope="module")
def fp32(tmp_path_factory, random_weights):
    model = build_from_weights(random_weights)
    path = tmp_path_factory.mktemp("onnx") / "ok.onnx"
    onnx.save(model, str(path))
    return path


def tampered(src, tmp_path, change, reseal=True):
    model = onnx.load(str(src))
    change(model)
    path = tmp_path / "tampered.onnx"
    onnx.save(seal(model) if reseal else model, str(path))
    return path


def nan_weight(model):
    t = next(t for t in model.graph.initializer if t.name == "decoder.conv2.weight")
    a = numpy_helper.to_array(t).copy()
    a.flat[0] = np.nan
    t.CopyFrom(numpy_helper.from_array(a, t.name))


def relu_to_sigmoid(model):
    next(n for n in model.graph.node if n.op_type == "Relu").op_type = "Sigmoid"


def skip_a_layer(model):
    """conv5_2 fed straight from pool4: same operators, other connections."""
    nodes = {n.name: n for n in model.graph.node}
    conv = nodes["conv5/conv5_2"]
    conv.input[0] = next(n for n in model.graph.node if n.name == "conv5/conv5_1").input[0]


def foreign(model):
    """Another network entirely (one Relu), given msinet's metadata."""
    graph = helper.make_graph([helper.make_node("Relu", ["images"], ["saliency"])], "other",
                              list(model.graph.input), list(model.graph.output))  # fmt: skip
    other = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    other.ir_version = 8
    other.metadata_props.extend(model.metadata_props)
    model.CopyFrom(other)


CASES = {
    "resealed NaN": (nan_weight, True, "NaN or infinite"),
    "resealed Relu -> Sigmoid": (relu_to_sigmoid, True, "not MSI-Net's"),
    "resealed skipped layer": (skip_a_layer, True, "not MSI-Net's"),
    "foreign graph": (foreign, True, "not MSI-Net's"),
    "edited, not resealed": (relu_to_sigmoid, False, "corrupted"),
}


def run(*args):
    return subprocess.run([sys.executable, "-m", "msinet", *args], capture_output=True,
                          text=True, timeout=300)  # fmt: skip


@pytest.mark.parametrize("case", sorted(CASES))
def test_tampered_onnx_files_are_refused_in_one_line(case, fp32, tmp_path, osie_images):
    from msinet.engine import load_engine
    from msinet.weights.store import WeightsError

    change, reseal, words = CASES[case]
    path = tampered(fp32, tmp_path, change, reseal)
    with pytest.raises(WeightsError, match=words):
        load_engine("onnx", path)
    if case not in ("resealed NaN", "foreign graph"):  # the commands: two cases are enough
        return
    for args in (["predict", str(osie_images[0]), "-o", str(tmp_path / "out"), "--weights",
                  str(path), "--engine", "onnx"], ["info", str(path)]):  # fmt: skip
        r = run(*args)
        assert r.returncode == 2 and words in r.stderr, (args, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


@pytest.mark.slow
def test_serve_refuses_a_tampered_file_in_one_line(fp32, tmp_path):
    path = tampered(fp32, tmp_path, nan_weight)
    r = run("serve", "--weights", str(path), "--engine", "onnx", "--port", "1")
    assert r.returncode == 2 and "NaN or infinite" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_the_seal_covers_nodes_and_metadata(fp32, tmp_path):
    from msinet.engine import load_engine
    from msinet.weights.store import WeightsError

    for change in (relu_to_sigmoid, lambda m: set_metadata(m, "input_order", "rgb")):
        with pytest.raises(WeightsError, match="corrupted"):
            load_engine("onnx", tampered(fp32, tmp_path, change, reseal=False))


def test_files_sealed_before_keep_loading(fp32, tmp_path):
    """An export sealed with the initializers' hash alone (before this change) still loads,
    and its structure is checked all the same."""
    from msinet.engine import load_engine
    from msinet.weights.store import WeightsError

    model = onnx.load(str(fp32))
    path = tmp_path / "old.onnx"
    onnx.save(set_metadata(model, "graph_sha256", initializer_hash(model)), str(path))
    assert load_engine("onnx", path).name == "onnx"
    relu_to_sigmoid(model)
    onnx.save(set_metadata(model, "graph_sha256", initializer_hash(model)), str(path))
    with pytest.raises(WeightsError, match="not MSI-Net's"):
        load_engine("onnx", path)


def test_the_shipped_int8_file_passes_the_structure_check():
    from msinet.weights.onnx_file import load_onnx

    assert load_onnx(default_weights("onnx-int8")).graph.node
