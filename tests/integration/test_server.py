"""The HTTP service through TestClient: every route's contract, batching, overload, timeouts."""

import asyncio
import io
import json
import threading
import time

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from msinet.engine import load_engine
from msinet.pipeline import Pipeline
from msinet.server.app import create_app
from msinet.server.batcher import Batcher
from msinet.server.settings import Settings
from msinet.weights.store import WeightsMeta
from msinet.weights.torch_io import save_model


@pytest.fixture(scope="module")
def engine(tmp_path_factory, random_model):
    path = tmp_path_factory.mktemp("srv") / "fp32.safetensors"
    save_model(random_model, path, WeightsMeta(dataset="random-init", version="7"))
    return load_engine("onnx", path, threads=1)  # no sibling session per app (see conftest)


@pytest.fixture(scope="module")
def jpeg_bytes(osie_images):
    return osie_images[0].read_bytes()


@pytest.fixture(scope="module")
def client(engine):
    with TestClient(create_app(Settings(max_wait_ms=5), engine=engine)) as c:
        yield c


class SlowEngine:
    """A real engine that takes `delay` seconds longer per call (to make queues fill)."""

    def __init__(self, engine, delay: float):
        self.engine, self.delay, self.name, self.meta = engine, delay, engine.name, engine.meta
        self.self_check = engine.self_check
        self.calls: list[int] = []
        self.running = self.most_running = 0
        self.lock = threading.Lock()

    def predict(self, batch):
        with self.lock:
            self.calls.append(len(batch))
            self.running += 1
            self.most_running = max(self.most_running, self.running)
        time.sleep(self.delay)
        try:
            return self.engine.predict(batch)
        finally:
            with self.lock:
                self.running -= 1


def png(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def test_saliency_png_matches_the_predictor(client, engine, jpeg_bytes, osie_images):
    r = client.post("/v1/saliency", files={"image": ("a.jpg", jpeg_bytes, "image/jpeg")})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert r.headers["x-model-name"] == "msinet" and r.headers["x-model-version"] == "7"
    assert float(r.headers["x-model-time-ms"]) > 0 and r.headers["x-map-shape"] == "600x800"
    stages = dict(part.split(";dur=") for part in r.headers["server-timing"].split(", "))
    assert list(stages) == ["decode", "queue", "model", "encode"]
    assert all(float(v) >= 0 for v in stages.values()) and float(stages["model"]) > 0
    queue_and_model = float(stages["queue"]) + float(stages["model"])
    # three values, each rounded to 0.1 ms
    assert abs(float(r.headers["x-model-time-ms"]) - queue_and_model) <= 0.15 + 1e-9
    text = client.get("/metrics").text
    for stage in stages:
        assert f'msinet_stage_seconds_count{{stage="{stage}"}}' in text
    m = png(r.content)
    from msinet.imaging.postprocess import to_uint8

    expected = to_uint8(Pipeline(engine).predict(osie_images[0]))
    assert m.shape == (600, 800) and np.abs(m.astype(int) - expected).max() <= 1


def test_raw_body_and_formats(client, jpeg_bytes):
    raw = client.post("/v1/saliency", content=jpeg_bytes, headers={"content-type": "image/jpeg"})
    assert raw.status_code == 200 and png(raw.content).shape == (600, 800)
    files = {"image": ("a.jpg", jpeg_bytes, "image/jpeg")}
    r = client.post("/v1/saliency?format=npy", files=files)
    a = np.load(io.BytesIO(r.content))
    assert a.shape == (600, 800) and a.dtype == np.float32 and a.min() >= 0 and a.max() <= 1
    j = client.post("/v1/saliency?format=json&json_max_side=50", files=files).json()
    assert j["original_shape"] == [600, 800] and max(j["shape"]) <= 50
    assert np.array(j["saliency"]).shape == tuple(j["shape"])
    ov = client.post("/v1/saliency?overlay=true&colormap=viridis&format=jpeg", files=files)
    assert ov.headers["content-type"] == "image/jpeg" and png(ov.content).shape == (600, 800, 3)
    model = client.post("/v1/saliency?size=model", files=files)
    assert png(model.content).shape == (240, 320)


@pytest.mark.parametrize(
    "body, ctype, status, message",
    [
        (b"this is not an image", "image/jpeg", 422, "not an image"),
        (b"", "image/png", 422, "zero bytes"),
        (b"hello", "text/plain", 415, "unsupported content type"),
    ],
)
def test_bad_bodies_get_clear_4xx(client, body, ctype, status, message):
    r = client.post("/v1/saliency", content=body, headers={"content-type": ctype})
    assert r.status_code == status
    assert message in r.json()["error"]["message"]


def test_truncated_bomb_and_missing_field(client, jpeg_bytes):
    from tests.unit.imaging.test_image import png_with_declared_size

    r = client.post("/v1/saliency", files={"image": ("c.jpg", jpeg_bytes[:5000], "image/jpeg")})
    assert r.status_code == 422 and "truncated" in r.json()["error"]["message"]
    bomb = png_with_declared_size(60_000, 60_000)
    r = client.post("/v1/saliency", files={"image": ("b.png", bomb, "image/png")})
    assert r.status_code == 413
    r = client.post("/v1/saliency", files={"other": ("a.jpg", jpeg_bytes, "image/jpeg")})
    assert r.status_code == 422 and "'image'" in r.json()["error"]["message"]


@pytest.mark.parametrize(
    "query",
    [
        "format=gif",
        "alpha=2",
        "size=huge",
        "colormap=nope",
        "overlay=true&size=model",
        "json_max_side=1",
    ],
)
def test_out_of_range_options_are_422(client, jpeg_bytes, query):
    r = client.post(f"/v1/saliency?{query}", files={"image": ("a.jpg", jpeg_bytes, "image/jpeg")})
    assert r.status_code == 422 and r.json()["error"]["message"]


def test_oversize_upload_is_413(engine, jpeg_bytes):
    with TestClient(create_app(Settings(max_upload_mb=0.01), engine=engine)) as c:
        r = c.post("/v1/saliency", files={"image": ("a.jpg", jpeg_bytes, "image/jpeg")})
        assert r.status_code == 413
        r = c.post("/v1/saliency", content=jpeg_bytes, headers={"content-type": "image/jpeg"})
        assert r.status_code == 413


def test_batch_endpoint_isolates_a_bad_image(client, jpeg_bytes):
    files = [
        ("images", ("a.jpg", jpeg_bytes, "image/jpeg")),
        ("images", ("bad.jpg", b"nope", "image/jpeg")),
        ("images", ("c.jpg", jpeg_bytes, "image/jpeg")),
    ]
    r = client.post("/v1/saliency:batch", files=files)
    assert r.status_code == 200
    results = r.json()["results"]
    assert len(results) == 3 and results[1]["error"]["status"] == 422
    import base64

    for k in (0, 2):
        assert results[k]["shape"] == [600, 800]
        assert png(base64.b64decode(results[k]["data"])).shape == (600, 800)


def test_v2_protocol(client, engine):
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").status_code == 200
    meta = client.get("/v2/models/msinet").json()
    assert meta["name"] == "msinet" and {i["name"] for i in meta["inputs"]} == {"image", "images"}
    assert client.get("/v2/models/msinet/ready").json()["ready"] is True
    assert client.get("/v2/models/other").status_code == 404
    img = np.random.default_rng(0).integers(0, 256, (30, 40, 3))
    body = {
        "inputs": [
            {
                "name": "image",
                "shape": [30, 40, 3],
                "datatype": "UINT8",
                "data": img.ravel().tolist(),
            }
        ]
    }
    out = client.post("/v2/models/msinet/infer", json=body).json()["outputs"][0]
    assert out["shape"] == [30, 40] and len(out["data"]) == 1200 and out["datatype"] == "FP32"
    expected = Pipeline(engine).predict(img.astype(np.uint8))  # the same map as the CLI's
    np.testing.assert_allclose(np.reshape(out["data"], (30, 40)), expected, atol=1e-5)
    x = (np.random.default_rng(1).random((2, 3, 64, 96)) * 255).round(2)
    body = {
        "inputs": [
            {
                "name": "images",
                "shape": [2, 3, 64, 96],
                "datatype": "FP32",
                "data": x.ravel().tolist(),
            }
        ]
    }
    out = client.post("/v2/models/msinet/infer", json=body).json()["outputs"][0]
    assert out["shape"] == [2, 64, 96]
    expected = engine.predict(x.astype(np.float32))  # preprocessed input: the engine's maps
    np.testing.assert_allclose(np.reshape(out["data"], (2, 64, 96)), expected, atol=1e-5)


@pytest.mark.parametrize(
    "body, status",
    [
        ("{not json", 422),
        (json.dumps({"inputs": []}), 422),
        (
            json.dumps(
                {
                    "inputs": [
                        {
                            "name": "image",
                            "shape": [2, 2, 3],
                            "datatype": "UINT8",
                            "data": [1, 2, 3],
                        }
                    ]
                }
            ),
            422,
        ),
        (
            json.dumps(
                {
                    "inputs": [
                        {
                            "name": "image",
                            "shape": [1, 1, 3],
                            "datatype": "UINT8",
                            "data": [1, 2, 999],
                        }
                    ]
                }
            ),
            422,
        ),
        (
            json.dumps(
                {
                    "inputs": [
                        {
                            "name": "images",
                            "shape": [1, 3, 10, 16],
                            "datatype": "FP32",
                            "data": [0.0] * 480,
                        }
                    ]
                }
            ),
            422,
        ),
    ],
)
def test_v2_malformed_requests(client, body, status):
    r = client.post(
        "/v2/models/msinet/infer", content=body, headers={"content-type": "application/json"}
    )
    assert r.status_code == status and "error" in r.json()


def test_health_readiness_metrics_and_docs(engine, jpeg_bytes):
    app = create_app(Settings(), engine=engine)
    cold = TestClient(app)  # no lifespan yet: the model is not warmed up
    assert cold.get("/healthz").status_code == 200
    assert cold.get("/readyz").status_code == 503
    assert cold.get("/v2/health/ready").status_code == 503
    with TestClient(app) as c:
        assert c.get("/readyz").json()["status"] == "ready"
        c.post("/v1/saliency", files={"image": ("a.jpg", jpeg_bytes, "image/jpeg")})
        c.post("/v1/saliency", content=b"x", headers={"content-type": "image/png"})
        text = c.get("/metrics").text
        assert 'msinet_requests_total{method="POST",route="/v1/saliency",status="200"} 1.0' in text
        assert 'status="422"' in text
        assert "msinet_batch_size_bucket" in text and "msinet_inference_seconds_count" in text
        assert "msinet_queue_depth" in text
        assert c.get("/docs").status_code == 200
        assert "/v1/saliency" in c.get("/openapi.json").json()["paths"]


def test_int8_self_check_shows_in_readyz_and_metrics(broken_int8_engine):
    """A fallen-back int8 engine says so in /readyz and /metrics (the fallback itself is
    tested in test_int8.py)."""
    with TestClient(create_app(Settings(), engine=broken_int8_engine)) as c:
        ready = c.get("/readyz").json()
        assert ready["engine"] == "onnx" and not ready["self_check"]["passed"]
        assert "FAILED" in ready["self_check"]["summary"]
        text = c.get("/metrics").text
        assert "msinet_int8_fallback 1.0" in text
        assert 'msinet_engine_info{engine="onnx",requested="onnx-int8"} 1.0' in text
        cc = ready["self_check"]["probe_cc"]
        assert f"msinet_int8_self_check_cc {cc}" in text


@pytest.fixture(scope="module")
def broken_int8_engine(broken_int8):
    return load_engine("onnx-int8", broken_int8, threads=2)


def test_page_is_self_contained(client):
    html = client.get("/").text
    assert "<canvas" in html and "v1/saliency" in html and '"viridis"' in html
    assert "http://" not in html and "https://" not in html  # no CDN


def test_api_key(engine, jpeg_bytes, monkeypatch):
    monkeypatch.setenv("MSINET_TEST_KEY", "s3cret")
    with TestClient(create_app(Settings(api_key_env="MSINET_TEST_KEY"), engine=engine)) as c:
        files = {"image": ("a.jpg", jpeg_bytes, "image/jpeg")}
        assert c.post("/v1/saliency", files=files).status_code == 401
        assert c.post("/v1/saliency", files=files, headers={"X-API-Key": "no"}).status_code == 401
        assert (
            c.post("/v1/saliency", files=files, headers={"X-API-Key": "s3cret"}).status_code == 200
        )
        assert c.post("/v2/models/msinet/infer", json={}).status_code == 401
        assert c.get("/healthz").status_code == 200 and c.get("/readyz").status_code == 200
    monkeypatch.delenv("MSINET_TEST_KEY")
    with pytest.raises(ValueError, match="unset"):
        create_app(Settings(api_key_env="MSINET_TEST_KEY"), engine=engine)


SMALL_INPUT = np.full((3, 64, 96), 100.0, np.float32)  # a model input (Pipeline.prepare)


def submit_at_once(engine, n: int, **batcher) -> list[np.ndarray]:
    """`n` images submitted together to a fresh Batcher over `engine`; their maps."""

    async def go():
        b = Batcher(engine, max_queue=16, **batcher)
        b.start()
        maps = await asyncio.gather(*(b.submit(SMALL_INPUT, 30) for _ in range(n)))
        await b.stop()
        return maps

    return asyncio.run(go())


def test_batcher_groups_concurrent_requests(engine):
    slow = SlowEngine(engine, 0.0)
    maps = submit_at_once(slow, 6, max_batch_size=4, max_wait_ms=100)
    assert len(maps) == 6 and sorted(slow.calls) == [2, 4]


def test_idle_model_starts_at_once_and_a_busy_one_lets_batches_fill(engine):
    """Margins wide enough for a loaded 2-core machine: the idle model must start the lone image
    long before max-wait (2 s) would have passed; while that call runs (1.5 s), two more images
    wait for each other and go as one batch."""
    slow = SlowEngine(engine, 1.5)
    x = SMALL_INPUT

    async def go():
        b = Batcher(slow, max_batch_size=4, max_wait_ms=2000, max_queue=16, inflight=2)
        b.start()
        t0 = time.perf_counter()
        first = asyncio.create_task(b.submit(x, 30))
        while not slow.calls:
            await asyncio.sleep(0.005)
        started_after = time.perf_counter() - t0
        later = [asyncio.create_task(b.submit(x, 30))]
        await asyncio.sleep(0.1)  # the first call still runs: this batch waits to fill
        later.append(asyncio.create_task(b.submit(x, 30)))
        await asyncio.gather(first, *later)
        await b.stop()
        return started_after

    assert asyncio.run(go()) < 1.0  # not the 2 s max-wait
    assert slow.calls == [1, 2]


def test_an_abandoned_image_is_never_computed(engine):
    """A caller that gave up (504) while its image waited leaves nothing for the model to do:
    the model sees the running image and the next live one, never the abandoned one."""
    slow = SlowEngine(engine, 0.5)

    async def go():
        b = Batcher(slow, max_batch_size=1, max_wait_ms=0, max_queue=16, inflight=1)
        b.start()
        running = asyncio.create_task(b.submit(SMALL_INPUT, 30))
        await asyncio.sleep(0.05)  # the model is busy with the first image (0.5 s)
        with pytest.raises(TimeoutError):
            await b.submit(SMALL_INPUT + 1, 0.1)  # gives up while queued
        live = asyncio.create_task(b.submit(SMALL_INPUT + 2, 30))
        await asyncio.gather(running, live)
        await b.stop()

    asyncio.run(go())
    assert slow.calls == [1, 1]  # 3 images submitted, 2 computed


def test_a_lone_call_takes_every_thread_and_calls_beside_others_one_each(engine):
    """The lone image runs on the engine; under load every call runs on the single-threaded
    sibling, up to `inflight` of them at once."""
    wide, narrow = SlowEngine(engine, 0.2), SlowEngine(engine, 0.2)

    async def go():
        b = Batcher(wide, max_batch_size=2, max_wait_ms=0, max_queue=16, inflight=2,
                    narrow=narrow)  # fmt: skip
        b.start()
        await b.submit(SMALL_INPUT, 30)
        maps = await asyncio.gather(*(b.submit(SMALL_INPUT, 30) for _ in range(6)))
        await b.stop()
        return maps

    maps = asyncio.run(go())
    assert wide.calls == [1] and narrow.calls == [2, 2, 2] and narrow.most_running == 2
    assert len(maps) == 6


def test_service_under_load_runs_single_threaded_calls(engine, jpeg_bytes):
    from concurrent.futures import ThreadPoolExecutor

    two_threads = load_engine("onnx", engine.path, threads=2)
    with TestClient(create_app(Settings(max_batch_size=1), engine=two_threads)) as c:
        send = lambda _: c.post("/v1/saliency", files={"image": ("a.jpg", jpeg_bytes)})  # noqa: E731
        lone = png(send(0).content)
        with ThreadPoolExecutor(6) as pool:
            responses = list(pool.map(send, range(6)))
        calls = {line.split()[0]: float(line.split()[1]) for line in c.get("/metrics").text
                 .splitlines() if line.startswith("msinet_model_calls_total")}  # fmt: skip
    assert [r.status_code for r in responses] == [200] * 6
    for r in responses:  # same weights, same maps
        assert np.abs(png(r.content).astype(int) - lone).max() <= 1
    assert calls['msinet_model_calls_total{threads="all"}'] >= 2  # warm-up, the lone request
    assert calls['msinet_model_calls_total{threads="one"}'] >= 1
    assert sum(calls.values()) == 8


@pytest.mark.parametrize("inflight", [1, 3])
def test_batcher_runs_up_to_inflight_batches_at_once(engine, inflight):
    slow = SlowEngine(engine, 0.3)
    maps = submit_at_once(slow, 8, max_batch_size=2, max_wait_ms=0, inflight=inflight)
    assert len(maps) == 8 and sum(slow.calls) == 8
    assert slow.most_running == inflight


def test_full_queue_is_503_with_retry_after(engine, jpeg_bytes):
    from concurrent.futures import ThreadPoolExecutor

    slow = SlowEngine(engine, 0.5)
    settings = Settings(max_queue=1, max_batch_size=1, max_wait_ms=0)
    with TestClient(create_app(settings, engine=slow)) as c:

        def send(_):
            return c.post(
                "/v1/saliency?size=model", files={"image": ("a.jpg", jpeg_bytes, "image/jpeg")}
            )

        with ThreadPoolExecutor(8) as pool:
            responses = list(pool.map(send, range(8)))
        codes = sorted(r.status_code for r in responses)
        assert 200 in codes and 503 in codes
        busy = next(r for r in responses if r.status_code == 503)
        assert busy.headers["retry-after"] == "1" and "queue" in busy.json()["error"]["message"]
        assert send(0).status_code == 200  # and it recovers


def test_timeout_is_504_on_time_and_frees_the_slot(engine, jpeg_bytes):
    """Admitted on the warm-up's speed, the model then slows down: 504 at the deadline (counted
    from arrival), not when the model finishes."""
    slow = SlowEngine(engine, 0.0)
    settings = Settings(request_timeout_s=0.5, max_batch_size=1, max_wait_ms=0, max_queue=4,
                        size="64x96")  # a small input: the engine's delay is the time  # fmt: skip
    with TestClient(create_app(settings, engine=slow)) as c:
        slow.delay = 2.0
        t = time.perf_counter()
        r = c.post("/v1/saliency", files={"image": ("a.jpg", jpeg_bytes, "image/jpeg")})
        assert r.status_code == 504 and "timed out" in r.json()["error"]["message"]
        assert time.perf_counter() - t < 0.5 + 1.0  # the timeout plus a margin, not 2 s
        time.sleep(2.0)
        assert c.get("/readyz").json()["queue_depth"] == 0


def test_overload_is_refused_at_once_by_expected_wait(engine, jpeg_bytes):
    """With the model measured at about 0.5 s per image and a 2 s timeout, a burst gets a few
    answers and fast 503s with Retry-After for the rest; no request runs into a 504."""
    from concurrent.futures import ThreadPoolExecutor

    slow = SlowEngine(engine, 0.5)
    settings = Settings(request_timeout_s=2.0, max_batch_size=1, max_wait_ms=0, inflight_batches=1,
                        size="64x96")  # fmt: skip
    with TestClient(create_app(settings, engine=slow)) as c:

        def send(_):
            t = time.perf_counter()
            r = c.post("/v1/saliency?size=model",
                       files={"image": ("a.jpg", jpeg_bytes, "image/jpeg")})  # fmt: skip
            return r, time.perf_counter() - t

        with ThreadPoolExecutor(10) as pool:
            answers = list(pool.map(send, range(10)))
    codes = sorted(r.status_code for r, _ in answers)
    assert 504 not in codes and 200 in codes and 503 in codes, codes
    refused = [(r, s) for r, s in answers if r.status_code == 503]
    assert all(int(r.headers["retry-after"]) >= 1 for r, _ in refused)
    assert all("busy" in r.json()["error"]["message"] for r, _ in refused)
    assert min(s for _, s in refused) < 0.5  # refused before any model time
