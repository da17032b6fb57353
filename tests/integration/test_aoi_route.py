"""POST /v1/aoi through TestClient with the shipped int8 model: the CLI's numbers, both ways of
sending regions, and one-line 4xx for every bad region."""

import json

import pytest
from fastapi.testclient import TestClient

import msinet
from msinet.aoi import report
from msinet.engine import load_engine
from msinet.server.app import create_app
from msinet.server.settings import Settings
from msinet.weights.store import default_weights

REGIONS = {"centre": [0.25, 0.25, 0.5, 0.5], "top band": [0, 0, 800, 120]}


@pytest.fixture(scope="module")
def client():
    engine = load_engine("onnx-int8", default_weights("onnx-int8"), threads=1)
    with TestClient(create_app(Settings(max_wait_ms=5), engine=engine)) as c:
        yield c


def test_aoi_answers_what_the_python_api_does(client, osie_images):
    image = osie_images[3]
    r = client.post("/v1/aoi", files={"image": (image.name, image.read_bytes(), "image/jpeg")},
                    data={"regions": json.dumps(REGIONS)})  # fmt: skip
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["image"] == image.name and body["size"] == [800, 600]
    expected = report(msinet.load(), image, REGIONS)
    for got, want in zip(body["regions"], expected["regions"], strict=True):
        assert got["name"] == want["name"] and got["box"] == want["box"]
        assert got["share"] == pytest.approx(want["share"], abs=2e-3)
        assert got["seen_by"] == pytest.approx(want["seen_by"], abs=5e-3)
    assert r.headers["X-Model-Version"] == "2"


def test_an_image_body_takes_its_regions_from_the_query(client, osie_images):
    r = client.post("/v1/aoi", params={"regions": json.dumps(REGIONS)},
                    content=osie_images[0].read_bytes(),
                    headers={"Content-Type": "image/jpeg"})  # fmt: skip
    assert r.status_code == 200, r.text
    assert [g["name"] for g in r.json()["regions"]] == ["centre", "top band"]


@pytest.mark.parametrize("regions, status, words", [
    ("{not json", 422, "not JSON"),
    (json.dumps({"logo": [1, 2, 3]}), 422, "4 numbers"),
    (json.dumps({"logo": [700, 500, 200, 200]}), 422, "outside the 800x600 image"),
    (json.dumps({"logo": [0, 0, 0, 10]}), 422, "above 0"),
    (json.dumps([{"name": "a", "box": [0, 0, 5, 5]}, {"name": "a", "box": [1, 1, 5, 5]}]), 422,
     "named twice"),
    (json.dumps({}), 422, "no regions"),
    (json.dumps({f"r{i}": [0, 0, 0.1, 0.1] for i in range(65)}), 422, "at most 64"),
])  # fmt: skip
def test_bad_regions_are_one_line_422s(client, osie_images, regions, status, words):
    jpeg = osie_images[0].read_bytes()
    r = client.post("/v1/aoi", files={"image": ("a.jpg", jpeg, "image/jpeg")},
                    data={"regions": regions})  # fmt: skip
    assert r.status_code == status, r.text
    message = r.json()["error"]["message"]
    assert words in message and "\n" not in message
    assert client.get("/healthz").status_code == 200  # still serving


def test_missing_parts(client, osie_images):
    jpeg = osie_images[0].read_bytes()
    r = client.post("/v1/aoi", files={"image": ("a.jpg", jpeg, "image/jpeg")})
    assert r.status_code == 422 and "regions" in r.json()["error"]["message"]
    r = client.post("/v1/aoi", content=jpeg, headers={"Content-Type": "image/jpeg"})
    assert r.status_code == 422 and "regions" in r.json()["error"]["message"]
    r = client.post("/v1/aoi", files={"image": ("a.jpg", b"not an image", "image/jpeg")},
                    data={"regions": json.dumps(REGIONS)})  # fmt: skip
    assert r.status_code in (400, 415, 422)


def test_a_model_without_a_density_calibration_says_so(random_engine, osie_images):
    with TestClient(create_app(Settings(), engine=random_engine)) as c:
        r = c.post("/v1/aoi", files={"image": ("a.jpg", osie_images[0].read_bytes(), "image/jpeg")},
                   data={"regions": json.dumps(REGIONS)})  # fmt: skip
    assert r.status_code == 422 and "density calibration" in r.json()["error"]["message"]
