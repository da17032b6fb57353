"""Areas of interest: known answers on synthetic densities, the region rules, and the report,
the CLI and variants on real OSIE images with the shipped model."""

import json

import numpy as np
import pytest
from PIL import Image

import msinet
from msinet.aoi import SEEN_BY, RegionError, compare, from_json, measure, parse_region, report
from msinet.aoi.regions import MAX_REGIONS, RegionSpec, checked
from msinet.cli import main


def log_of(p: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.log(p / p.sum()).astype(np.float32)


def test_a_box_holding_all_the_mass_has_share_one():
    p = np.zeros((60, 80))
    p[10:20, 30:50] = 1.0
    r = measure(
        log_of(p), [RegionSpec("all", (30, 10, 20, 10)), RegionSpec("none", (0, 40, 80, 20))]
    )
    (a, b) = r["regions"]
    assert a["share"] == 1.0 and b["share"] == 0.0
    assert a["lift"] == pytest.approx(60 * 80 / 200, rel=1e-3)
    assert a["seen_by"] == pytest.approx(float(SEEN_BY(1.0)), abs=1e-4) and b["seen_by"] == 0.0
    assert r["covered_share"] == 1.0 and r["leaks"] == []


def test_halves_sum_to_one_and_fractions_equal_pixels():
    rng = np.random.default_rng(0)
    log_p = log_of(rng.random((90, 120)) + 0.01)
    r = measure(log_p, [RegionSpec("left", (0, 0, 0.5, 1)), RegionSpec("right", (60, 0, 60, 90)),
                        RegionSpec("left px", (0, 0, 60, 90))])  # fmt: skip
    left, right, left_px = r["regions"]
    assert left["share"] + right["share"] == pytest.approx(1.0, abs=2e-4)
    assert left["box"] == left_px["box"] == [0, 0, 60, 90] and left["share"] == left_px["share"]


def test_uniform_attention_has_lift_one_and_entropy_one():
    r = measure(np.full((40, 50), -np.log(2000), np.float32), [RegionSpec("q", (0, 0, 25, 20))])
    assert r["regions"][0]["share"] == pytest.approx(0.25, abs=1e-4)
    assert r["regions"][0]["lift"] == pytest.approx(1.0, abs=1e-3)
    assert r["entropy"] == pytest.approx(1.0, abs=1e-4)
    assert r["top10_share"] == pytest.approx(0.1, abs=1e-3)


def test_a_salient_place_outside_every_box_is_a_leak():
    p = np.full((100, 100), 1e-4)
    p[70:80, 70:80] = 1.0  # the hot spot
    p[10:20, 10:20] = 0.5
    r = measure(log_of(p), [RegionSpec("logo", (5, 5, 20, 20))])
    (leak,) = r["leaks"]
    assert leak["box"] == [70, 70, 10, 10] and leak["share"] > 0.6
    assert r["regions"][0]["share"] == pytest.approx(1 - r["leaks"][0]["share"] - 1e-4 * (
        10000 - 200) / p.sum(), abs=0.01)  # fmt: skip


def test_seen_by_grows_with_share_from_zero():
    s = np.linspace(0, 1, 50)
    v = SEEN_BY(s)
    assert v[0] == 0 and np.all(np.diff(v) > 0) and v[-1] <= 1


@pytest.mark.parametrize("text, message", [
    ("logo", "NAME=X,Y,W,H"),
    ("logo=1,2,3", "4 numbers"),
    ("logo=1,2,x,4", "4 numbers"),
    ("logo=1,2,0,4", "above 0"),
    ("logo=-1,2,3,4", "0 or more"),
    ("logo=1,2,nan,4", "finite"),
    ("=1,2,3,4", "name"),
])  # fmt: skip
def test_malformed_regions_are_one_line_errors(text, message):
    with pytest.raises(RegionError, match=message):
        parse_region(text)


def test_region_rules_against_the_image():
    with pytest.raises(RegionError, match="outside the 80x60 image"):
        RegionSpec("big", (50, 10, 40, 10)).pixels((80, 60))
    with pytest.raises(RegionError, match="less than a pixel"):
        RegionSpec("thin", (0.5, 0.5, 0.001, 0.2)).pixels((80, 60))
    with pytest.raises(RegionError, match="named twice"):
        checked([parse_region("a=1,1,5,5"), parse_region("a=2,2,5,5")])
    with pytest.raises(RegionError, match="no regions"):
        checked([])
    with pytest.raises(RegionError, match=f"at most {MAX_REGIONS}"):
        checked([RegionSpec(str(i), (0, 0, 1, 1)) for i in range(MAX_REGIONS + 1)])
    assert from_json({"a": [1, 2, 3, 4]}) == from_json([{"name": "a", "box": [1, 2, 3, 4]}])
    with pytest.raises(RegionError):
        from_json([{"name": "a", "box": [1, 2, 3, 4], "colour": "red"}])
    with pytest.raises(RegionError):
        from_json("logo")


@pytest.fixture(scope="module")
def shipped():
    return msinet.load()


def test_report_on_a_real_image(shipped, osie_images):
    r = report(
        shipped, osie_images[0], {"centre": [0.25, 0.25, 0.5, 0.5], "corner": [0, 0, 80, 60]}
    )
    assert r["image"] == str(osie_images[0]) and r["size"] == [800, 600]
    assert [g["name"] for g in r["regions"]] == ["centre", "corner"]
    centre, corner = r["regions"]
    assert set(centre) == {"name", "box", "share", "seen_by", "lift"}
    assert centre["box"] == [200, 150, 400, 300]
    assert centre["share"] > corner["share"] and centre["lift"] > 1 > corner["lift"]
    assert 0 < r["entropy"] < 1 and r["covered_share"] >= centre["share"]


@pytest.mark.slow  # > 4 s on the 2-core machine: CI runs it
def test_cli_compares_variants_and_writes_json_and_figure(osie_images, tmp_path, capsys):
    a, b = osie_images[0], osie_images[1]
    regions = tmp_path / "regions.json"
    regions.write_text(json.dumps({"centre": [0.25, 0.25, 0.5, 0.5]}))
    out, fig = tmp_path / "r.json", tmp_path / "r.png"
    code = main(["aoi", str(a), str(b), "--regions", str(regions), "--region",
                 "top=0,0,800,150", "--json", str(out), "--figure", str(fig), "-q"])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    reports = json.loads(out.read_text())
    assert [r["image"] for r in reports] == [str(a), str(b)]
    assert [g["name"] for g in reports[1]["regions"]] == ["top", "centre"]  # --region first
    assert "variants, share (seen by) per region:" in captured.out
    assert compare(reports)["regions"][0]["share"] == [r["regions"][0]["share"] for r in reports]
    with Image.open(fig) as im:
        assert im.format == "PNG" and im.size[0] > im.size[1]


def test_cli_bad_region_and_bad_image(osie_images, tmp_path, capsys):
    assert main(["aoi", str(osie_images[0]), "--region", "logo=1,2,3"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "4 numbers" in err
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"no image")
    code = main(["aoi", str(osie_images[0]), str(broken), "--region", "wide=0,0,900,10", "-q"])
    err = capsys.readouterr().err
    assert code == 1 and "outside the 800x600 image" in err and str(broken) in err
