"""Data-parallel training on Ray Train: `msinet train --ray --workers N [--gpus-per-worker G]`.

The same Trainer, config, run folder, checkpoints and resume as one process: Ray Train's
TorchTrainer starts N workers and sets up torch.distributed (gloo on CPUs, NCCL on GPUs); each
worker runs `Trainer.fit` with its rank, takes its slice of every global batch (the batch size
stays the global one), and DistributedDataParallel averages the gradients, so a step equals one
process's step on the whole batch. Rank 0 validates, writes `epoch-N.safetensors`, the optimizer
state and `state.json` in the run folder (the checkpoint: a killed run resumes from it with
`--resume`, on Ray or not) and reports each epoch's scores to Ray Train.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

from msinet.scale.cluster import start_ray
from msinet.training.config import TrainConfig


def _worker(loop: dict) -> None:
    """One Ray Train worker: the Trainer on this rank's shard."""
    import ray.train

    from msinet.training.train import Trainer

    context = ray.train.get_context()
    config = TrainConfig(**loop["config"])
    if loop["gpus"]:
        import ray.train.torch

        config = replace(config, device=str(ray.train.torch.get_device()))
    Trainer(config).fit(resume=loop["resume"], progress=loop["progress"],
                        shard=(context.get_world_rank(), context.get_world_size()),
                        on_epoch=lambda scores: ray.train.report(scores))  # fmt: skip


def fit_on_ray(config: TrainConfig, workers: int, gpus_per_worker: float = 0.0,
               cpus_per_worker: float = 1.0, resume: bool = False,
               progress: bool = True) -> list[dict[str, float]]:  # fmt: skip
    """Train on `workers` Ray workers (a local Ray started if none is running); the run's
    history, as `Trainer.fit` returns it."""
    if workers < 1:
        raise ValueError(f"--workers must be 1 or more, got {workers}")
    try:
        start_ray()  # or join RAY_ADDRESS's cluster
        from ray.train import RunConfig, ScalingConfig
        from ray.train.torch import TorchConfig, TorchTrainer
    except ModuleNotFoundError as e:
        raise ModuleNotFoundError(f"{e.name} is not installed; pip install 'msinet[ray]'",
                                  name=e.name) from None  # fmt: skip
    out = Path(config.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    if not config.threads:  # one worker per core by default, not every worker on all cores
        config = replace(config, threads=max(1, int(cpus_per_worker)))
    resources = {"CPU": cpus_per_worker} | ({"GPU": gpus_per_worker} if gpus_per_worker else {})
    trainer = TorchTrainer(
        _worker,
        train_loop_config={"config": asdict(replace(config, out=str(out))), "resume": resume,
                           "progress": progress, "gpus": gpus_per_worker > 0},
        torch_config=TorchConfig(backend="nccl" if gpus_per_worker else "gloo"),
        scaling_config=ScalingConfig(num_workers=workers, use_gpu=gpus_per_worker > 0,
                                     resources_per_worker=resources),
        run_config=RunConfig(name="ray-train", storage_path=str(out)),
    )  # fmt: skip
    try:
        trainer.fit()
    except Exception as e:  # Ray wraps a worker's error: its last line is the cause
        lines = [ln for ln in str(e).strip().splitlines() if ln.strip()]
        raise ValueError(f"Ray Train failed: {lines[-1] if lines else type(e).__name__}") from e
    return json.loads((out / "state.json").read_text())["history"]
