"""Shared fixtures: the real data in ../shared, and a small set of model weights."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

SHARED = Path(os.environ.get("MSINET_SHARED", Path(__file__).resolve().parents[2] / "shared"))
OSIE = SHARED / "data" / "osie"
MIT1003 = SHARED / "data" / "mit1003"
EYECROWD = SHARED / "data" / "eyecrowd"
VGG16 = SHARED / "weights" / "vgg16_imagenet_bgr.safetensors"


def need(path: Path) -> Path:
    """Skip where ../shared is absent (a user's clone); under CI its absence is an error."""
    if not path.exists():
        msg = f"{path} not found: the tests read real data from ../shared beside the checkout"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return path


@pytest.fixture(scope="session")
def osie_root() -> Path:
    return need(OSIE / "fixations.mat").parent


@pytest.fixture(scope="session")
def mit1003_root() -> Path:
    return need(MIT1003 / "fixations.mat").parent


@pytest.fixture(scope="session")
def eyecrowd_root() -> Path:
    return need(EYECROWD / "fixations.mat").parent


@pytest.fixture(scope="session")
def osie_images(osie_root: Path) -> list[Path]:
    return sorted((osie_root / "stimuli").glob("*.jpg"))


@pytest.fixture
def osie_folder(tmp_path, osie_images):
    """A folder of the first `n` real OSIE images, to predict on and to spoil."""

    def make(n: int) -> Path:
        import shutil

        folder = tmp_path / "in"
        folder.mkdir()
        for p in osie_images[:n]:
            shutil.copy(p, folder / p.name)
        return folder

    return make


@pytest.fixture(scope="session")
def vgg16_path() -> Path:
    return need(VGG16)


@pytest.fixture(scope="session")
def random_model():
    import torch

    from msinet.model.net import MSINet, init_weights

    torch.manual_seed(0)
    model = MSINet()
    init_weights(model)
    return model.eval()


@pytest.fixture(scope="session")
def random_engine(tmp_path_factory, random_model):
    """The onnx engine (fp32) of the random model: for server tests, whose answers need a real
    engine but not a trained one."""
    from msinet.engine import load_engine
    from msinet.weights.store import WeightsMeta
    from msinet.weights.torch_io import save_model

    path = tmp_path_factory.mktemp("engine") / "random-fp32.safetensors"
    save_model(random_model, path, WeightsMeta(dataset="random-init"))
    # one thread: an app started on it makes no single-threaded sibling session (a copy of the
    # weights per app, ~200 MB); the tests of the sibling load their own two-thread engine
    return load_engine("onnx", path, threads=1)


@pytest.fixture(scope="session")
def random_weights(tmp_path_factory, random_model) -> Path:
    """A randomly initialised MSI-Net saved as msinet weights (fp16), written by the test."""
    from msinet.weights.store import WeightsMeta
    from msinet.weights.torch_io import save_model

    path = tmp_path_factory.mktemp("weights") / "random.safetensors"
    save_model(random_model, path, WeightsMeta(dataset="random-init", version="test"), "float16")
    return path


@pytest.fixture(scope="session")
def broken_int8(tmp_path_factory) -> Path:
    """The shipped int8 file with one encoder layer's int8 weights scrambled, its probe kept:
    its self-check fails on every CPU."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    from msinet.weights.onnx_graph import seal
    from msinet.weights.store import default_weights

    model = onnx.load(str(default_weights("onnx-int8")))
    rng = np.random.default_rng(0)
    hits = 0
    for init in model.graph.initializer:
        if init.name == "encoder.conv3.conv3_1.weight_quantized":
            w = numpy_helper.to_array(init)
            init.CopyFrom(numpy_helper.from_array(rng.permutation(w.ravel()).reshape(w.shape),
                                                  init.name))  # fmt: skip
            hits += 1
    assert hits == 1
    path = tmp_path_factory.mktemp("broken") / "broken-int8.onnx"
    onnx.save(seal(model), str(path))  # a well-formed file (its hash matches) that computes wrong
    return path


# torch's threads for every test: all cores; one per worker under pytest-xdist (.ci/run runs two
# workers on two cores, and two workers' OpenMP threads spinning on the same cores made the
# training tests 4x slower).
TORCH_THREADS = 1 if os.environ.get("PYTEST_XDIST_WORKER") else len(os.sched_getaffinity(0))


@pytest.fixture(autouse=True)
def _torch_threads_restored():
    """A test that builds a Trainer or engine with `threads=1` sets torch's process-wide thread
    count; without this every later test in the session ran on one core (CI took 28 minutes)."""
    _set_torch_threads()
    yield
    _set_torch_threads()


def _set_torch_threads() -> None:
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != TORCH_THREADS:
        torch.set_num_threads(TORCH_THREADS)


# Under pytest-xdist (`-n 2 --dist loadgroup`, as .ci/run runs the full suite) the tests of one
# file stay on one worker, so a module's fixtures (a live server, a calibrated model) are built
# once; the Ray files share a group, so two local Ray clusters never start side by side.
XDIST_GROUPS = {"test_ray.py": "ray", "test_ray_train.py": "ray"}
# The files that take minutes go first, so that the short files fill in around them (a heuristic:
# the one CI run measured with it took 1205 s of tests against 1173 s without; machines vary).
LONG_FIRST = ("test_ray_train.py", "test_ray.py", "test_train.py", "test_density.py",
              "test_int8.py", "test_hostile_live.py", "test_video.py")  # fmt: skip


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items) -> None:
    def rank(item) -> int:
        name = item.path.name
        return LONG_FIRST.index(name) if name in LONG_FIRST else len(LONG_FIRST)

    items.sort(key=rank)  # stable: a file's tests stay together and in order
    for item in items:
        group = XDIST_GROUPS.get(item.path.name, item.nodeid.split("::")[0])
        item.add_marker(pytest.mark.xdist_group(group))
