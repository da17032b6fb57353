"""The service as users run it: `msinet serve` on 127.0.0.1 (loopback only), a barrage of
malformed requests, and the web page driven in a real headless Chromium."""

import asyncio
import base64
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.slow  # .ci/run runs these; see README: Development


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def wait_ready(url: str, proc=None, timeout: float = 120, log: Path | None = None) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            out = log.read_text()[-2000:] if log else proc.stdout.read()[-2000:]
            raise RuntimeError(f"server exited: {out}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{url} not ready after {timeout} s")


@pytest.fixture(scope="module")
def live_server(tmp_path_factory):
    """The server .ci/run started (MSINET_TEST_SERVER, MSINET_TEST_SERVER_PID), or our own,
    started as .ci/run starts it: the shipped model on fp32 ONNX Runtime."""
    if os.environ.get("MSINET_TEST_SERVER"):
        url = os.environ["MSINET_TEST_SERVER"]
        wait_ready(url)
        yield url, int(os.environ["MSINET_TEST_SERVER_PID"])
        return
    home = tmp_path_factory.mktemp("live")
    log = home / "server.log"
    port = free_port()
    # the log goes to a file: a pipe nobody reads fills after ~1,000 access lines and then
    # blocks the server's event loop on its next log line
    proc = subprocess.Popen(
        [sys.executable, "-m", "msinet", "serve", "--host", "127.0.0.1", "--port", str(port),
         "--engine", "onnx", "--threads", "2"],
        stdout=log.open("w"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc, log=log)
        yield url, proc.pid
    finally:
        proc.send_signal(signal.SIGTERM)  # graceful shutdown
        proc.wait(timeout=30)


def test_malformed_barrage_then_a_valid_request(live_server, osie_images):
    url, pid = live_server
    jpeg = osie_images[0].read_bytes()
    before = rss_mb(pid)
    bad_requests = [
        ("/v1/saliency", {"content": os.urandom(2000), "headers": {"content-type": "image/jpeg"}}),
        ("/v1/saliency", {"content": jpeg[:3000], "headers": {"content-type": "image/jpeg"}}),
        ("/v1/saliency", {"content": b"", "headers": {"content-type": "image/png"}}),
        ("/v1/saliency", {"content": b"text", "headers": {"content-type": "text/plain"}}),
        ("/v1/saliency?alpha=7", {"content": jpeg, "headers": {"content-type": "image/jpeg"}}),
        ("/v1/saliency", {"files": {"nope": ("x", b"y")}}),
        ("/v2/models/msinet/infer", {"content": b"{broken", "headers":
                                     {"content-type": "application/json"}}),
        ("/v2/models/msinet/infer", {"json": {"inputs": [{"name": "image", "shape": [9, 9, 3],
                                                          "datatype": "UINT8", "data": [1]}]}}),
        # headers over the limit (431 from the connection itself, not httptools' unlimited parse)
        ("/v1/saliency", {"content": jpeg, "headers": {"content-type": "image/jpeg",
                                                       "x-big": "a" * 100_000}}),
        ("/v1/saliency", {"content": jpeg, "headers": {"content-type": "image/jpeg",
                                                       **{f"x-{i}": "1" for i in range(150)}}}),
    ]  # fmt: skip

    async def barrage(n: int) -> list[int]:
        limits = httpx.Limits(max_connections=32)
        async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as c:
            reqs = [bad_requests[i % len(bad_requests)] for i in range(n)]
            rs = await asyncio.gather(*(c.post(p, **kw) for p, kw in reqs))
            return [r.status_code for r in rs]

    codes = asyncio.run(barrage(320))
    assert all(400 <= c < 500 for c in codes), sorted(set(codes))
    assert codes.count(431) == 2 * 320 // len(bad_requests)
    r = httpx.post(f"{url}/v1/saliency", files={"image": ("a.jpg", jpeg, "image/jpeg")}, timeout=60)
    assert r.status_code == 200 and Image.open(io.BytesIO(r.content)).size == (800, 600)
    assert rss_mb(pid) - before < 300, (before, rss_mb(pid))


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        msg = "chromium is not installed: apt-get install chromium (README: Development)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return path


def test_web_page_in_headless_chromium(live_server, osie_images, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    url, _ = live_server
    image = osie_images[3]
    api = httpx.post(f"{url}/v1/saliency", files={"image": (image.name, image.read_bytes(),
                                                            "image/jpeg")}, timeout=60)  # fmt: skip
    expected = np.asarray(Image.open(io.BytesIO(api.content)), np.int16)
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ]
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=flags)
        page = browser.new_page()
        page.goto(url + "/")
        page.set_input_files("#file", str(image))
        page.wait_for_selector("body[data-state=done]", timeout=60_000)
        page.wait_for_selector("body[data-crops=done]", timeout=60_000)
        status = page.inner_text("#status")
        shown_crops = page.evaluate("state.crops")
        buttons = page.inner_text("#dl-crops")
        with page.expect_download() as download:
            page.click("#dl-crops button >> nth=0")
        crop_file = tmp_path / download.value.suggested_filename
        download.value.save_as(crop_file)
        shot = tmp_path / "page.png"
        page.screenshot(path=str(shot), full_page=True)
        data = page.evaluate("document.getElementById('map').toDataURL('image/png')")
        overlay = page.evaluate("document.getElementById('overlay').toDataURL('image/png')")
        browser.close()
    rendered = np.asarray(Image.open(io.BytesIO(base64.b64decode(data.split(",")[1])))
                          .convert("L"), np.int16)  # fmt: skip
    assert rendered.shape == expected.shape == (600, 800)
    assert rendered.std() > 5  # not blank
    assert np.abs(rendered - expected).max() <= 1  # the API's map, pixel for pixel
    ov = np.asarray(Image.open(io.BytesIO(base64.b64decode(overlay.split(",")[1]))))
    assert ov.shape[:2] == (600, 800) and ov[..., :3].std() > 5
    assert "model" in status and "ms" in status
    assert shot.stat().st_size > 10_000
    # the crop panel: the API's boxes for the default aspects, and a crop to download
    crops = httpx.post(f"{url}/v1/crop?aspect=1:1&aspect=16:9", files={"image": (
        image.name, image.read_bytes(), "image/jpeg")}, timeout=60).json()  # fmt: skip
    assert shown_crops["1:1"] == crops["1:1"] and shown_crops["16:9"] == crops["16:9"]
    assert "1:1" in buttons and "16:9" in buttons
    assert crop_file.name.endswith("_1x1.jpg") and Image.open(crop_file).size == (600, 600)


def test_areas_of_interest_in_headless_chromium(live_server, osie_images, tmp_path):
    """Draw a box on the design with the mouse, name it, read share and seen-by; add a variant
    and compare: the numbers are the API's."""
    sync_api = pytest.importorskip("playwright.sync_api")
    url, _ = live_server
    a, b = osie_images[3], osie_images[4]
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ]
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=flags)
        page = browser.new_page(viewport={"width": 1400, "height": 1800})
        page.goto(url + "/")
        page.set_input_files("#file", str(a))
        page.wait_for_selector("body[data-aoi=none]", timeout=60_000)
        page.fill("#aoi-name", "headline")
        box = page.locator("#aoi-a").bounding_box()
        page.mouse.move(box["x"] + 0.30 * box["width"], box["y"] + 0.25 * box["height"])
        page.mouse.down()
        page.mouse.move(box["x"] + 0.70 * box["width"], box["y"] + 0.60 * box["height"], steps=8)
        page.mouse.up()
        page.wait_for_selector("body[data-aoi=done]", timeout=60_000)
        regions = page.evaluate("aoiState.regions")
        shown_a = page.evaluate("aoiState.a")
        page.set_input_files("#aoi-variant", str(b))
        page.wait_for_function("aoiState.b !== null && document.body.dataset.aoi === 'done'",
                               timeout=60_000)  # fmt: skip
        shown_b = page.evaluate("aoiState.b")
        table = page.inner_text("#aoi-table")
        page.screenshot(path=str(tmp_path / "aoi.png"), full_page=True)
        browser.close()
    (region,) = regions
    assert region["name"] == "headline"
    x, y, w, h = region["box"]
    assert abs(x - 240) <= 3 and abs(y - 150) <= 3 and abs(w - 320) <= 4 and abs(h - 210) <= 4
    regions_json = json.dumps({"headline": region["box"]})
    api = httpx.post(f"{url}/v1/aoi", files={"image": (a.name, a.read_bytes(), "image/jpeg")},
                     data={"regions": regions_json}, timeout=60).json()  # fmt: skip
    assert shown_a["regions"] == api["regions"]
    assert 0 < shown_a["regions"][0]["share"] < 1 and shown_b["regions"][0]["box"] == [x, y, w, h]
    assert "headline" in table and "pts" in table and "%" in table


def test_camera_mode_in_headless_chromium(live_server):
    """The page's camera mode with Chromium's fake camera: frames flow over /v1/stream and maps
    come back, with the frame rate shown."""
    sync_api = pytest.importorskip("playwright.sync_api")
    url, _ = live_server
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]  # fmt: skip
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=flags)
        page = browser.new_page()
        page.goto(url + "/")
        page.click("#camera-button")
        page.wait_for_function("Number(document.body.dataset.camera || 0) >= 3", timeout=120_000)
        fps = page.inner_text("#camera-fps")
        data = page.evaluate("document.getElementById('map').toDataURL('image/png')")
        page.click("#camera-button")  # stop
        browser.close()
    rendered = np.asarray(Image.open(io.BytesIO(base64.b64decode(data.split(",")[1])))
                          .convert("L"), np.int16)  # fmt: skip
    assert rendered.shape == (480, 640) and rendered.max() > rendered.min()
    assert "frames/s" in fps and int(fps.split("·")[1].split()[0]) >= 3
