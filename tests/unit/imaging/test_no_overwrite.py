"""Issue 29, item 1: no command ever writes over one of its inputs (`predict d -o d`)."""

import hashlib
import shutil
from pathlib import Path

import pytest

from msinet.cli import main
from msinet.imaging.files import PROTECTED, OverwriteRefused, protect, protecting, write_bytes_whole
from msinet.imaging.outputs import clear_of_inputs, map_files, output_names


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}


def test_names_that_would_land_on_an_input_are_renamed(tmp_path):
    for name in ("photo.png", "x.jpg", "photo_saliency.png", "y.png", "y_overlay.jpg"):
        (tmp_path / name).write_bytes(b"input")
    inputs = [tmp_path / n for n in ("photo.png", "x.jpg", "photo_saliency.png", "y.png")]
    names = clear_of_inputs(output_names(inputs), tmp_path,
                            lambda k, stem: map_files(stem, "png", overlay=True))  # fmt: skip
    assert names[str(tmp_path / "x.jpg")] == "x"  # x.png is no input
    # photo.png -> photo_saliency (taken by an input's own stem and file) -> photo_saliency-2
    assert names[str(tmp_path / "photo.png")] == "photo_saliency-2"
    assert names[str(tmp_path / "photo_saliency.png")] == "photo_saliency_saliency"
    assert names[str(tmp_path / "y.png")] == "y_saliency"
    assert len(set(names.values())) == 4


def test_a_protected_input_is_never_replaced(tmp_path):
    target = tmp_path / "in.png"
    target.write_bytes(b"original")
    with protecting():
        protect([target])
        with pytest.raises(OverwriteRefused, match="is an input"):
            write_bytes_whole(tmp_path / "." / "in.png", b"map")
    assert target.read_bytes() == b"original" and not list(tmp_path.glob("*.partial"))
    assert not PROTECTED  # nothing outlives the command


def test_predict_into_its_own_input_folder_leaves_every_input_byte_identical(
    tmp_path, osie_images, random_weights
):
    d = tmp_path / "d"
    d.mkdir()
    shutil.copy(osie_images[0], d / "x.jpg")
    from PIL import Image

    Image.open(osie_images[1]).save(d / "photo.png")
    before = digests(d)
    assert main(["predict", str(d), "-o", str(d), "--weights", str(random_weights),
                 "--engine", "onnx", "--overlay", "-q"]) == 0  # fmt: skip
    after = digests(d)
    assert {k: after[k] for k in before} == before
    assert {"x.png", "x_overlay.jpg", "photo_saliency.png", "photo_saliency_overlay.jpg"} <= set(
        after
    )


def test_crop_into_its_own_input_folder_keeps_the_inputs(tmp_path, osie_images, random_weights):
    d = tmp_path / "d"
    d.mkdir()
    shutil.copy(osie_images[0], d / "a_1x1.jpg")  # the name a crop of a.jpg would take
    shutil.copy(osie_images[1], d / "a.jpg")
    before = digests(d)
    assert main(["crop", str(d), "-o", str(d), "--weights", str(random_weights), "--engine",
                 "onnx", "-q"]) == 0  # fmt: skip
    after = digests(d)
    assert {k: after[k] for k in before} == before and "a_saliency_1x1.jpg" in after
