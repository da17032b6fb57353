"""The loss against hand-computed values; short real trainings: loss goes down, resume is exact."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from msinet.config import TrainConfig
from msinet.files import written_whole
from msinet.losses import cc_loss, kld_loss, nss_loss
from msinet.model_io import load_model
from msinet.train import Trainer
from msinet.weights import load_arrays


def test_kld_loss_hand_computed():
    # target [1,1,0,0] -> P = [.5,.5,0,0] (up to eps); pred [1,1,1,1] -> Q = .25 each:
    # 2 * .5 * log(.5 / .25) = log 2
    target = torch.tensor([1.0, 1.0, 0.0, 0.0]).view(1, 1, 2, 2)
    pred = torch.ones(1, 1, 2, 2)
    assert float(kld_loss(target, pred)) == pytest.approx(math.log(2), abs=1e-5)
    assert float(kld_loss(target, target)) == pytest.approx(0.0, abs=1e-5)
    # averaged over the batch: (log 2 + 0) / 2
    both = kld_loss(torch.cat([target, target]), torch.cat([pred, target]))
    assert float(both) == pytest.approx(math.log(2) / 2, abs=1e-5)


def test_cc_and_nss_losses():
    t = torch.rand(2, 1, 8, 8)
    assert float(cc_loss(t, 3 * t + 1)) == pytest.approx(0.0, abs=1e-5)
    assert float(cc_loss(t, -t)) == pytest.approx(2.0, abs=1e-5)
    p = torch.zeros(1, 1, 2, 2)
    p[0, 0, 1, 1] = 4.0  # sample std 2, mean 1 -> z = 1.5 at the fixated pixel
    fix = torch.zeros(1, 1, 2, 2)
    fix[0, 0, 1, 1] = 1
    assert float(nss_loss(fix, p)) == pytest.approx(-1.5, abs=1e-5)


def config(root, vgg16, out, epochs):
    return TrainConfig(
        dataset="osie",
        root=str(root),
        out=str(out),
        init=f"vgg16:{vgg16}",
        epochs=epochs,
        batch_size=2,
        lr=1e-4,
        limit_train=4,
        limit_val=2,
        seed=3,
    )


@pytest.mark.slow
def test_short_training_reduces_the_loss_and_resumes_exactly(tmp_path, osie_root, vgg16_path,
                                                              monkeypatch):  # fmt: skip
    history = Trainer(config(osie_root, vgg16_path, tmp_path / "a", 3)).fit(progress=False)
    losses = [h["train_loss"] for h in history]
    assert losses[-1] < losses[0]
    state = json.loads((tmp_path / "a" / "state.json").read_text())
    assert state["epoch"] == 3 and len(state["history"]) == 3
    names = {"best.safetensors", "last.safetensors", "log.csv", "curves.png", "state.json", "cache",
             *state["files"].values()}  # fmt: skip
    assert {p.name for p in (tmp_path / "a").iterdir()} == names  # old epochs pruned
    _, meta = load_arrays(tmp_path / "a" / "best.safetensors")
    assert meta.dataset == "osie" and meta.training_size == (240, 320)
    assert meta.input_order == "bgr" and meta.extra["epoch"] == str(state["best_epoch"])

    # interrupted after 2 epochs; then killed in epoch 3 after its files were written but
    # before the state was committed, with a half-written file left; resumed: the same weights
    Trainer(config(osie_root, vgg16_path, tmp_path / "b", 2)).fit(progress=False)
    import msinet.train

    def killed_at_commit(path):
        if Path(path).name == "state.json":
            (tmp_path / "b" / "epoch-0003.safetensors.partial").write_bytes(b"half")
            raise KeyboardInterrupt
        return written_whole(path)

    monkeypatch.setattr(msinet.train, "written_whole", killed_at_commit)
    with pytest.raises(KeyboardInterrupt):
        Trainer(config(osie_root, vgg16_path, tmp_path / "b", 3)).fit(resume=True, progress=False)
    monkeypatch.undo()
    assert json.loads((tmp_path / "b" / "state.json").read_text())["epoch"] == 2
    Trainer(config(osie_root, vgg16_path, tmp_path / "b", 3)).fit(resume=True, progress=False)
    assert not list((tmp_path / "b").glob("*.partial"))
    a = load_model(tmp_path / "a" / "last.safetensors").state_dict()
    b = load_model(tmp_path / "b" / "last.safetensors").state_dict()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # the frozen encoder stayed exactly the VGG16 weights
    from safetensors import safe_open

    with safe_open(str(vgg16_path), "np") as f:
        assert np.array_equal(
            a["encoder.conv3.conv3_1.weight"].numpy(), f.get_tensor("conv3_1.weight")
        )


@pytest.mark.slow
def test_full_phase_trains_the_encoder(tmp_path, osie_root, vgg16_path):
    c = config(osie_root, vgg16_path, tmp_path / "full", 1)
    c.phase, c.limit_train, c.limit_val, c.flip = "full", 2, 1, False
    Trainer(c).fit(progress=False)
    w = load_model(tmp_path / "full" / "last.safetensors").state_dict()
    from safetensors import safe_open

    with safe_open(str(vgg16_path), "np") as f:
        assert not np.array_equal(
            w["encoder.conv1.conv1_1.weight"].numpy(), f.get_tensor("conv1_1.weight")
        )


def test_resume_errors(tmp_path, osie_root, vgg16_path):
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        Trainer(config(osie_root, vgg16_path, tmp_path / "none", 1)).fit(resume=True)
    with pytest.raises(ValueError, match="phase"):
        Trainer(TrainConfig(root=str(osie_root), phase="both"))


@pytest.mark.slow
def test_fine_tuning_an_rgb_model_saves_an_rgb_model(tmp_path, osie_root, random_model):
    """The saved metadata comes from the model's own config: a converted official model
    (input_order=rgb) stays rgb through training and --resume."""
    from msinet.model_io import save_model
    from msinet.official import OFFICIAL_CONFIG
    from msinet.weights import WeightsMeta

    official = tmp_path / "official.safetensors"
    rgb = type(random_model)(OFFICIAL_CONFIG)
    rgb.load_state_dict(random_model.state_dict())
    save_model(rgb, official, WeightsMeta.from_config(OFFICIAL_CONFIG, dataset="salicon"))
    c = TrainConfig(dataset="osie", root=str(osie_root), out=str(tmp_path / "ft"),
                    init=str(official), epochs=1, batch_size=2, limit_train=2,
                    limit_val=1)  # fmt: skip
    Trainer(c).fit(progress=False)
    c.epochs = 2
    Trainer(c).fit(resume=True, progress=False)
    for name in ("best.safetensors", "last.safetensors"):
        model = load_model(tmp_path / "ft" / name)
        assert model.config.input_order == "rgb", name
        assert model.config.mean == OFFICIAL_CONFIG.mean


@pytest.mark.slow
def test_early_stopping_keeps_its_patience_across_resume(tmp_path, osie_root, vgg16_path,
                                                          monkeypatch):  # fmt: skip
    """Validation never improves after epoch 1: with patience 2 an uninterrupted run stops
    after epoch 3; interrupted after epoch 2 and resumed, it must stop there too."""
    val_losses = iter([1.0, 2.0, 2.0, 2.0, 2.0] * 2)

    def scores(self, model, val, val_x):
        return {"val_loss": next(val_losses), "NSS": 0.0, "CC": 0.0, "AUC-Judd": 0.0}

    monkeypatch.setattr(Trainer, "validate", scores)
    c = config(osie_root, vgg16_path, tmp_path / "p", 5)
    c.patience, c.limit_train, c.limit_val = 2, 2, 1
    assert len(Trainer(c).fit(progress=False)) == 3
    val_losses = iter([1.0, 2.0, 2.0, 2.0, 2.0])
    c = config(osie_root, vgg16_path, tmp_path / "q", 2)
    c.patience, c.limit_train, c.limit_val = 2, 2, 1
    Trainer(c).fit(progress=False)
    c.epochs = 5
    assert len(Trainer(c).fit(resume=True, progress=False)) == 3
