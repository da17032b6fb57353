"""The v2 routes with the real tritonclient, as its docs use it (issue 28): JSON inputs and
outputs, and the binary tensor extension both ways, against a uvicorn server on loopback."""

import time

import numpy as np
import pytest

from msinet.server.app import create_app
from msinet.server.settings import Settings
from tests.integration.conftest import served

httpclient = pytest.importorskip("tritonclient.http", reason="pip install -e '.[dev]'")
InferenceServerException = pytest.importorskip("tritonclient.utils").InferenceServerException


@pytest.fixture(scope="module")
def triton(random_engine):
    with served(create_app(Settings(), engine=random_engine), timeout=60) as port:
        client = httpclient.InferenceServerClient(url=f"127.0.0.1:{port}", network_timeout=120)
        deadline = time.time() + 60
        while not client.is_model_ready("msinet") and time.time() < deadline:
            time.sleep(0.1)
        yield client
        client.close()


def infer(client, name, array, datatype, binary_in, binary_out):
    inp = httpclient.InferInput(name, list(array.shape), datatype)
    inp.set_data_from_numpy(array, binary_data=binary_in)
    out = httpclient.InferRequestedOutput("saliency", binary_data=binary_out)
    return client.infer("msinet", [inp], outputs=[out]).as_numpy("saliency")


def test_server_and_model_metadata(triton):
    assert triton.is_server_live() and triton.is_server_ready()
    meta = triton.get_model_metadata("msinet")
    assert {i["name"] for i in meta["inputs"]} == {"image", "images"}


@pytest.mark.parametrize("binary_in, binary_out", [(False, False), (True, False),
                                                   (False, True), (True, True)])  # fmt: skip
def test_image_input_json_or_binary_gives_the_same_map(triton, osie_images, binary_in,
                                                       binary_out):  # fmt: skip
    from PIL import Image

    image = np.asarray(Image.open(osie_images[0]).convert("RGB").resize((200, 150)))
    m = infer(triton, "image", image, "UINT8", binary_in, binary_out)
    reference = infer(triton, "image", image, "UINT8", False, False)
    assert m.dtype == np.float32 and m.shape == (150, 200)
    assert 0 <= m.min() < m.max() <= 1
    np.testing.assert_array_equal(m, reference)


def test_preprocessed_images_in_binary(triton):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (2, 3, 96, 128)).astype(np.float32)
    m = infer(triton, "images", x, "FP32", True, True)
    assert m.shape == (2, 96, 128) and np.isfinite(m).all()
    np.testing.assert_allclose(m, infer(triton, "images", x, "FP32", False, False), atol=1e-6)


def test_binary_errors_reach_the_client_as_its_exception(triton):
    too_big = np.zeros((1, 3, 1024, 1024), np.float32)  # over --max-model-pixels
    with pytest.raises(InferenceServerException, match="over the limit"):
        infer(triton, "images", too_big, "FP32", True, True)
    bad = np.full((8, 8, 3), 300.0, np.float32)  # FP32 where UINT8 is expected
    with pytest.raises(InferenceServerException, match="UINT8"):
        infer(triton, "image", bad, "FP32", True, False)
    nan = np.full((1, 3, 8, 8), np.nan, np.float32)
    with pytest.raises(InferenceServerException, match="finite"):
        infer(triton, "images", nan, "FP32", True, False)
