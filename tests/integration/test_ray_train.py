"""msinet train --ray: two CPU workers (gloo) equal one process with the same global batch, and
a stopped run resumes on Ray to the same weights."""

from dataclasses import replace

import numpy as np
import pytest

from msinet.training.config import TrainConfig
from msinet.training.train import Trainer
from msinet.weights.store import load_arrays

pytest.importorskip("ray.train")


@pytest.fixture(scope="module")
def local_ray():
    import ray

    from msinet.scale.cluster import start_ray

    start_ray(num_cpus=2)
    yield
    ray.shutdown()


def base(root, vgg16, tmp_path) -> TrainConfig:
    # 6 draws in batches of 4: the last batch of 2 gives each worker one row
    return TrainConfig(dataset="osie", root=str(root), init=f"vgg16:{vgg16}", phase="head",
                       size="120x160", epochs=2, batch_size=4, lr=1e-4, limit_train=3,
                       limit_val=2, seed=5, threads=1, cache=str(tmp_path / "cache"),
                       out=str(tmp_path / "single"))  # fmt: skip


def weights(run) -> dict[str, np.ndarray]:
    return load_arrays(run / "last.safetensors")[0]


def test_two_ray_workers_equal_one_process_and_resume(local_ray, osie_root, vgg16_path,
                                                      tmp_path):  # fmt: skip
    """Two Ray runs, not three (each costs a minute of worker start-up on 2 cores): one stopped
    after epoch 1, then resumed to epoch 2; every epoch and the final weights must equal the
    uninterrupted single-process run's."""
    from msinet.scale.train import fit_on_ray

    config = base(osie_root, vgg16_path, tmp_path)
    single = Trainer(config).fit(progress=False)
    assert single[1]["train_loss"] < single[0]["train_loss"]  # it trained
    run = tmp_path / "ray"
    stopped = fit_on_ray(replace(config, out=str(run), epochs=1), workers=2, progress=False)
    assert (run / "ray-train").is_dir()  # Ray Train's own records live in the run folder
    resumed = fit_on_ray(replace(config, out=str(run)), workers=2, resume=True, progress=False)
    assert [h["epoch"] for h in stopped] == [1]
    assert [h["epoch"] for h in resumed] == [1, 2]
    for a, b in zip(single, resumed, strict=True):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-4)
        assert b["val_loss"] == pytest.approx(a["val_loss"], rel=1e-4)
    one, two = weights(tmp_path / "single"), weights(run)
    for k in one:
        np.testing.assert_allclose(two[k], one[k], atol=2e-5, err_msg=k)
