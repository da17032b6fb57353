"""ONNX graph built from weights, ONNX Runtime fp32 and int8 engines, against torch."""

import numpy as np
import onnx
import pytest
import torch

from msinet.engine import check_batch, load_engine, under_load
from msinet.engine.quantize import quantize_int8
from msinet.imaging.decode import load_image
from msinet.imaging.preprocess import batch, preprocess
from msinet.weights.onnx_graph import build_from_weights, meta_of
from msinet.weights.store import WeightsError, WeightsMeta
from msinet.weights.torch_io import save_model


@pytest.fixture(scope="module")
def fp32_weights(tmp_path_factory, random_model):
    path = tmp_path_factory.mktemp("w") / "fp32.safetensors"
    save_model(random_model, path, WeightsMeta(dataset="random-init"))
    return path


@pytest.fixture(scope="module")
def real_batch(osie_images):
    return batch([preprocess(load_image(p), (240, 320))[0] for p in osie_images[:2]])


def test_graph_is_valid_opset17_with_dynamic_axes(fp32_weights):
    model = build_from_weights(fp32_weights)
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version >= 17
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["batch", 3, "height", "width"]
    resize = [n for n in model.graph.node if n.op_type == "Resize"]
    assert len(resize) == 3
    for n in resize:
        attrs = {a.name: a.s.decode() for a in n.attribute}
        assert attrs == {"mode": "linear", "coordinate_transformation_mode": "asymmetric"}
    assert meta_of(model).input_order == "bgr"
    assert {n.name for n in model.graph.node} >= {"conv1/conv1_1", "aspp/conv2", "decoder/conv4"}


SLOW = pytest.mark.slow


@pytest.mark.parametrize(
    "shape", [(1, 240, 320), (3, 64, 96), pytest.param((2, 360, 360), marks=SLOW)]
)
def test_onnx_matches_torch_at_several_sizes(fp32_weights, random_model, shape):
    b, h, w = shape
    x = (np.random.default_rng(b).random((b, 3, h, w)) * 255).astype(np.float32)
    ours = load_engine("onnx", fp32_weights, threads=2).predict(x)
    with torch.no_grad():
        ref = random_model(torch.from_numpy(x))[:, 0].numpy()
    assert ours.shape == (b, h, w)
    np.testing.assert_allclose(ours, ref, atol=2e-5)


@pytest.mark.slow  # > 4 s on the 2-core machine: CI runs it
def test_onnx_and_torch_engines_agree_on_real_images(fp32_weights, real_batch):
    t = load_engine("torch", fp32_weights).predict(real_batch)
    o = load_engine("onnx", fp32_weights).predict(real_batch)
    np.testing.assert_allclose(o, t, atol=2e-5)


@pytest.mark.slow  # > 4 s on the 2-core machine: CI runs it
def test_calls_under_load_run_single_threaded_with_the_same_maps(fp32_weights, real_batch):
    """The server's calls beside others run on a one-thread session of the same weights, one
    per thread: same maps, also when two threads call it at once. Torch's threads are
    process-wide: it runs them itself, two at once."""
    from concurrent.futures import ThreadPoolExecutor

    wide = load_engine("onnx", fp32_weights, threads=2)
    narrow, calls = under_load(wide)
    assert (wide.threads, narrow.threads, calls) == (2, 1, 2)
    assert (narrow.name, narrow.meta, narrow.self_check) == (wide.name, wide.meta, None)
    expected = wide.predict(real_batch)
    halves = [real_batch[:1], real_batch[1:]]
    with ThreadPoolExecutor(2) as pool:
        got = np.concatenate(list(pool.map(narrow.predict, halves)))
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert under_load(narrow) == (None, 1)
    assert under_load(load_engine("torch", fp32_weights)) == (None, 2)


def test_single_threaded_int8_keeps_its_self_check(real_batch):
    from msinet.weights.store import default_weights

    wide = load_engine("onnx-int8", default_weights("onnx-int8"), threads=2)
    narrow, _ = under_load(wide)
    assert narrow.name == "onnx-int8" and narrow.self_check is wide.self_check
    for a, b in zip(narrow.predict(real_batch), wide.predict(real_batch), strict=True):
        assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.9999


@pytest.mark.slow
def test_int8_export_of_a_trained_model_passes_its_self_check(tmp_path, osie_images, real_batch):
    from msinet.engine.probe import PROBE_MIN_CC
    from msinet.weights.store import default_weights

    fp32_weights = default_weights()
    path = quantize_int8(fp32_weights, osie_images[10:14], tmp_path / "int8.onnx")
    assert [p.name for p in tmp_path.iterdir()] == ["int8.onnx"]  # no partial files left
    int8 = load_engine("onnx-int8", path)
    assert int8.name == "onnx-int8" and int8.self_check.passed
    assert int8.meta.dataset == "osie+mit1003+eyecrowd"
    assert path.stat().st_size < 0.6 * fp32_weights.stat().st_size  # fp16 file: half of 4 bytes
    q = int8.predict(real_batch)
    f = load_engine("onnx", fp32_weights).predict(real_batch)
    for a, b in zip(q, f, strict=True):
        assert np.corrcoef(a.ravel(), b.ravel())[0, 1] >= PROBE_MIN_CC


def test_export_cli_writes_checked_onnx(tmp_path, fp32_weights, capsys):
    from msinet.cli import main

    out = tmp_path / "m.onnx"
    assert main(["export", "--format", "onnx", "--weights", str(fp32_weights), "-o", str(out)]) == 0
    onnx.checker.check_model(onnx.load(str(out)))
    assert load_engine("onnx", out).meta.dataset == "random-init"
    assert (
        main(
            [
                "export",
                "--format",
                "onnx",
                "--int8",
                "--weights",
                str(fp32_weights),
                "-o",
                str(tmp_path / "q.onnx"),
            ]
        )
        == 2
    )
    assert "--calibration" in capsys.readouterr().err


def test_bad_onnx_files_and_engine_inputs(tmp_path, fp32_weights):
    with pytest.raises(WeightsError, match="not found"):
        load_engine("onnx", tmp_path / "missing.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a protobuf at all")
    with pytest.raises(WeightsError, match="not a valid ONNX"):
        load_engine("onnx", bad)
    other = tmp_path / "other.onnx"
    g = onnx.helper.make_graph(
        [onnx.helper.make_node("Identity", ["x"], ["y"])],
        "g",
        [onnx.helper.make_tensor_value_info("x", 1, [1])],
        [onnx.helper.make_tensor_value_info("y", 1, [1])],
    )
    onnx.save(onnx.helper.make_model(g), str(other))
    with pytest.raises(WeightsError, match="not an msinet ONNX"):
        load_engine("onnx", other)
    with pytest.raises(ValueError, match="quantized .onnx"):
        load_engine("onnx-int8", fp32_weights)
    with pytest.raises(ValueError, match="multiples of 8"):
        check_batch(np.zeros((1, 3, 100, 120), np.float32))
    engine = load_engine("onnx", fp32_weights)
    with pytest.raises(ValueError, match="multiples of 8"):
        engine.predict(np.zeros((1, 3, 100, 120), np.float32))


@pytest.mark.slow  # > 4 s on the 2-core machine: CI runs it
def test_public_api_cannot_reach_an_engine_with_bad_sizes(fp32_weights):
    """Any image size goes through preprocessing into a multiple-of-8 input."""
    from msinet.pipeline import Pipeline

    p = Pipeline(load_engine("onnx", fp32_weights), "240x320")
    maps = p.predict_many([np.zeros((37, 1001, 3), np.uint8), np.zeros((5, 7, 3), np.uint8)])
    assert [m.shape for m in maps] == [(37, 1001), (5, 7)]
