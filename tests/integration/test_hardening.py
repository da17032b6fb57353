"""Hostile and malformed requests answered early, in the documented error shape."""

import json

import numpy as np
import pytest
from fastapi.testclient import TestClient

from msinet.server.app import create_app
from msinet.server.settings import Settings

INFER = "/v2/models/msinet/infer"


@pytest.fixture(scope="module")
def client(random_engine):
    with TestClient(create_app(Settings(max_queue=8), engine=random_engine)) as c:
        yield c


def infer_body(name, shape, data, datatype="FP32") -> dict:
    return {"inputs": [{"name": name, "shape": shape, "datatype": datatype, "data": data}]}


@pytest.mark.parametrize("body, status, words", [
    (infer_body("images", [1, 3, 8, 8], [1e38] * 192), 422, "0..255"),
    (infer_body("images", [1, 3, 8, 8], [-1.0] * 192), 422, "0..255"),
    (infer_body("image", [1, 1, 3], [1] * 6, "UINT8"), 422, "does not match"),
    (infer_body("image", [2**40, 2**40, 3], [1] * 3, "UINT8"), 413, "pixel limit"),
    (infer_body("images", [1, 3, 2**31, 2**31], [1.0], "FP32"), 413, "limit of 307200 pixels"),
    (infer_body("images", [9, 3, 8, 8], [1.0] * 9 * 192), 413, "queues at once"),
])  # fmt: skip
def test_v2_is_validated_before_allocating(client, body, status, words):
    r = client.post(INFER, json=body)
    assert r.status_code == status and words in r.json()["error"], r.text  # the protocol's body


def test_oversized_bodies_are_refused_before_reading(random_engine):
    settings = Settings(max_upload_mb=0.01)  # 10 KB
    with TestClient(create_app(settings, engine=random_engine)) as c:
        big = json.dumps(infer_body("images", [1, 3, 64, 64], [1.0] * 12288)).encode()
        r = c.post(INFER, content=big, headers={"content-type": "application/json"})
        assert r.status_code == 413 and "limit" in r.json()["error"]

        def chunks():  # no Content-Length: counted while it streams
            for _ in range(8):
                yield b" " * 4096

        r = c.post(INFER, content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413
        # a :batch takes one upload per image: 2 x 8 KB passes the 10 KB single-upload limit
        files = [("images", (f"{k}.png", b"\x89PNG" + b"0" * 8000, "image/png")) for k in (1, 2)]
        r = c.post("/v1/saliency:batch", files=files)
        results = r.json()["results"]
        assert r.status_code == 200 and [x["error"]["status"] for x in results] == [422, 422]


def test_the_api_key_is_checked_before_the_body_and_routes_are_configurable(
    random_engine, monkeypatch
):
    monkeypatch.setenv("MSINET_HARDENING_KEY", "k3y")
    settings = Settings(api_key_env="MSINET_HARDENING_KEY", max_upload_mb=0.01)
    with TestClient(create_app(settings, engine=random_engine)) as c:
        huge = b"[" * 5_000_000  # unauthenticated and oversized: 401 first, nothing parsed
        r = c.post(INFER, content=huge, headers={"content-type": "application/json"})
        assert r.status_code == 401 and r.headers["www-authenticate"] == "X-API-Key"
        assert c.get("/metrics").status_code == 401
        assert c.get("/metrics", headers={"X-API-Key": "k3y"}).status_code == 200
        for public in ("/healthz", "/readyz", "/v2/health/live", "/docs", "/"):
            assert c.get(public).status_code == 200, public
    settings = Settings(api_key_env="MSINET_HARDENING_KEY", public_routes=["/healthz",
                                                                           "/metrics"])  # fmt: skip
    with TestClient(create_app(settings, engine=random_engine)) as c:
        assert c.get("/metrics").status_code == 200 and c.get("/readyz").status_code == 401


class BrokenEngine:
    def __init__(self, engine):
        self.name, self.meta, self.self_check = engine.name, engine.meta, None

    def predict(self, batch):
        if batch.shape[-1] != 320:  # the warm-up at start passes; requests fail
            raise MemoryError("Unable to allocate 27.9 GiB")
        return np.zeros(batch.shape[:1] + batch.shape[2:], np.float32)


def test_an_internal_error_is_a_json_500_and_the_server_keeps_serving(random_engine, osie_images):
    app = create_app(Settings(size="240x320"), engine=BrokenEngine(random_engine))
    with TestClient(app, raise_server_exceptions=False) as c:
        x = np.full((1, 3, 64, 96), 100.0).ravel().tolist()
        r = c.post(INFER, json=infer_body("images", [1, 3, 64, 96], x))
        assert r.status_code == 500 and "MemoryError" in r.json()["error"]
        assert c.get("/healthz").status_code == 200
        files = {"image": ("a.jpg", osie_images[0].read_bytes(), "image/jpeg")}
        assert c.post("/v1/saliency", files=files).status_code == 200


@pytest.mark.parametrize("content", [b"garbage", b""])
def test_serve_with_bad_weights_is_one_line(tmp_path, content):
    import subprocess
    import sys

    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(content)
    r = subprocess.run([sys.executable, "-m", "msinet.cli", "serve", "--weights", str(bad),
                        "--port", "1"], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and str(bad) in r.stderr


@pytest.mark.parametrize("ctype", ["multipart/form-data; boundary=xyz", "image/jpeg"])
def test_a_client_that_leaves_mid_upload_is_counted_as_such(random_engine, osie_images, ctype):
    """A disconnect while the body streams is a 499 in /metrics and no "Exception in ASGI
    application" (it used to be a 500)."""
    app = create_app(Settings(), engine=random_engine)
    data = osie_images[0].read_bytes()
    head = b""
    if ctype.startswith("multipart"):
        head = (b"--xyz\r\ncontent-disposition: form-data; name=image; filename=a.jpg\r\n"
                b"content-type: image/jpeg\r\n\r\n")  # fmt: skip
    messages = [{"type": "http.request", "body": head + data[:1000], "more_body": True},
                {"type": "http.disconnect"}]  # fmt: skip
    sent = []

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": "/v1/saliency", "raw_path": b"/v1/saliency",
             "query_string": b"", "root_path": "", "client": ("127.0.0.1", 1),
             "server": ("127.0.0.1", 8000),
             "headers": [(b"host", b"x"), (b"content-type", ctype.encode()),
                         (b"content-length", str(len(head) + len(data)).encode())]}  # fmt: skip
    with TestClient(app) as c:
        c.portal.call(app, scope, receive, send)
        assert sent[0]["status"] == 499
        text = c.get("/metrics").text
    assert 'route="/v1/saliency",status="499"' in text
    assert 'route="/v1/saliency",status="500"' not in text


class SlowEngine(BrokenEngine):
    """Takes half a second per call, so that requests overlap."""

    def predict(self, batch):
        import time

        time.sleep(0.5)
        return np.zeros(batch.shape[:1] + batch.shape[2:], np.float32)


def test_images_in_flight_are_bounded_by_their_pixels(random_engine, osie_images):
    """Three real OSIE images at once against a budget of two: the third is refused with 503
    before it is decoded; an image larger than the budget still runs when it is alone."""
    import asyncio
    import io

    import httpx
    from PIL import Image

    from msinet.imaging.decode import declared_pixels

    one = osie_images[0].read_bytes()
    app = create_app(Settings(max_inflight_pixels=int(2.5 * declared_pixels(one)),
                              max_batch_size=1, inflight_batches=1),
                     engine=SlowEngine(random_engine))  # fmt: skip
    buf = io.BytesIO()
    Image.new("RGB", (1200, 1000), (90, 120, 30)).save(buf, "PNG")
    big = buf.getvalue()

    async def run():
        service = app.state.service
        await service.start()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:

            async def post(data):
                return await c.post("/v1/saliency", content=data,
                                    headers={"content-type": "image/jpeg"})  # fmt: skip

            rs = await asyncio.gather(*(post(one) for _ in range(3)))
            alone = await post(big)
            metrics = (await c.get("/metrics")).text
        await service.stop()
        return rs, alone, metrics, service.pixels

    rs, alone, metrics, left = asyncio.run(run())
    assert sorted(r.status_code for r in rs) == [200, 200, 503]
    refused = next(r for r in rs if r.status_code == 503)
    assert "pixel limit" in refused.json()["error"]["message"] and refused.headers["retry-after"]
    assert alone.status_code == 200 and alone.headers["x-map-shape"] == "1000x1200"
    assert 'reason="memory"' in metrics and left == 0


def test_freed_memory_goes_back_on_glibc():
    import platform

    from msinet.server.memory import return_freed_memory

    assert return_freed_memory() == (platform.libc_ver()[0] == "glibc")


def test_stream_websocket_answers_frames_and_errors_and_checks_the_key(random_engine, osie_images,
                                                                       monkeypatch):  # fmt: skip
    """WebSocket /v1/stream (the page's camera mode): a real JPEG frame gives its map as PNG,
    a bad frame a JSON error while the stream goes on; with a key, none or a wrong one is
    refused before the handshake."""
    import io

    from PIL import Image
    from starlette.websockets import WebSocketDisconnect

    with (
        TestClient(create_app(Settings(), engine=random_engine)) as c,
        c.websocket_connect("/v1/stream") as ws,
    ):
        ws.send_bytes(osie_images[0].read_bytes())
        assert Image.open(io.BytesIO(ws.receive_bytes())).size == (800, 600)
        ws.send_bytes(b"not an image")
        assert ws.receive_json()["error"]["status"] == 422
        ws.send_bytes(osie_images[1].read_bytes())
        assert Image.open(io.BytesIO(ws.receive_bytes())).size == (800, 600)
    monkeypatch.setenv("MSINET_TEST_KEY", "s3cret")
    with TestClient(create_app(Settings(api_key_env="MSINET_TEST_KEY"), engine=random_engine)) as c:
        with pytest.raises(WebSocketDisconnect) as e, c.websocket_connect("/v1/stream?key=no"):
            pass
        assert e.value.code == 1008
        with c.websocket_connect("/v1/stream?key=s3cret") as ws:
            ws.send_bytes(osie_images[0].read_bytes())
            assert ws.receive_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
