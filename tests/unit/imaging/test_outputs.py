"""Issue 17: one output name per input, never two inputs on one file; file-system trouble and
per-image failures as one line each, the other images still written."""

import shutil

import numpy as np
import pytest
from PIL import Image

from msinet.cli import main
from msinet.imaging.outputs import output_names


def test_names_are_unique_stable_and_readable():
    paths = ["d/x/1.jpg", "d/y/x/1.jpg", "d/same.jpg", "d/same.png", "d/a.jpg", "d/b/A.JPG",
             "s3://bucket/k/c.jpg"]  # fmt: skip
    names = output_names(paths)
    assert names == {"d/x/1.jpg": "x_1", "d/y/x/1.jpg": "y_x_1", "d/same.jpg": "same_jpg",
                     "d/same.png": "same_png", "d/a.jpg": "a", "d/b/A.JPG": "b_A",
                     "s3://bucket/k/c.jpg": "c"}  # fmt: skip
    assert output_names(reversed(paths)) == names  # the same whatever the order
    # the last resort: names that still collide, case-insensitively, get a number
    tricky = output_names(["p/x_1.jpg", "p/x/1.jpg", "q/x_1.jpg", "X_1.jpg"])
    assert len({n.casefold() for n in tricky.values()}) == 4


@pytest.mark.slow  # > 4 s on the 2-core machine: CI runs it
def test_predict_writes_one_file_per_input(tmp_path, osie_images, random_weights, capsys):
    src = tmp_path / "in"
    for rel, image in (("x/1.jpg", 0), ("y/x/1.jpg", 1), ("same.jpg", 2)):
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(osie_images[image], src / rel)
    Image.open(osie_images[3]).save(src / "same.png")
    Image.new("L", (1, 100_000), 128).save(src / "strip.png")  # too thin: refused, not fatal
    out = tmp_path / "out"
    rc = main(["predict", str(src), "-o", str(out), "--weights", str(random_weights), "-q"])
    assert rc == 1
    assert sorted(p.name for p in out.iterdir()) == [
        "same_jpg.png", "same_png.png", "x_1.png", "y_x_1.png"]  # fmt: skip
    err = capsys.readouterr().err
    assert "4 saliency map(s) written" in err and "strip.png" in err and "too thin" in err
    # each map is its own image's: the two 1.jpg differ
    a, b = (np.asarray(Image.open(out / n), np.int16) for n in ("x_1.png", "y_x_1.png"))
    assert np.abs(a - b).max() > 0


@pytest.mark.parametrize("make, words", [
    (lambda t: (t / "file").touch() or t / "file", "file exists"),
    (lambda t: (t / "file").touch() or t / "file" / "sub", "not a directory"),
])  # fmt: skip
def test_unusable_output_folders_are_one_line(tmp_path, osie_folder, random_weights, capsys,
                                              make, words):  # fmt: skip
    out = make(tmp_path)
    rc = main(["predict", str(osie_folder(1)), "-o", str(out), "--weights", str(random_weights),
               "-q"])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and words in err and str(out) in err


@pytest.mark.slow  # > 4 s on the 2-core machine: CI runs it
def test_a_write_that_fails_is_one_line_per_image_and_leaves_no_partial_file(
    tmp_path, osie_folder, random_weights, capsys, monkeypatch
):
    """Permission denied (as a non-root user gets it) on one map: that image is reported, the
    others are written whole."""
    import msinet.imaging.files

    real = msinet.imaging.files.written_whole
    calls = []

    def failing_second(path):
        calls.append(path)
        if len(calls) == 2:
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(msinet.imaging.files, "written_whole", failing_second)
    out = tmp_path / "out"
    rc = main(["predict", str(osie_folder(3)), "-o", str(out), "--weights", str(random_weights),
               "-q"])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 1 and "permission denied" in err and str(calls[1]) in err
    assert len(list(out.glob("*.png"))) == 2 and not list(out.glob("*.partial"))


@pytest.mark.slow
def test_sigint_is_one_line_and_leaves_no_partial_file(tmp_path, osie_folder, random_weights):
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "out"

    # Ctrl-C's default action, even where this test runs as a background job (which starts its
    # children with SIGINT ignored)
    def default_sigint() -> None:
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    p = subprocess.Popen([sys.executable, "-m", "msinet.cli", "predict", str(osie_folder(30)),
                          "-o", str(out), "--weights", str(random_weights), "-q"],
                         stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint)  # fmt: skip
    deadline = time.time() + 120
    while not (out.is_dir() and any(out.glob("*.png"))) and time.time() < deadline:
        time.sleep(0.05)
    p.send_signal(signal.SIGINT)
    err = p.communicate(timeout=60)[1]
    assert p.returncode == 130 and err.strip() == "msinet: error: interrupted", err
    assert not list(out.glob("*.partial"))
    for m in out.glob("*.png"):  # every map there is whole
        Image.open(m).load()
