"""The weights that ship in weights/: hashes, metadata against the real model, and quality."""

import shutil

import numpy as np
import pytest

from msinet.engine import load_engine
from msinet.imaging.decode import load_image
from msinet.model.net import count_parameters
from msinet.pipeline import Pipeline
from msinet.weights import store as W
from msinet.weights import torch_io


def test_shipped_files_verify_and_meta_matches_the_model():
    entry = W.SHIPPED[W.DEFAULT_MODEL]
    path = W.default_weights()
    assert W.file_sha256(path) == entry.sha256
    assert W.file_sha256(W.default_weights("onnx-int8")) == entry.int8_sha256
    model = torch_io.load_model(path)
    assert count_parameters(model) == entry.meta["num_params"]
    meta = model.weights_meta
    assert meta.dataset == "osie+mit1003+eyecrowd"
    assert tuple(meta.training_size) == entry.meta["training_size"]
    assert meta.input_order == entry.meta["input_order"]
    assert meta.density is not None and meta.density.fitted_on.startswith("osie 1001-")
    assert "mit1003" in meta.density.fitted_on and "eyecrowd 001-" in meta.density.fitted_on
    total = sum(p.stat().st_size for p in W.weights_dir().glob("*") if p.is_file())
    assert total <= 100_000_000


def test_corrupted_default_weights_are_refused(tmp_path, monkeypatch):
    for f in W.weights_dir().glob(f"{W.DEFAULT_MODEL}*"):
        shutil.copy(f, tmp_path / f.name)
    target = tmp_path / W.SHIPPED[W.DEFAULT_MODEL].file
    data = bytearray(target.read_bytes())
    data[-10] ^= 0x01
    target.write_bytes(bytes(data))
    monkeypatch.setenv("MSINET_WEIGHTS_DIR", str(tmp_path))
    with pytest.raises(W.WeightsError, match="sha256"):
        W.default_weights()
    (tmp_path / W.SHIPPED[W.DEFAULT_MODEL].int8_file).unlink()
    with pytest.raises(W.WeightsError, match="missing"):
        W.default_weights("onnx-int8")


@pytest.fixture(scope="module")
def val(osie_root):
    from msinet.data.osie import OSIE

    return OSIE(osie_root).samples("val")[:6]


@pytest.mark.slow  # 5-15 s: out of the 3-minute default run; CI runs it
@pytest.mark.parametrize("name", ["osie", "mit1003", "eyecrowd"])
def test_shipped_model_beats_the_centre_bias_on_each_datasets_unseen_images(name, request):
    from msinet.data import open_dataset
    from msinet.evaluation.baselines import GaussianCenterBias
    from msinet.evaluation.metrics import nss

    data = open_dataset(name, request.getfixturevalue(f"{name}_root"))
    predictor = Pipeline(load_engine("onnx", W.default_weights()))
    centre = GaussianCenterBias.fit(data.samples("train"))
    ours, cb = [], []
    for s in data.samples("val")[:6]:
        f = s.fixations.binary_map()
        ours.append(nss(predictor.predict(s.image), f))
        cb.append(nss(centre(f.shape), f))
    assert np.mean(ours) > 1.5 * np.mean(cb) and np.mean(ours) > np.mean(cb) + 0.8


@pytest.mark.slow  # 5-15 s: out of the 3-minute default run; CI runs it
def test_engines_agree_on_the_shipped_model(val):
    from msinet.imaging.preprocess import batch, preprocess

    x = batch([preprocess(load_image(s.image), (240, 320))[0] for s in val[:2]])
    t = load_engine("torch", W.default_weights()).predict(x)
    o = load_engine("onnx", W.default_weights()).predict(x)
    q = load_engine("onnx-int8", W.default_weights("onnx-int8")).predict(x)
    np.testing.assert_allclose(o, t, atol=2e-5)
    for a, b in zip(q, t, strict=True):
        assert np.corrcoef(a.ravel(), b.ravel())[0, 1] >= 0.99
