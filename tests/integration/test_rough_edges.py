"""Issue 29, item 8: the first-hour rough edges, each with the behaviour it must have."""

import json
import subprocess
import sys

import pytest

from msinet.cli import main


def test_version(capsys):
    from msinet import __version__

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"msinet {__version__}"


def test_the_api_says_what_to_install_for_a_missing_engine(monkeypatch, random_weights):
    import msinet

    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.delitem(sys.modules, "msinet.engine.torch", raising=False)
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'msinet\[torch\]'"):
        msinet.load(random_weights, engine="torch")


def test_a_missing_input_creates_no_output_folder(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["predict", str(tmp_path / "nope.jpg"), "-o", str(out)]) == 1
    assert not out.exists() and "no such file or folder" in capsys.readouterr().err


def test_folders_and_unreadable_files_are_named_as_such(tmp_path, monkeypatch, osie_images):
    import os

    from msinet.imaging.decode import ImageError, load_image

    (tmp_path / "x.jpg").mkdir()
    with pytest.raises(ImageError, match="is a folder, not an image file"):
        load_image(tmp_path / "x.jpg")
    monkeypatch.setattr(os, "access", lambda *a, **k: False)  # root reads anything: pretend
    with pytest.raises(ImageError, match="permission denied"):
        load_image(osie_images[0])


def test_json_maps_carry_no_float_noise(random_engine, osie_images):
    from fastapi.testclient import TestClient

    from msinet.server.app import create_app
    from msinet.server.settings import Settings

    with TestClient(create_app(Settings(), engine=random_engine)) as c:
        r = c.post("/v1/saliency?format=json", content=osie_images[0].read_bytes(),
                   headers={"content-type": "image/jpeg"})  # fmt: skip
    values = [v for row in r.json()["saliency"] for v in row]
    assert all(round(v, 3) == v and len(repr(v)) <= 5 for v in values)


def test_info_shows_metadata_as_values_and_the_pipeline_has_a_repr():
    import msinet
    from msinet.weights.store import default_weights

    r = subprocess.run([sys.executable, "-m", "msinet", "info", str(default_weights("onnx-int8"))],
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    info = json.loads(r.stdout)
    assert info["training_size"] == [240, 320] and isinstance(info["density"], dict)
    text = repr(msinet.load(engine="onnx"))
    assert text.startswith("Pipeline(engine='onnx', size=240x320, dataset=")


def test_the_installed_package_wins_beside_a_folder_named_msinet(tmp_path):
    """Issue 29, item 4: from the folder above a checkout named msinet, a script (and Ray's
    workers, started there) import the installed msinet, not the checkout as a namespace."""
    (tmp_path / "msinet" / "src").mkdir(parents=True)  # a checkout's root: no __init__.py
    script = tmp_path / "use.py"
    script.write_text("import msinet\nprint(msinet.__file__, callable(msinet.load))\n")
    r = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                       text=True, timeout=120)  # fmt: skip
    assert r.returncode == 0 and r.stdout.strip().endswith("__init__.py True"), r.stderr
