"""Folder jobs called directly, without the CLI: what they write, what they report, and one bad
input costing nobody else theirs, on real OSIE images."""

import json

import numpy as np
import pytest
from PIL import Image

from msinet.jobs.crop import crops_to_folder
from msinet.jobs.predict import maps_to_folder
from msinet.pipeline import load


@pytest.fixture(scope="module")
def pipeline(random_weights):
    return load(random_weights, engine="onnx", size="96x128", threads=1)


def test_maps_to_folder_writes_every_good_image_and_reports_the_bad_one(pipeline, osie_folder,
                                                                         tmp_path):  # fmt: skip
    folder = osie_folder(3)
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    report = maps_to_folder(pipeline, [str(folder)], tmp_path / "out", batch_size=2,
                            overlay={"colormap": "jet", "alpha": 0.5}, progress=False)  # fmt: skip
    stems = sorted(p.stem for p in folder.glob("*.jpg") if p.name != "broken.jpg")
    assert report.done == 3
    assert sorted(p.stem for p in (tmp_path / "out").glob("*.png")) == stems
    assert len(list((tmp_path / "out").glob("*_overlay.jpg"))) == 3
    assert len(report.failures) == 1 and report.failures[0].startswith(str(folder / "broken.jpg"))
    assert report.lines == [f"3 saliency map(s) written to {tmp_path / 'out'}"]
    original = Image.open(folder / f"{stems[0]}.jpg")
    assert Image.open(tmp_path / "out" / f"{stems[0]}.png").size == original.size


def test_maps_into_the_input_folder_never_overwrite_an_input(pipeline, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(np.full((60, 80, 3), 90, np.uint8)).save(folder / "a.png")
    before = (folder / "a.png").read_bytes()
    report = maps_to_folder(pipeline, [str(folder / "a.png")], folder, progress=False)
    assert report.done == 1 and report.failures == []
    assert (folder / "a.png").read_bytes() == before
    assert len(list(folder.glob("*.png"))) == 2  # the map took another name


def test_nothing_to_do_creates_no_folder(pipeline, tmp_path):
    report = maps_to_folder(pipeline, [str(tmp_path / "missing.jpg")], tmp_path / "out",
                            progress=False)  # fmt: skip
    assert report.done == 0 and len(report.failures) == 1 and report.lines == []
    assert not (tmp_path / "out").exists()


def test_crops_to_folder_writes_exact_aspects_and_the_json(pipeline, osie_folder, tmp_path):
    folder = osie_folder(2)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    report = crops_to_folder(pipeline, [str(folder)], tmp_path / "out",
                             {"1:1": (1, 1), "16:9": (16, 9)}, json_path=tmp_path / "c.json",
                             progress=False)  # fmt: skip
    assert report.done == 2 and len(report.failures) == 1
    entries = json.loads((tmp_path / "c.json").read_text())
    assert len(entries) == 2
    for name, entry in entries.items():
        left, top, right, bottom = entry["16:9"]
        assert (right - left) * 9 == (bottom - top) * 16
        square = Image.open(tmp_path / "out" / f"{name.rsplit('.', 1)[0]}_1x1.jpg")
        assert square.size[0] == square.size[1] == 600  # OSIE is 800x600
