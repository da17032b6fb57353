"""Issue 28: every route keeps the service's limits and answers malformed input with a 4xx in
its protocol's error body; no secret in a log line; metric labels from a closed set."""

import logging

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from msinet.server.app import create_app
from msinet.server.settings import Settings

INFER = "/v2/models/msinet/infer"


@pytest.fixture(scope="module")
def client(random_engine):
    with TestClient(create_app(Settings(max_queue=8), engine=random_engine)) as c:
        yield c


def body(shape, data, datatype="UINT8", name="image") -> dict:
    return {"inputs": [{"name": name, "shape": shape, "datatype": datatype, "data": data}]}


@pytest.mark.parametrize("request_body, words", [
    (body([1, 1, 3], [[1, 2, 3], [1, 2, 3], [1, 2, 3]]), "flat or nested"),
    (body([1, 1, 3], [[1, 2], [3, 4], [5, 6]]), "flat or nested"),
    (body([1, 1, 3], [1, 2, 10**400]), "flat or nested"),
    (body([1, 1, 3], [1, 2, 3.7]), "UINT8 data must be integers"),
    (body([1, 1, 3], [1, 2, "5"]), "must be integers"),
    (body([1, 1, 3], [1, 2, True]), "must be integers"),
    (body([1, 3, 8, 8], ["1"] * 192, "FP32", "images"), "FP32 data must be numbers"),
    (body([1, 3, 8, 8], [False] * 192, "FP32", "images"), "must be numbers"),
])  # fmt: skip
def test_malformed_v2_data_is_a_422_in_the_protocols_error_body(client, request_body, words):
    r = client.post(INFER, json=request_body)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert isinstance(error, str) and words in error  # {"error": "<message>"}


def test_v2_takes_nested_data_and_answers_errors_in_its_shape(client):
    flat = client.post(INFER, json=body([2, 2, 3], list(range(12)))).json()
    rows = [[[0, 1, 2], [3, 4, 5]], [[6, 7, 8], [9, 10, 11]]]
    nested = client.post(INFER, json=body([2, 2, 3], rows)).json()
    assert flat["outputs"][0]["data"] == nested["outputs"][0]["data"]
    assert client.get("/v2/models/other").json() == {"error": "unknown model 'other'"}
    assert isinstance(client.post(INFER, json={"inputs": []}).json()["error"], str)
    # the other routes keep msinet's error body
    assert client.get("/nope").json()["error"]["status"] == 404


def test_a_text_frame_on_the_stream_is_answered_and_the_stream_goes_on(client, osie_images):
    with client.websocket_connect("/v1/stream") as ws:
        ws.send_text("hello")
        answer = ws.receive_json()
        assert answer["error"]["status"] == 415 and "binary" in answer["error"]["message"]
        ws.send_bytes(osie_images[0].read_bytes())
        png = ws.receive_bytes()
        assert png.startswith(b"\x89PNG")


def test_no_api_key_in_log_lines(random_engine, caplog):
    create_app(Settings(), engine=random_engine)
    with (
        caplog.at_level(logging.INFO, logger="uvicorn.error"),
        caplog.at_level(logging.INFO, logger="uvicorn.access"),
    ):
        logging.getLogger("uvicorn.error").info('%s - "WebSocket %s" [accepted]', "127.0.0.1:5",
                                                "/v1/stream?key=s3cret&x=1")  # fmt: skip
        access = logging.getLogger("uvicorn.access")
        access.info('%s - "%s %s HTTP/%s" %d', "::1", "GET", "/v1/x?api_key=s3cret", "1.1", 200)
    text = caplog.text
    assert "s3cret" not in text and "key=[redacted]&x=1" in text and "api_key=[redacted]" in text


def test_metric_labels_are_a_closed_set(client):
    for k in range(30):
        client.get(f"/static-offline-docs/nothing-{k}.js")
        client.get(f"/random/{k}")
    text = client.get("/metrics").text
    assert "nothing-" not in text and "/random/" not in text
    assert 'route="/static-offline-docs/{path}"' in text and 'route="other"' in text


def test_cli_takes_no_abbreviated_flags(capsys):
    from msinet.cli import main

    with pytest.raises(SystemExit) as e:
        main(["serve", "--api-key", "VALUE"])
    assert e.value.code == 2 and "unrecognized arguments: --api-key" in capsys.readouterr().err


def test_the_pixel_limit_named_is_msinets(tmp_path):
    from msinet.imaging.decode import ImageTooLarge, load_image

    path = tmp_path / "huge.png"
    Image.new("1", (14000, 14000)).save(path)  # 196 M pixels: past Pillow's own bomb limit
    with pytest.raises(ImageTooLarge, match="limit of 40000 pixels"):
        load_image(path, max_pixels=40_000)


@pytest.mark.parametrize("spec", ["99999999999999999999:1", "21:1", "1:21"])
def test_aspects_are_bounded(spec, client, osie_images):
    from msinet.crop import parse_aspect

    with pytest.raises(ValueError, match="outside 1:20..20:1"):
        parse_aspect(spec)
    r = client.post(f"/v1/crop?aspect={spec}", files={"image": ("a.jpg",
                    osie_images[0].read_bytes(), "image/jpeg")})  # fmt: skip
    assert r.status_code == 422 and "1:20..20:1" in r.json()["error"]["message"]
    assert parse_aspect("20:1") == (20, 1) and np.isclose(*[1, 1])


def test_streams_have_their_own_cap_and_close_when_idle(random_engine):
    from starlette.websockets import WebSocketDisconnect

    settings = Settings(max_streams=2, stream_idle_s=0.5)
    with TestClient(create_app(settings, engine=random_engine)) as c:
        with c.websocket_connect("/v1/stream"), c.websocket_connect("/v1/stream"):
            with pytest.raises(WebSocketDisconnect) as refused, c.websocket_connect("/v1/stream"):
                pass
            assert refused.value.code == 1013 and "limit of 2 streams" in refused.value.reason
            assert c.get("/healthz").status_code == 200
        with c.websocket_connect("/v1/stream") as ws:  # the slots came back
            with pytest.raises(WebSocketDisconnect) as idle:
                ws.receive_bytes()  # nothing sent: closed after 0.5 s
            assert idle.value.code == 1000 and "no frame" in idle.value.reason
    assert Settings(max_connections=100, max_streams=64).stream_cap == 25


def linear_crop_box(saliency, aspect, min_scale, keep):
    """The scan the binary search replaced: every size from the largest down, until one holds
    less than `keep` of the largest's best."""
    from msinet.crop import best_box, sizes, summed_area

    table = summed_area(saliency)
    candidates = sizes(saliency.shape[1], saliency.shape[0], aspect, min_scale)
    box, most = best_box(table, *candidates[0])
    for w, h in candidates[1:]:
        smaller, held = best_box(table, w, h)
        if held < keep * most:
            break
        box = smaller
    return box


@pytest.mark.parametrize("seed", range(6))
def test_the_bounded_crop_search_equals_the_exhaustive_one(seed):
    from scipy.ndimage import gaussian_filter

    from msinet.crop import crop_box

    rng = np.random.default_rng(seed)
    m = gaussian_filter(rng.random((90 + 7 * seed, 120 - 5 * seed)), 2 + seed)
    for aspect in ((1, 1), (16, 9), (9, 16), (4, 5)):
        for min_scale, keep in ((1.0, 0.95), (0.2, 0.9), (0.01, 0.5), (0.05, 0.999), (0.3, 0.01)):
            assert crop_box(m, aspect, min_scale, keep) == linear_crop_box(m, aspect, min_scale,
                                                                           keep)  # fmt: skip


def test_the_crop_search_is_bounded_and_stops_at_its_deadline(monkeypatch):
    import time

    import msinet.crop as crop

    passes = []
    real = crop.best_box
    monkeypatch.setattr(crop, "best_box", lambda *a: passes.append(1) or real(*a))
    m = np.random.default_rng(0).random((1600, 1600))
    crop.crop_box(m, (1, 1), min_scale=0.001, keep=0.001)
    assert len(passes) <= 12  # 1600 sizes: log2 passes, not 1600
    with pytest.raises(crop.CropTimeout):
        crop.crop_box(m, (1, 1), 0.001, 0.001, deadline=time.perf_counter() - 1)


def test_preprocessed_v2_tensors_have_a_model_size_limit(client):
    shape = [1, 3, 2048, 1280]  # +1.46 GB and 14 s before; refused before the data is read
    r = client.post(INFER, json=body(shape, [0.0] * 3, "FP32", "images"))
    assert r.status_code == 413 and "limit of 307200 pixels" in r.json()["error"]
    ok = client.post(INFER, json=body([1, 3, 480, 640], [0.0] * 3 * 480 * 640, "FP32", "images"))
    assert ok.status_code == 200 and ok.json()["outputs"][0]["shape"] == [1, 480, 640]


def test_batch_uploads_are_read_one_by_one_as_their_images_go(random_engine, osie_images,
                                                              monkeypatch):  # fmt: skip
    """Issue 28, item 3: a :batch no longer reads every upload before admission; at most
    READ_AHEAD of its uploads are in memory at once, and a part over the upload limit is that
    image's own 413 while the others finish."""
    import msinet.server.routes.saliency as route

    held, most = [0], [0]
    real = route.read_part

    async def counting(part, limit):
        data = await real(part, limit)
        held[0] += 1
        most[0] = max(most[0], held[0])
        return data

    original_saliency = None

    async def released(self, data, opts, ticket=None):
        try:
            return await original_saliency(self, data, opts, ticket)
        finally:
            held[0] -= 1

    from msinet.server.service import SaliencyService

    original_saliency = SaliencyService.saliency
    monkeypatch.setattr(route, "read_part", counting)
    monkeypatch.setattr(SaliencyService, "saliency", released)
    jpeg = osie_images[0].read_bytes()
    settings = Settings(max_upload_mb=len(jpeg) * 1.5 / 2**20)
    files = [("images", (f"{k}.jpg", jpeg, "image/jpeg")) for k in range(10)]
    files.insert(3, ("images", ("big.jpg", jpeg + b"0" * len(jpeg), "image/jpeg")))
    with TestClient(create_app(settings, engine=random_engine)) as c:
        r = c.post("/v1/saliency:batch?format=json", files=files)
    results = r.json()["results"]
    assert r.status_code == 200 and len(results) == 11
    assert results[3]["file"] == "big.jpg" and results[3]["error"]["status"] == 413
    assert all("shape" in x for i, x in enumerate(results) if i != 3)
    assert 1 <= most[0] <= route.READ_AHEAD


def test_stream_key_as_a_subprotocol_header_or_query(random_engine, osie_images, monkeypatch):
    """Browsers cannot set headers on a WebSocket: the page sends the key as the subprotocol
    `msinet.key.<base64url>` beside `msinet.v1` (kept out of URLs and logs)."""
    import base64

    from starlette.websockets import WebSocketDisconnect

    monkeypatch.setenv("TEST_KEY", "s3cret/+é")
    token = base64.urlsafe_b64encode("s3cret/+é".encode()).decode().rstrip("=")
    with TestClient(create_app(Settings(api_key_env="TEST_KEY"), engine=random_engine)) as c:
        with c.websocket_connect("/v1/stream", subprotocols=["msinet.v1", f"msinet.key.{token}"]
                                 ) as ws:  # fmt: skip
            assert ws.accepted_subprotocol == "msinet.v1"
            ws.send_bytes(osie_images[0].read_bytes())
            assert ws.receive_bytes().startswith(b"\x89PNG")
        with c.websocket_connect("/v1/stream", headers={"x-api-key": "s3cret/+é".encode()}):
            pass
        wrong = base64.urlsafe_b64encode(b"nope").decode().rstrip("=")
        for protocols in (["msinet.v1", f"msinet.key.{wrong}"], ["msinet.v1", "msinet.key.*!"],
                          ["msinet.v1"]):  # fmt: skip
            with (pytest.raises(WebSocketDisconnect) as refused,
                  c.websocket_connect("/v1/stream", subprotocols=protocols)):  # fmt: skip
                pass
            assert refused.value.code == 1008, protocols


def test_v2_json_with_or_without_a_content_type_and_binary_framing_errors(client):
    import json

    request = body([2, 2, 3], list(range(12)))
    for headers in ({}, {"content-type": "text/plain"}, {"content-type": "application/json"}):
        r = client.post(INFER, content=json.dumps(request), headers=headers)
        assert r.status_code == 200 and r.json()["outputs"][0]["shape"] == [2, 2], headers
    binary = {"name": "image", "shape": [2, 2, 3], "datatype": "UINT8",
              "parameters": {"binary_data_size": 12}}  # fmt: skip
    header = json.dumps({"inputs": [binary]}).encode()
    raw = bytes(range(12))
    cases = [
        ({"inference-header-content-length": "x"}, header + raw, 400, "whole number"),
        ({"inference-header-content-length": "99999"}, header + raw, 400, "at most"),
        ({"inference-header-content-length": str(len(header))}, header + raw[:5], 422,
         "does not match"),
        ({}, header + raw, 422, "JSON"),  # binary bytes without the header: not JSON
    ]  # fmt: skip
    for headers, content, status, words in cases:
        r = client.post(INFER, content=content, headers=headers)
        assert r.status_code == status and words in r.json()["error"], (headers, r.text)
    r = client.post(INFER, content=header + raw,
                    headers={"inference-header-content-length": str(len(header))})  # fmt: skip
    assert r.status_code == 200 and r.json()["outputs"][0]["shape"] == [2, 2]


def test_upload_bytes_in_flight_have_a_budget():
    """64 uploads of 20 MB at once took 3 GB: the bodies in flight share a budget
    (--max-inflight-upload-mb), refused with 503 before they are read, given back when the
    answer is sent; one alone always passes; a :batch holds at most its read-ahead."""
    import asyncio

    import httpx

    from msinet.server.guard import RequestGuard

    release = asyncio.Event()

    async def app(scope, receive, send):
        body = b""
        while True:
            m = await receive()
            body += m.get("body", b"")
            if not m.get("more_body"):
                break
        await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(len(body)).encode()})

    refused = []
    guard = RequestGuard(app, None, [], max_body=1000, batch_body=16_000, inflight_bodies=2500,
                         batch_held=1500, on_refused=refused.append)  # fmt: skip

    async def run() -> tuple[list[int], list[int], int]:
        transport = httpx.ASGITransport(app=guard)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as h:
            first = [asyncio.create_task(h.post("/v1/saliency", content=b"x" * 1000))
                     for _ in range(2)]  # fmt: skip
            while guard.bodies < 2000:
                await asyncio.sleep(0.01)
            third = await h.post("/v1/saliency", content=b"x" * 1000)  # 3000 > 2500
            small = asyncio.create_task(h.post("/v1/saliency", content=b"x" * 400))
            await asyncio.sleep(0.05)
            batch = await h.post("/v1/saliency:batch", content=b"x" * 9000)  # holds 1500
            release.set()
            answers = await asyncio.gather(*first, small)
            alone = await h.post("/v1/saliency:batch", content=b"x" * 9000)
            return ([a.status_code for a in answers], [third.status_code, batch.status_code,
                    alone.status_code], third.headers.get("retry-after"))  # fmt: skip

    passed, others, retry = asyncio.run(run())
    assert passed == [200, 200, 200] and others == [503, 503, 200] and retry == "1"
    assert refused == ["uploads", "uploads"] and guard.bodies == 0


def test_workers_get_the_settings_serve_was_given(monkeypatch):
    """`msinet serve --workers N` hands its settings to the workers as one JSON variable (it
    copied each field into MSINET_* variables, and loaded a model only to throw it away)."""
    from msinet.server.app import SETTINGS_VARIABLE, app_from_env

    given = Settings(max_queue=9, max_inflight_upload_mb=50, cors_origins=["https://a.example"])
    monkeypatch.setenv(SETTINGS_VARIABLE, given.model_dump_json())
    app = app_from_env()  # the model loads at start-up, not here
    assert app.state.settings == given
