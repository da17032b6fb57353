"""Ground truth from real OSIE fixations, baselines where they should land, `msinet evaluate`."""

import json
import subprocess
import sys

import numpy as np
import pytest

from msinet.cli import main
from msinet.data import open_dataset
from msinet.data.fixations import Fixations
from msinet.evaluation.baselines import EmpiricalCenterBias, GaussianCenterBias, spectral_residual
from msinet.evaluation.evaluate import (
    METRICS,
    GroundTruthBuilder,
    evaluate,
    inter_observer,
    score_map,
)


@pytest.fixture(scope="module")
def osie(osie_root):
    return open_dataset("osie", osie_root)


def test_osie_reader(osie):
    all_, train, val = osie.samples(), osie.samples("train"), osie.samples("val")
    assert len(all_) == 600 and len(train) == 500 and len(val) == 100
    assert {s.name for s in train}.isdisjoint(s.name for s in val)
    assert all_[0].name == "1001" and all_[0].image.is_file()
    n = sum(len(s.fixations) for s in all_)
    assert 83_000 < n <= 84_134  # a few points fall outside the image and are dropped
    f = all_[0].fixations
    assert f.shape == (600, 800) and set(np.unique(f.subjects)) <= set(range(15))
    assert f.xs.min() >= -0.5 and f.xs.max() < 799.5
    with pytest.raises(ValueError, match="unknown split"):
        osie.samples("test")


def test_fixation_maps():
    # 1-based (1,1) is pixel (0,0); (3.4, 2.6) rounds to row 2, col 2; (0.2, 5) is outside
    f = Fixations.from_one_based([1, 3.4, 3.4, 0.2], [1, 2.6, 2.6, 5], [0, 0, 1, 1], (4, 5))
    assert len(f) == 3
    assert f.counts()[2, 2] == 2 and f.counts()[0, 0] == 1
    assert f.binary_map().sum() == 2
    d = f.density(1.0)
    assert d.max() == pytest.approx(1.0) and d[2, 2] == 1.0


def test_center_biases_fit_real_fixations(osie):
    train = osie.samples("train")
    g = GaussianCenterBias.fit(train)
    assert 0.4 < g.mean[0] < 0.6 and 0.4 < g.mean[1] < 0.6
    m = g((600, 800))
    assert m.shape == (600, 800) and np.unravel_index(m.argmax(), m.shape)[0] in range(200, 400)
    e = EmpiricalCenterBias.fit(train)((600, 800))
    assert e.shape == (600, 800) and e.min() >= 0


@pytest.mark.slow
def test_baselines_land_where_they_should(osie):
    """Centre bias NSS in 0.7..1.0 and inter-observer NSS above 3, on real validation images."""
    val, train = osie.samples("val")[:8], osie.samples("train")
    build = GroundTruthBuilder(val, 24.0, EmpiricalCenterBias.fit(train))
    g = GaussianCenterBias.fit(train)
    cb, io = [], []
    for i in range(len(val)):
        gt = build(i)
        cb.append(score_map(g((600, 800)), gt, ["NSS", "AUC-Judd"], seed=i))
        io.append(inter_observer(gt, ["NSS"], "mit", seed=i)["NSS"])
    assert 0.7 <= np.mean([c["NSS"] for c in cb]) <= 1.0
    assert 0.68 <= np.mean([c["AUC-Judd"] for c in cb]) <= 0.8
    assert np.mean(io) > 3.0


def test_evaluate_both_conventions(osie):
    val, train = osie.samples("val")[:3], osie.samples("train")
    density = {s.name: s.fixations.density(24) for s in val}
    oracle = {"oracle": lambda s, im: density[s.name]}  # the truth itself
    mit = evaluate(val, train, oracle, progress=False).summary()["oracle"]
    assert set(mit) == set(METRICS)
    assert mit["CC"] == pytest.approx(1.0) and mit["SIM"] == pytest.approx(1.0)
    assert mit["KLD"] == pytest.approx(0.0, abs=1e-6) and mit["NSS"] > 3
    pys = evaluate(val, train, oracle, convention="pysaliency", progress=False).summary()
    assert pys["oracle"]["CC"] == pytest.approx(1.0)
    assert pys["oracle"]["NSS"] != pytest.approx(mit["NSS"], abs=1e-3)  # per-fixation NSS


def test_spectral_residual_on_a_real_image(osie):
    from msinet.imaging.decode import load_image

    m = spectral_residual(load_image(osie.samples("val")[0].image))
    assert m.shape == (600, 800) and np.isfinite(m).all() and m.std() > 0


@pytest.mark.slow
def test_cli_evaluate_saved_maps_with_outputs(tmp_path, osie_root, random_weights):
    maps = tmp_path / "maps"
    val = sorted((osie_root / "stimuli").glob("15*.jpg"))[1:3]  # 1501, 1502
    assert (
        main(["predict", *map(str, val), "-o", str(maps), "--weights", str(random_weights), "-q"])
        == 0
    )
    out = tmp_path / "r"
    rc = main(
        [
            "evaluate",
            "--root",
            str(osie_root),
            "--predictions",
            str(maps),
            "--limit",
            "2",
            "--baselines",
            "--metrics",
            "NSS",
            "CC",
            "--json",
            f"{out}.json",
            "--csv",
            f"{out}.csv",
            "--figure",
            f"{out}.png",
            "-q",
        ]
    )
    assert rc == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["n_images"] == 2 and report["images"] == ["1501", "1502"]
    rows = report["summary"]
    assert {
        "predictions (maps)",
        "centre bias (Gaussian)",
        "spectral residual",
        "inter-observer (LOSO)",
    } <= set(rows)
    assert rows["inter-observer (LOSO)"]["NSS"] > rows["centre bias (Gaussian)"]["NSS"]
    assert (tmp_path / "r.csv").read_text().startswith("predictor,image,NSS,CC")
    assert (tmp_path / "r.png").stat().st_size > 10_000


def test_scoring_saved_maps_needs_no_torch(tmp_path, osie_root):
    """`--predictions` must work where torch is not installed: block its import and run."""
    maps = tmp_path / "maps"
    maps.mkdir()
    from PIL import Image

    yy, xx = np.mgrid[:600, :800]
    blob = np.exp(-((yy - 300) ** 2 + (xx - 400) ** 2) / (2 * 120.0**2))
    Image.fromarray((blob * 255).astype(np.uint8)).save(maps / "1501.png")
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from msinet.cli import main\n"
        f"sys.exit(main(['evaluate', '--root', {str(osie_root)!r}, '--predictions', "
        f"{str(maps)!r}, '--limit', '1', '--metrics', 'NSS', 'AUC-Judd', '-q']))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "predictions (maps)" in r.stdout and "NSS" in r.stdout


def test_cli_evaluate_scores_the_shipped_model_with_predicts_engine(osie_root, capsys):
    """No --weights and no --predictions: the shipped model, on the engine predict uses."""
    from msinet.pipeline import resolve

    argv = ["evaluate", "--root", str(osie_root), "--limit", "2", "--metrics", "NSS", "-q"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"msinet (shipped model, {resolve()[0]})" in out


def test_cli_evaluate_errors(osie_root, tmp_path, capsys):
    assert main(["evaluate", "--root", str(tmp_path), "--baselines"]) == 2
    assert main(["evaluate", "--root", str(osie_root), "--predictions", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "not an OSIE root" in err and "not found" in err


def test_validation_images_alone_fall_back_to_a_gaussian_centre_bias(osie):
    """Issue 17: a folder with no training images used to fail with "need at least one array
    to concatenate"; now the baseline is a fixed Gaussian centre bias, and the report says so."""
    val = osie.samples("val")[:3]
    oracle = {"oracle": lambda s, im: GroundTruthBuilder(val, 24.0, GaussianCenterBias())(
        [v.name for v in val].index(s.name)).density}  # fmt: skip
    report = evaluate(val, [], oracle, baselines=True, metrics=["NSS", "IG"], progress=False)
    assert "centre bias (empirical)" not in report.summary()
    assert report.summary()["oracle"]["IG"] > report.summary()["centre bias (Gaussian)"]["IG"]
    assert "fixed Gaussian centre bias" in report.table()
    with pytest.raises(ValueError, match="selection is empty"):
        evaluate([], [], oracle, dataset="osie", split="val", progress=False)
