import numpy as np
import pytest
import torch
from safetensors.numpy import save_file

from msinet.model.net import MSINet
from msinet.weights import store as W
from msinet.weights import torch_io
from msinet.weights.store import WeightsError, WeightsMeta, load_arrays
from msinet.weights.torch_io import load_model, save_model


def test_round_trip_keeps_weights_and_metadata(tmp_path, random_model):
    meta = WeightsMeta(input_order="rgb", training_size=(360, 360), dataset="mit1003", version="7")
    path = tmp_path / "m.safetensors"
    save_model(random_model, path, meta)
    loaded = load_model(path)
    assert loaded.config.input_order == "rgb"
    assert loaded.weights_meta.training_size == (360, 360)
    assert loaded.weights_meta.dataset == "mit1003"
    for k, v in random_model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k


def test_fp16_file_is_half_the_size_and_close(tmp_path, random_model, random_weights):
    path32 = tmp_path / "fp32.safetensors"
    save_model(random_model, path32, WeightsMeta())
    assert random_weights.stat().st_size < 0.55 * path32.stat().st_size
    half = load_model(random_weights)
    w = random_model.state_dict()["aspp.conv2.weight"]
    torch.testing.assert_close(half.state_dict()["aspp.conv2.weight"], w, atol=1e-3, rtol=1e-3)


def test_missing_file(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        load_arrays(tmp_path / "nope.safetensors")


def test_corrupted_file_fails_the_hash(tmp_path, random_weights):
    data = bytearray(random_weights.read_bytes())
    data[-1000] ^= 0xFF  # one flipped byte in the tensor data
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="content hash"):
        load_arrays(bad)


def test_truncated_file(tmp_path, random_weights):
    bad = tmp_path / "short.safetensors"
    bad.write_bytes(random_weights.read_bytes()[:5000])
    with pytest.raises(WeightsError, match="not a safetensors file|corrupted"):
        load_arrays(bad)


def test_foreign_safetensors_is_refused(tmp_path):
    path = tmp_path / "other.safetensors"
    save_file({"x": np.zeros(3, np.float32)}, str(path), {"foo": "bar"})
    with pytest.raises(WeightsError, match="not an msinet weights file"):
        load_arrays(path)


def test_wrong_architecture_names_every_bad_key(tmp_path, random_model):
    tensors = {k: v.numpy() for k, v in random_model.state_dict().items()}
    del tensors["decoder.conv4.bias"]
    tensors["decoder.conv3.weight"] = np.zeros((16, 64, 3, 3), np.float32)
    tensors["head.extra"] = np.zeros(2, np.float32)
    path = tmp_path / "odd.safetensors"
    W.save_arrays(path, tensors, WeightsMeta())
    with pytest.raises(WeightsError) as e:
        load_model(path)
    msg = str(e.value)
    assert "decoder.conv4.bias" in msg and "decoder.conv3.weight" in msg and "head.extra" in msg


def test_other_architecture_version_is_refused(tmp_path, random_model):
    path = tmp_path / "v9.safetensors"
    save_model(random_model, path, WeightsMeta(arch_version="9"))
    with pytest.raises(WeightsError, match="architecture version 9"):
        load_model(path)


def test_vgg16_initialises_the_encoder(vgg16_path):
    from safetensors import safe_open

    model = MSINet()
    torch_io.init_from_vgg16(model, vgg16_path)
    with safe_open(str(vgg16_path), "np") as f:
        ref = f.get_tensor("conv5_3.weight")
        assert np.array_equal(model.encoder.conv5.conv5_3.weight.detach().numpy(), ref)
        bias = model.encoder.conv1.conv1_1.bias.detach().numpy()
        assert np.array_equal(bias, f.get_tensor("conv1_1.bias"))


def test_vgg16_wrong_file_is_a_clear_error(tmp_path):
    path = tmp_path / "x.safetensors"
    save_file({"conv1_1.weight": np.zeros((64, 3, 5, 5), np.float32)}, str(path))
    with pytest.raises(WeightsError, match="missing"):
        torch_io.init_from_vgg16(MSINet(), path)


def test_no_shipped_weights_is_said_clearly(monkeypatch):
    monkeypatch.setattr(W, "SHIPPED", {})
    with pytest.raises(WeightsError, match="no trained weights are installed"):
        W.default_weights()


def _tampered(tmp_path, random_model, change):
    """A weights file whose tensors were changed and then saved properly (a valid hash)."""
    tensors = {k: v.detach().numpy().copy() for k, v in random_model.state_dict().items()}
    change(tensors)
    path = tmp_path / "tampered.safetensors"
    W.save_arrays(path, tensors, WeightsMeta())
    return path


def _nan(t):
    t["decoder.conv4.weight"][0, 0, 0, 0] = np.nan


@pytest.mark.parametrize("change, words", [
    (lambda t: t.update({"aspp.conv2.weight": t["aspp.conv2.weight"][:255]}), "wrong shapes"),
    (lambda t: t.pop("aspp.conv1_5.bias"), "missing ['aspp.conv1_5.bias']"),
    (lambda t: t.update({"extra": np.zeros(3, np.float32)}), "unexpected ['extra']"),
    (_nan, "non-finite values (NaN or inf) in decoder.conv4.weight"),
])  # fmt: skip
@pytest.mark.parametrize("engine", ["torch", "onnx"])
def test_every_engine_checks_names_shapes_and_values(tmp_path, random_model, change, words,
                                                     engine):  # fmt: skip
    """Issue 17: these reached ONNX Runtime as a traceback, a KeyError, nothing, and all-zero
    maps with exit code 0."""
    from msinet.engine import load_engine

    path = _tampered(tmp_path, random_model, change)
    with pytest.raises(WeightsError) as e:
        load_engine(engine, path)
    assert words in str(e.value) and str(path) in str(e.value)


@pytest.mark.slow  # > 4 s on the 2-core machine: CI runs it
def test_onnx_files_are_sealed_and_checked(tmp_path, random_weights):
    import onnx

    from msinet.engine import load_engine
    from msinet.weights.onnx_graph import GRAPH_HASH_KEY, build_from_weights

    model = build_from_weights(random_weights)
    good = tmp_path / "good.onnx"
    onnx.save(model, str(good))
    assert load_engine("onnx", good).predict(np.full((1, 3, 48, 64), 120.0, np.float32)).shape
    # flipped weight bytes under the same metadata
    init = next(t for t in model.graph.initializer if len(t.raw_data) > 1000)
    raw = bytearray(init.raw_data)
    raw[100:386] = bytes(b ^ 0xFF for b in raw[100:386])
    init.raw_data = bytes(raw)
    flipped = tmp_path / "flipped.onnx"
    onnx.save(model, str(flipped))
    with pytest.raises(WeightsError, match="corrupted"):
        load_engine("onnx", flipped)
    # no seal at all
    kept = [p for p in model.metadata_props if p.key != GRAPH_HASH_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    unsealed = tmp_path / "unsealed.onnx"
    onnx.save(model, str(unsealed))
    with pytest.raises(WeightsError, match=f"carries no {GRAPH_HASH_KEY}"):
        load_engine("onnx", unsealed)


def test_a_pickle_is_refused_in_words(tmp_path, random_model):
    path = tmp_path / "model.safetensors"
    torch.save(random_model.state_dict(), path)
    with pytest.raises(WeightsError, match="not a safetensors file but a pickle"):
        load_model(path)
    import pickle

    path.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(WeightsError, match="refuses pickles on purpose"):
        load_model(path)
