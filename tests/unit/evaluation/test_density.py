"""Calibrated fixation densities: their sums, their fit, their metadata, every engine and
front end giving the same one, and pysaliency agreeing with msinet evaluate."""

from __future__ import annotations

import io
import shutil

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from msinet.cli import main
from msinet.density import (
    DensityCalibration,
    FitImage,
    fit,
    grid_log_density,
    log_density,
    log_likelihood,
)
from msinet.evaluation.calibrate import check, model_maps
from msinet.evaluation.evaluate import (
    GroundTruthBuilder,
    LogDensity,
    evaluate,
    folder_predictions,
    model_rows,
    score_map,
)
from msinet.imaging.decode import load_image
from msinet.weights.files import source_hash, write_density
from msinet.weights.store import WeightsError, WeightsMeta, load_arrays

CAL = DensityCalibration(
    blur=0.02, exponent=1.3, floor=0.01, centre_weight=0.1, centre_mean=(0.48, 0.5),
    centre_std=(0.2, 0.22), fitted_on="test",
)  # fmt: skip


def smooth_map(shape=(240, 320), seed=0, sigma=8.0) -> np.ndarray:
    m = gaussian_filter(np.random.default_rng(seed).random(shape), sigma)
    return ((m - m.min()) / (m.max() - m.min())).astype(np.float32)


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory, random_weights):
    """The random model's weights with CAL stored in their metadata."""
    path = tmp_path_factory.mktemp("cal") / "calibrated.safetensors"
    shutil.copy(random_weights, path)
    write_density(path, CAL, source_hash(path))
    return path


@pytest.fixture(scope="module")
def shipped():
    import msinet

    pipeline = msinet.load()
    assert pipeline.engine.meta.density is not None, "the shipped model carries a calibration"
    return pipeline


@pytest.mark.parametrize("shape", [(1, 1), (7, 1001), (241, 321), (333, 517), (1001, 7)])
def test_densities_sum_to_one_on_odd_sizes(shape):
    ld = log_density(smooth_map(), shape, CAL)
    assert ld.shape == shape and ld.dtype == np.float32 and np.isfinite(ld).all()
    assert np.exp(ld.astype(np.float64)).sum() == pytest.approx(1.0, abs=1e-5)


def test_a_real_image_at_an_odd_size(shipped, osie_images):
    image = load_image(osie_images[0])[:333, :517]
    ld = shipped.log_density(image)
    assert ld.shape == (333, 517) and ld.dtype == np.float32
    assert np.exp(ld.astype(np.float64)).sum() == pytest.approx(1.0, abs=1e-5)
    saliency = shipped.predict(image)  # the density ranks pixels much as the map does
    assert np.corrcoef(np.exp(ld).ravel(), saliency.ravel())[0, 1] > 0.8


def test_without_prior_or_blur_the_density_is_the_powered_map():
    m = smooth_map((60, 80))
    cal = DensityCalibration(exponent=2.0, floor=1e-3)
    p = np.exp(grid_log_density(m, cal))
    expected = (m.astype(np.float64) + 1e-3) ** 2
    np.testing.assert_allclose(p, expected / expected.sum(), rtol=1e-9)


def test_fit_recovers_known_parameters():
    """Fixations drawn from a known calibrated density: the fit finds its parameters."""
    truth = DensityCalibration(blur=0.03, exponent=2.0, floor=0.02, centre_weight=0.2,
                               centre_mean=(0.5, 0.5), centre_std=(0.2, 0.2))  # fmt: skip
    rng = np.random.default_rng(1)
    images = []
    for i in range(40):
        m = smooth_map((60, 80), seed=i, sigma=1.0)  # detail that a 2.4 px blur changes
        p = np.exp(grid_log_density(m, truth)).ravel()
        cells = rng.choice(p.size, size=150, p=p / p.sum())
        rows, cols = np.divmod(cells, 80)
        xs, ys = (cols + rng.random(150)) * 10 - 0.5, (rows + rng.random(150)) * 10 - 0.5
        images.append(FitImage.make(m, (600, 800), xs, ys))
    found = fit(images, truth.centre_mean, truth.centre_std)
    assert log_likelihood(images, found) >= log_likelihood(images, truth) - 1e-3  # exact, on grid
    assert found.exponent == pytest.approx(2.0, rel=0.15)
    assert found.blur == pytest.approx(0.03, rel=0.3)
    assert found.centre_weight == pytest.approx(0.2, abs=0.07)


def test_calibration_travels_in_weights_metadata(calibrated, random_weights, tmp_path):
    from msinet.weights.onnx_graph import build_from_weights, meta_of

    _, meta = load_arrays(calibrated)
    assert meta.density == CAL
    assert meta_of(build_from_weights(calibrated)).density == CAL  # exported graphs carry it
    assert calibrated.stat().st_mode & 0o777 == random_weights.stat().st_mode & 0o777
    header = WeightsMeta(density=CAL).to_header()
    assert WeightsMeta.from_header(header).density == CAL
    with pytest.raises(WeightsError, match="density"):
        WeightsMeta.from_header({**header, "density": '{"blur": -1}'})
    other = tmp_path / "other.safetensors"
    shutil.copy(random_weights, other)
    before = other.read_bytes()
    with pytest.raises(WeightsError, match="other weights"):
        write_density(other, CAL, "0" * 64)  # fitted on another model: refused, file untouched
    assert other.read_bytes() == before


@pytest.mark.slow  # > 4 s on the 2-core machine: CI runs it
def test_every_engine_gives_the_same_density(shipped, osie_images):
    """The calibration lives in both shipped files: torch, onnx and onnx-int8 agree."""
    from msinet.pipeline import load
    from msinet.weights.store import default_weights

    image = load_image(osie_images[1])
    fp32 = default_weights()
    densities = {"onnx-int8": shipped.log_density(image)}
    for engine in ("torch", "onnx"):
        densities[engine] = load(fp32, engine=engine).log_density(image)
    ref = np.exp(densities["torch"].astype(np.float64))
    for name, ld in densities.items():
        p = np.exp(ld.astype(np.float64))
        assert np.corrcoef(p.ravel(), ref.ravel())[0, 1] > 0.99, name
        assert np.abs(p - ref).sum() < 0.05, name  # total variation distance x 2


@pytest.mark.slow
def test_calibration_improves_validation_log_likelihood(shipped, osie_root):
    """On the whole validation split (the gain is small on OSIE, whose maps the model was
    trained to match: 0.014 bits per fixation; per image it varies both ways)."""
    from msinet.data.osie import OSIE

    val = OSIE(osie_root).samples("val")
    report = check(model_maps(shipped, val, "maps", progress=False), val,
                   shipped.engine.meta.density)  # fmt: skip
    assert report.calibrated > report.raw_map
    assert report.calibrated > report.centre_prior + 1.0


def test_density_known_answers(osie_root):
    """IG of the baseline over itself is 0; LL of a uniform density is 0."""
    from msinet.data.osie import OSIE
    from msinet.evaluation.baselines import EmpiricalCenterBias

    data = OSIE(osie_root)
    val, train = data.samples("val")[:2], data.samples("train")
    centre = EmpiricalCenterBias.fit(train)
    build = GroundTruthBuilder(val, 24.0, centre)
    for i, s in enumerate(val):
        gt = build(i)
        for convention in ("mit", "pysaliency"):
            own = score_map(LogDensity(centre.log_density(s.fixations.shape)), gt,
                            ["IG", "LL", "NSS", "CC"], convention)  # fmt: skip
            assert own["IG"] == pytest.approx(0.0, abs=1e-12)
            uniform = LogDensity(np.full(s.fixations.shape, -np.log(np.prod(s.fixations.shape))))
            assert score_map(uniform, gt, ["LL"], convention)["LL"] == pytest.approx(0, abs=1e-9)
            assert own["LL"] > 0.3 and own["NSS"] > 0.5 and 0.1 < own["CC"] < 1


@pytest.mark.slow  # > 4 s on the 2-core machine: CI runs it
def test_pysaliency_information_gain_equals_evaluate(shipped, osie_root):
    """pysaliency's own IG and LL of msinet's density (through the adapter) are msinet
    evaluate's, on real OSIE images."""
    pytest.importorskip("pysaliency")
    from msinet.data.osie import OSIE
    from msinet.integrations.pysaliency import CentreBiasModel, MSINetModel, to_pysaliency

    data = OSIE(osie_root)
    val, train = data.samples("val")[:4], data.samples("train")
    rows = model_rows(shipped, "msinet")
    report = evaluate(val, train, rows, metrics=["IG", "LL"], convention="pysaliency",
                      progress=False)  # fmt: skip
    ours = report.summary()["msinet density"]
    stimuli, fixations = to_pysaliency(val)
    model = MSINetModel(shipped)
    ig = model.information_gain(stimuli, fixations, CentreBiasModel.fit(train), average="image")
    ll = model.information_gain(stimuli, fixations, average="image")  # over uniform
    assert ig == pytest.approx(ours["IG"], abs=1e-4)
    assert ll == pytest.approx(ours["LL"], abs=1e-4)
    assert ours["IG"] > 0.5  # the model knows more than the centre bias


@pytest.mark.slow  # the service through TestClient: an integration test, run by CI
def test_server_density_equals_the_cli(calibrated, osie_images, tmp_path, random_engine):
    from fastapi.testclient import TestClient

    from msinet.engine import load_engine
    from msinet.server.app import create_app
    from msinet.server.settings import Settings

    src = tmp_path / "in" / "photo.jpg"
    src.parent.mkdir()
    shutil.copy(osie_images[2], src)
    args = ["predict", str(src), "-o", str(tmp_path / "out"), "--weights", str(calibrated),
            "--engine", "onnx", "--format", "density", "-q"]  # fmt: skip
    assert main(args) == 0
    cli = np.load(tmp_path / "out" / "photo.npy")
    with TestClient(create_app(Settings(), engine=load_engine("onnx", calibrated))) as c:
        r = c.post("/v1/saliency?format=density", files={"image": src.read_bytes()})
        assert r.status_code == 200 and r.headers["content-type"] == "application/x-npy"
        served = np.load(io.BytesIO(r.content))
        bad = c.post("/v1/saliency?format=density&overlay=true", files={"image": src.read_bytes()})
        assert bad.status_code == 422
    assert served.shape == cli.shape == (600, 800) and served.dtype == np.float32
    np.testing.assert_allclose(served, cli, atol=1e-5)
    with TestClient(create_app(Settings(), engine=random_engine)) as c:  # no calibration
        r = c.post("/v1/saliency?format=density", files={"image": src.read_bytes()})
        assert r.status_code == 422 and "calibration" in r.json()["error"]["message"]


def test_density_output_needs_a_calibration(random_weights, osie_folder, tmp_path, capsys):
    folder = osie_folder(1)
    rc = main(["predict", str(folder), "-o", str(tmp_path / "o"), "--weights",
               str(random_weights), "--format", "density", "-q"])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "no density calibration" in err[0]
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_saved_densities_are_scored_as_densities(tmp_path, osie_root):
    from msinet.data.osie import OSIE

    (s,) = OSIE(osie_root).samples("val")[:1]
    ld = log_density(smooth_map(), s.fixations.shape, CAL)
    np.save(tmp_path / f"{s.name}.npy", ld)
    read = folder_predictions(tmp_path)(s, None)
    assert isinstance(read, LogDensity) and np.array_equal(read.values, ld)
    np.save(tmp_path / f"{s.name}.npy", np.exp(ld) / np.exp(ld).max())  # a map, not a density
    assert isinstance(folder_predictions(tmp_path)(s, None), np.ndarray)


def test_calibrate_honours_max_pixels(random_weights, osie_root, capsys):
    """`--max-pixels` reached the fit (it was parsed and then ignored): OSIE's 800x600 images
    over a 100,000-pixel limit stop the fit with one line naming the limit."""
    code = main(["calibrate", "--data", f"osie:{osie_root}", "--limit", "2", "--weights",
                 str(random_weights), "--max-pixels", "100000", "-q"])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and "100000" in err[0], err
