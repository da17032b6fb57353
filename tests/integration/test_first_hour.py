"""What a new user meets first: one-line errors, help with defaults, consistent error bodies."""

import subprocess
import sys

import pytest
from fastapi.testclient import TestClient

from msinet.cli import main
from msinet.server.app import create_app
from msinet.server.settings import Settings


def run_without(module: str, argv: list[str]) -> subprocess.CompletedProcess:
    """msinet's CLI in a fresh process where `module` cannot be imported."""
    code = f"import sys; sys.modules[{module!r}] = None\nfrom msinet.cli import main\n" \
           f"sys.exit(main({argv!r}))"  # fmt: skip
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)


@pytest.mark.parametrize("module, argv, extra", [
    ("onnxruntime", ["predict", "x.jpg", "-o", "out", "--engine", "onnx"], "onnx"),
    ("torch", ["predict", "x.jpg", "-o", "out", "--engine", "torch"], "torch"),
    ("uvicorn", ["serve", "--port", "1"], "serve"),
    ("pydantic", ["serve", "--port", "1"], "serve"),
])  # fmt: skip
def test_a_missing_extra_is_one_line_naming_it(tmp_path, module, argv, extra):
    r = run_without(module, argv)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1] == (
        f"msinet: error: {module} is not installed; pip install 'msinet[{extra}]'")  # fmt: skip


def test_predict_needs_no_server_packages(tmp_path, osie_images):
    r = run_without("pydantic", ["predict", str(osie_images[0]), "-o", str(tmp_path), "-q"])
    assert r.returncode == 0, r.stderr
    assert (tmp_path / f"{osie_images[0].stem}.png").is_file()


def test_bad_arguments_are_argparse_errors_before_any_work(tmp_path, osie_images, capsys):
    out = tmp_path / "out"
    for bad in (["--alpha", "3"], ["--batch-size", "0"], ["--threads", "-1"]):
        with pytest.raises(SystemExit) as e:
            main(["predict", str(osie_images[0]), "-o", str(out), "--overlay", *bad])
        assert e.value.code == 2
        assert "must be" in capsys.readouterr().err
    assert not out.exists()  # nothing half-written


def test_skipped_files_are_named_once(tmp_path, osie_images, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    (folder / "good.jpg").write_bytes(osie_images[0].read_bytes())
    assert main(["predict", str(folder), "-o", str(tmp_path / "out"), "-q"]) == 1
    err = capsys.readouterr().err
    line = next(x for x in err.splitlines() if x.startswith("msinet: skipped"))
    assert line.count("broken.jpg") == 1 and "not an image" in line
    assert (tmp_path / "out" / "good.png").is_file()


def test_help_shows_every_default_and_describes_every_option():
    r = subprocess.run([sys.executable, "-m", "msinet.cli", "predict", "--help"],
                       capture_output=True, text=True, check=True)  # fmt: skip
    text = " ".join(r.stdout.split())
    for expected in ("(default: jet)", "(default: 0.6)", "(default: 50000000)",
                     "folder for <stem>.png maps"):  # fmt: skip
        assert expected in text


@pytest.fixture(scope="module")
def client(random_engine):
    with TestClient(create_app(Settings(), engine=random_engine)) as c:
        yield c


def test_every_status_has_the_documented_error_body(client):
    for r in (client.get("/nope"), client.delete("/v1/saliency"),
              client.post("/v1/saliency", content=b"junk",
                          headers={"content-type": "image/png"})):  # fmt: skip
        body = r.json()
        assert set(body) == {"error"} and body["error"]["status"] == r.status_code
        assert not body["error"]["message"].startswith("<bytes>")
    assert client.get("/nope").status_code == 404
    assert client.delete("/v1/saliency").status_code == 405


def test_batch_results_carry_file_names(client, osie_images):
    files = [("images", ("first.jpg", osie_images[0].read_bytes(), "image/jpeg")),
             ("images", ("junk.png", b"junk", "image/png"))]  # fmt: skip
    results = client.post("/v1/saliency:batch?format=json", files=files).json()["results"]
    assert [r["file"] for r in results] == ["first.jpg", "junk.png"]
    assert "shape" in results[0] and results[1]["error"]["status"] == 422


def test_metrics_label_the_docs_routes(client):
    client.get("/docs")
    client.get("/openapi.json")
    client.get("/nope")
    text = client.get("/metrics").text
    assert 'route="/docs"' in text and 'route="/openapi.json"' in text
    assert 'route="other"' in text  # only the real 404


def test_api_docs_need_no_network(client):
    """Swagger UI and ReDoc load their scripts from this server, not a CDN."""
    import re

    for page in ("/docs", "/redoc"):
        html = client.get(page).text
        urls = re.findall(r'(?:src|href)="([^"]+)"', html) + re.findall(r"url: '([^']+)'", html)
        assert urls and not [u for u in urls if u.startswith(("http:", "https:", "//"))], urls
        for u in re.findall(r'src="([^"]+\.js)"', html):
            r = client.get(u)
            assert r.status_code == 200 and len(r.content) > 100_000, u


def thin_png(width: int, height: int) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (width, height), 128).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize("size", [(40000, 1), (1, 100000), (30000, 1)])
def test_tiny_files_of_extreme_shape_are_refused_at_once(client, size):
    """A few hundred bytes of PNG that once took 9 GB (1x30000) or killed the server (1x40000)."""
    import time

    data = thin_png(*size)
    assert len(data) < 1000
    t = time.perf_counter()
    r = client.post("/v1/saliency", content=data, headers={"content-type": "image/png"})
    assert r.status_code == 422 and "too thin" in r.json()["error"]["message"]
    assert time.perf_counter() - t < 5


def test_map_back_never_allocates_more_than_the_image():
    """The cover of a 1x40000 image is 30000x40000; only the 1x40000 crop is computed."""
    import tracemalloc

    import numpy as np

    from msinet.imaging.postprocess import map_to_image

    m = np.random.default_rng(0).random((240, 320)).astype(np.float32)
    tracemalloc.start()
    out = map_to_image(m, (1, 40000))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert out.shape == (1, 40000) and peak < 50e6  # was 4.8 GB


def test_thin_images_are_skipped_by_the_cli(tmp_path, osie_images, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "strip.png").write_bytes(thin_png(40000, 1))
    (folder / "good.jpg").write_bytes(osie_images[0].read_bytes())
    assert main(["predict", str(folder), "-o", str(tmp_path / "out"), "-q"]) == 1
    assert "strip.png" in capsys.readouterr().err and (tmp_path / "out" / "good.png").is_file()
