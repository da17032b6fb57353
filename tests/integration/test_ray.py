"""Ray Serve and Ray Data on a local Ray instance started here (loopback only)."""

import httpx
import numpy as np
import pytest
from PIL import Image

ray = pytest.importorskip("ray", reason="Ray is the optional msinet[ray] extra")

from msinet.cli import main  # noqa: E402
from msinet.weights.store import WeightsMeta  # noqa: E402
from msinet.weights.torch_io import save_model  # noqa: E402

pytestmark = pytest.mark.slow  # .ci/run runs these; see README: Development


@pytest.fixture(scope="module")
def weights(tmp_path_factory, random_model):
    path = tmp_path_factory.mktemp("ray") / "w.safetensors"
    save_model(random_model, path, WeightsMeta(dataset="random-init", version="3"))
    return path


@pytest.fixture(scope="module")
def local_ray():
    from msinet.scale.cluster import start_ray

    start_ray(num_cpus=2)  # as msinet's commands start it: no dashboard, no auth token
    yield
    ray.shutdown()


@pytest.fixture
def inputs(osie_folder):
    return osie_folder(4)


def read(path):
    return np.asarray(Image.open(path))


def assert_same_maps(out, reference) -> None:
    """Maps equal `msinet predict`'s up to one grey level: ORT's float sums depend on the
    batch composition."""
    for p in sorted(reference.glob("*.png")):
        assert np.abs(read(out / p.name).astype(int) - read(p)).max() <= 1, p.name


def test_batch_scoring_matches_predict_and_resumes(local_ray, tmp_path, inputs, weights, capsys):
    def predict(*args: str) -> int:
        return main(["predict", *args, "--weights", str(weights), "--engine", "onnx", "-q"])

    plain, out = tmp_path / "plain", tmp_path / "ray"
    assert predict(str(inputs), "-o", str(plain)) == 0
    (inputs / "corrupt.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    rc = predict("--ray", str(inputs), "-o", str(out), "--actors", "2", "--batch-size", "2")
    assert rc == 1  # the corrupt file is reported ...
    err = capsys.readouterr().err
    assert "corrupt.jpg" in err and "4 written" in err
    assert_same_maps(out, plain)  # ... and the others match `msinet predict`
    # an interrupted job: one map missing, one half-written; the rerun redoes just those
    first, second = sorted(out.iterdir())[:2]
    first.unlink()
    second.write_bytes(second.read_bytes()[:100])
    (inputs / "corrupt.jpg").unlink()
    assert predict("--ray", str(inputs), "-o", str(out)) == 0
    assert "2 written, 2 already done" in capsys.readouterr().err
    assert_same_maps(out, plain)


def test_ray_names_outputs_like_predict_and_honours_overlay(local_ray, tmp_path, osie_images,
                                                            weights, capsys):  # fmt: skip
    """sub1/x.jpg and sub2/x.jpg used to land on one x.png (issue 17); --overlay wrote
    nothing. A file:// URI folder is listed up front and named the same way."""
    import shutil

    src = tmp_path / "in"
    for sub, image in (("sub1", 0), ("sub2", 1)):
        (src / sub).mkdir(parents=True)
        shutil.copy(osie_images[image], src / sub / "x.jpg")

    def predict(*args: str) -> int:
        return main(["predict", *args, "--weights", str(weights), "--engine", "onnx", "-q",
                     "--overlay"])  # fmt: skip

    plain, out, uri = tmp_path / "plain", tmp_path / "ray", tmp_path / "uri"
    assert predict(str(src), "-o", str(plain)) == 0
    assert predict("--ray", str(src), "-o", str(out)) == 0
    assert "2 written" in capsys.readouterr().err
    expected = ["sub1_x.png", "sub1_x_overlay.jpg", "sub2_x.png", "sub2_x_overlay.jpg"]
    assert sorted(p.name for p in plain.iterdir()) == expected
    assert sorted(p.name for p in out.iterdir()) == expected
    assert_same_maps(out, plain)
    assert predict("--ray", f"file://{src}", "-o", str(uri)) == 0
    assert sorted(p.name for p in uri.iterdir()) == expected


def test_gpu_actors_on_a_cluster_without_gpus_fail_fast(local_ray, tmp_path, inputs, weights,
                                                         capsys):  # fmt: skip
    import ray

    if ray.cluster_resources().get("GPU", 0):
        pytest.skip("this Ray cluster has GPUs")
    code = main(["predict", str(inputs), "-o", str(tmp_path / "out"), "--weights", str(weights),
                 "--ray", "--gpus-per-actor", "1", "--engine", "torch", "-q"])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and "has 0 GPU(s)" in err


def test_serve_deployment_answers_like_the_standalone_server(local_ray, weights, osie_images):
    from fastapi.testclient import TestClient
    from ray import serve

    from msinet.scale.serve import RayOptions, build_application
    from msinet.server.app import create_app
    from msinet.server.settings import Settings
    from tests.integration.test_server_live import free_port

    settings = Settings(engine="onnx", weights=str(weights), max_batch_size=4, max_wait_ms=20)
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    try:
        serve.run(build_application(settings, RayOptions(replicas=1)), name="msinet",
                  route_prefix="/")  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        jpeg = osie_images[2].read_bytes()
        files = {"image": ("a.jpg", jpeg, "image/jpeg")}
        served = httpx.post(f"{url}/v1/saliency", files=files, timeout=120)
        assert served.status_code == 200 and served.headers["x-model-version"] == "3"
        with TestClient(create_app(settings)) as standalone:
            local = standalone.post("/v1/saliency", files=files)
        diff = read_bytes(served.content).astype(int) - read_bytes(local.content)
        assert np.abs(diff).max() <= 1  # the same maps, up to ORT's thread-dependent rounding
        assert httpx.get(f"{url}/v2/models/msinet").json()["name"] == "msinet"
        assert httpx.get(f"{url}/readyz").json()["status"] == "ready"
        assert "<canvas" in httpx.get(f"{url}/").text
        bad = httpx.post(f"{url}/v1/saliency", content=b"nope",
                         headers={"content-type": "image/jpeg"})  # fmt: skip
        assert bad.status_code == 422
        # concurrent requests are batched inside the replica (msinet's own batcher)
        import concurrent.futures as cf

        with cf.ThreadPoolExecutor(6) as pool:
            codes = list(pool.map(lambda _: httpx.post(f"{url}/v1/saliency?size=model",
                                                       files=files, timeout=120).status_code,
                                  range(6)))  # fmt: skip
        assert codes == [200] * 6
        metrics = httpx.get(f"{url}/metrics").text
        count = float(metrics.split("msinet_batch_size_count ")[1].split()[0])
        total = float(metrics.split("msinet_batch_size_sum ")[1].split()[0])
        assert total > count  # at least one model call took more than one image
    finally:
        serve.shutdown()


def read_bytes(data: bytes) -> np.ndarray:
    import io

    return np.asarray(Image.open(io.BytesIO(data)))


def test_serve_ray_drains_on_sigterm_and_exits_0(weights, osie_images, tmp_path):
    """Issue 17: SIGTERM printed a stack dump and exited 15, or aborted (134), without
    draining. Now a request in flight when the signal comes is answered, and the process
    exits 0; the local Ray it started has no dashboard and wrote no auth token."""
    import os
    import signal
    import subprocess
    import sys
    import threading
    import time

    from tests.integration.test_server_live import free_port, wait_ready

    if ray.is_initialized():  # the module's local Ray: this test starts its own process
        ray.shutdown()
    port, home = free_port(), tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_MODE")}
    env["HOME"] = str(home)
    p = subprocess.Popen([sys.executable, "-m", "msinet.cli", "serve", "--ray", "--port",
                          str(port), "--engine", "onnx", "--weights", str(weights),
                          "--threads", "1", "--num-cpus", "1"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                         text=True)  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, p, timeout=240)
        assert not listening(8265)  # no Ray dashboard
        files = {"image": ("a.jpg", osie_images[0].read_bytes(), "image/jpeg")}
        answers = []

        def post() -> None:
            answers.append(httpx.post(f"{url}/v1/saliency", files=files, timeout=120))

        clients = [threading.Thread(target=post) for _ in range(3)]
        for c in clients:
            c.start()
        time.sleep(0.5)  # in flight
        p.send_signal(signal.SIGTERM)
        for c in clients:
            c.join(150)
        out = p.communicate(timeout=150)[0]
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, out[-3000:]
    assert [a.status_code for a in answers] == [200, 200, 200], out[-3000:]
    assert "draining" in out and "Traceback" not in out and "will not be applied" not in out
    assert not (home / ".ray" / "auth_token").exists()


def listening(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_predict_ray_stops_on_sigterm_in_one_line(weights, osie_folder, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    if ray.is_initialized():
        ray.shutdown()
    out = tmp_path / "out"
    p = subprocess.Popen([sys.executable, "-m", "msinet.cli", "predict", "--ray",
                          str(osie_folder(40)), "-o", str(out), "--weights", str(weights),
                          "--engine", "onnx", "-q"],
                         stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.time() + 240
    while not (out.is_dir() and any(out.glob("*.png"))) and time.time() < deadline:
        if p.poll() is not None:
            break
        time.sleep(0.2)
    p.send_signal(signal.SIGTERM)
    err = p.communicate(timeout=120)[1]
    assert p.returncode == 130, err[-3000:]
    assert err.strip().splitlines()[-1] == "msinet: error: interrupted", err[-3000:]
    assert "Traceback" not in err and not list(out.glob("*.partial"))
