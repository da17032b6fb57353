"""The loss against hand-computed values; short real trainings: loss goes down, resume is exact."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from msinet.imaging.files import written_whole
from msinet.training.config import TrainConfig
from msinet.training.losses import cc_loss, kld_loss, nss_loss
from msinet.training.train import Phase, Trainer
from msinet.weights.store import load_arrays
from msinet.weights.torch_io import load_model


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
        size="120x160",  # a quarter of OSIE's 240x320: the same code paths, a quarter the time
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
    assert meta.dataset == "osie" and meta.training_size == (120, 160)
    assert meta.input_order == "bgr" and meta.extra["epoch"] == str(state["best_epoch"])

    # interrupted after 2 epochs; then killed in epoch 3 after its files were written but
    # before the state was committed, with a half-written file left; resumed: the same weights
    Trainer(config(osie_root, vgg16_path, tmp_path / "b", 2)).fit(progress=False)
    import msinet.training.train

    def killed_at_commit(path):
        if Path(path).name == "state.json":
            (tmp_path / "b" / "epoch-0003.safetensors.partial").write_bytes(b"half")
            raise KeyboardInterrupt
        return written_whole(path)

    monkeypatch.setattr(msinet.training.train, "written_whole", killed_at_commit)
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
    with pytest.raises(ValueError, match="--data NAME:DIR"):
        Trainer(TrainConfig(init="x"))


@pytest.mark.parametrize("data, weights, message", [
    (["osie"], [], "NAME:DIR"),
    (["nope:/x"], [], "unknown dataset 'nope'"),
    (["osie:/a", "osie:/b"], [], "twice"),
    (["osie:/a"], ["mit1003=1"], "not in --data: mit1003"),
    (["osie:/a"], ["osie=-1"], "W >= 0"),
    (["osie:/a"], ["osie=x"], "W >= 0"),
    (["osie:/a"], ["osie=0"], "nothing to train on"),
])  # fmt: skip
def test_bad_sources_are_one_clear_error(data, weights, message):
    from msinet.training.trainset import parse_sources

    with pytest.raises(ValueError, match=message):
        parse_sources(data, weights)


def test_sources_and_weights():
    from msinet.training.trainset import Source, parse_sources

    got = parse_sources(["osie:/d/osie", "eyecrowd:C:/x"], ["eyecrowd=2.5"])
    assert got == [Source("osie", "/d/osie", 1.0), Source("eyecrowd", "C:/x", 2.5)]


def multi(osie_root, eyecrowd_root, out, epochs, **kw):
    c = TrainConfig(data=[f"osie:{osie_root}", f"eyecrowd:{eyecrowd_root}"], out=str(out),
                    init="", phase="partial", epochs=epochs, batch_size=2, lr=1e-4,
                    limit_train=3, limit_val=2, seed=5, sample_weight=["eyecrowd=0.5"],
                    size="120x160")  # fmt: skip
    for k, v in kw.items():
        setattr(c, k, v)
    return c


def test_epoch_order_follows_the_sample_weights(osie_root, eyecrowd_root, tmp_path):
    t = Trainer(multi(osie_root, eyecrowd_root, tmp_path, 1, limit_train=8,
                      sample_weight=["eyecrowd=1.5"]))  # fmt: skip
    parts = [type("P", (), {"samples": list(range(8))})()] * 2
    order = t._order(1, parts)
    assert (order[:, 0] == 0).sum() == 8 and (order[:, 0] == 1).sum() == 12
    # every osie image once; eyecrowd each once, then four of them again; flips in the row bit
    assert sorted((order[order[:, 0] == 0, 1] // 2).tolist()) == list(range(8))
    again = np.bincount((order[order[:, 0] == 1, 1] // 2).numpy(), minlength=8)
    assert again.min() == 1 and again.max() == 2 and again.sum() == 12
    assert torch.equal(order, t._order(1, parts)) and not torch.equal(order, t._order(2, parts))


@pytest.mark.slow
def test_partial_phase_on_two_datasets(tmp_path, osie_root, eyecrowd_root, random_weights,
                                       capsys, monkeypatch):  # fmt: skip
    """Loss goes down; blocks 1-3 stay frozen and conv4 trains; the cache is reused (and equals
    computing the encoder), rebuilt when truncated; a resumed run equals an uninterrupted one."""
    import msinet.training.trainset
    from msinet.imaging.decode import load_image
    from msinet.imaging.preprocess import preprocess

    c = multi(osie_root, eyecrowd_root, tmp_path / "a", 3, init=str(random_weights),
              cache=str(tmp_path / "cache"))  # fmt: skip
    history = Trainer(c).fit(progress=False)
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert {"osie/val_loss", "eyecrowd/NSS"} <= set(history[0])
    assert history[0]["val_loss"] == pytest.approx(
        (history[0]["osie/val_loss"] + history[0]["eyecrowd/val_loss"]) / 2
    )
    start, end = (
        load_model(random_weights).state_dict(),
        load_model(tmp_path / "a" / "last.safetensors").state_dict(),
    )
    assert torch.equal(start["encoder.conv3.conv3_3.weight"], end["encoder.conv3.conv3_3.weight"])
    assert not torch.equal(start["encoder.conv4.conv4_1.weight"],
                           end["encoder.conv4.conv4_1.weight"])  # fmt: skip
    _, meta = load_arrays(tmp_path / "a" / "best.safetensors")
    assert meta.dataset == "osie+eyecrowd" and "eyecrowd/CC" in meta.extra

    # 1 epoch, then resumed to 3: the run of 3 at once, within float noise. Not bit for bit: on
    # this path oneDNN's gradient sums differ in the last bits between two fresh runs too (one
    # dataset's head-phase resume is exact, above), and Adam scales that noise up to a step
    # (<= lr) for weights whose gradients are ~0; the losses show it is noise.
    c2 = multi(osie_root, eyecrowd_root, tmp_path / "b", 1, init=str(random_weights),
               cache=str(tmp_path / "cache"))  # fmt: skip
    Trainer(c2).fit(progress=False)
    c2.epochs = 3
    resumed = Trainer(c2).fit(resume=True, progress=False)
    for x, y in zip(history, resumed, strict=True):
        assert y["train_loss"] == pytest.approx(x["train_loss"], rel=1e-3)
        assert y["val_loss"] == pytest.approx(x["val_loss"], rel=1e-3)
    b = load_model(tmp_path / "b" / "last.safetensors").state_dict()
    for k in end:
        assert float((end[k] - b[k]).abs().max()) <= 2 * c.lr, k

    # the cached pool3 gives the loss of computing blocks 1-3 (up to fp16 rounding)
    t = Trainer(c)
    t.progress, t.eps = False, 1e-7
    model = load_model(random_weights).eval()

    def no_rebuild(*a, **k):
        raise AssertionError("the cache was rebuilt")

    monkeypatch.setattr(msinet.training.train, "build_part", no_rebuild)
    _, val = t._parts(model)
    x, maps, fix = val[1].batch([0])
    image, _ = preprocess(load_image(val[1].samples[0].image), t.size)
    with torch.no_grad():
        cached = t._loss(t._forward(Phase(model, c.phase), x), maps, fix)
        direct = model.forward_raw(torch.from_numpy(image.transpose(2, 0, 1)[None].copy()))
        direct = t._loss(normalize(direct), maps, fix)
    assert float(cached) == pytest.approx(float(direct), rel=2e-3)
    monkeypatch.undo()

    # a truncated part is noticed and rebuilt, in one line
    part = next((tmp_path / "cache").glob("osie-train-*"))
    with open(part / "inputs.npy", "r+b") as f:
        f.truncate(1000)
    capsys.readouterr()
    t._parts(model)
    assert "does not verify" in capsys.readouterr().err
    assert (part / "inputs.npy").stat().st_size > 1000


def normalize(raw):
    from msinet.model.net import normalize_minmax

    return normalize_minmax(raw)


@pytest.mark.slow
def test_fine_tuning_an_rgb_model_saves_an_rgb_model(tmp_path, osie_root, random_model):
    """The saved metadata comes from the model's own config: a converted official model
    (input_order=rgb) stays rgb through training and --resume."""
    from msinet.weights.official.mapping import OFFICIAL_CONFIG
    from msinet.weights.store import WeightsMeta
    from msinet.weights.torch_io import save_model

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

    def scores(self, model, parts):
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


def test_eval_sigma_sets_the_validation_densities(osie_root, tmp_path):
    c = TrainConfig(root=str(osie_root), init="x", out=str(tmp_path), limit_val=1, eval_sigma=9.0)
    ((_, density),) = Trainer(c)._val_truth[0]
    sample = Trainer(c).splits[0][1][0]
    np.testing.assert_array_equal(density, sample.fixations.density(9.0))
    c.eval_sigma = 0.0  # the dataset's own
    ((_, default),) = Trainer(c)._val_truth[0]
    np.testing.assert_array_equal(default, sample.fixations.density(24.0))
