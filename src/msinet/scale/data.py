"""`msinet predict --ray`: batch scoring with Ray Data over an actor pool.

Images are read as bytes by Ray Data (`read_binary_files`: local folders, lists of paths, or
any filesystem URI Ray Data reads), decoded and predicted in `Scorer` actors with the same
engine and pipeline as `msinet predict`, and written as `<stem>.png` maps. Re-running skips
outputs that already exist and decode (resumable); a corrupt image is reported, never fatal.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image


def is_valid_map(path: Path) -> bool:
    try:
        with Image.open(path) as im:
            im.verify()
        return True
    except Exception:  # anything unreadable is to be redone
        return False


def output_path(outdir: Path, source: str) -> Path:
    return outdir / f"{Path(source).stem}.png"


class Scorer:
    """One actor: one engine instance. Called on batches of {"path", "bytes"} rows."""

    def __init__(self, engine: str, weights: str, size: str | None, outdir: str,
                 threads: int | None) -> None:  # fmt: skip
        from msinet.pipeline import load

        self.pipeline = load(weights, engine=engine, size=size, threads=threads)
        self.outdir = Path(outdir)

    def __call__(self, rows: dict[str, np.ndarray]) -> dict[str, list]:
        from msinet.image import ImageError

        paths = [str(p) for p in rows["path"]]
        errors: list[str] = [""] * len(paths)
        prepared, index = [], []
        for i, data in enumerate(rows["bytes"]):
            try:
                image = self.pipeline.decode(bytes(data))
                prepared.append((image, *self.pipeline.prepare(image)))
                index.append(i)
            except (ImageError, MemoryError) as e:
                errors[i] = str(e)  # bytes: the message names no file; the caller does
        if prepared:
            maps = self.pipeline.run([x for _, x, _ in prepared])
            for i, (image, _, geometry), m in zip(index, prepared, maps, strict=True):
                out = output_path(self.outdir, paths[i])
                tmp = out.with_suffix(".tmp.png")
                tmp.write_bytes(self.pipeline.encode(image, self.pipeline.map_back(m, geometry)))
                tmp.replace(out)  # atomic: an interrupted write never looks finished
        return {"path": paths, "error": errors}


@dataclass
class Summary:
    total: int = 0
    skipped: int = 0  # already done (resume)
    written: int = 0
    seconds: float = 0.0
    failures: list[tuple[str, str]] = field(default_factory=list)

    @property
    def images_per_s(self) -> float:
        return (self.written + len(self.failures)) / self.seconds if self.seconds else 0.0


def list_inputs(inputs: list[str]) -> list[str]:
    """Local files, folders and globs are expanded here (to skip finished ones) as by
    `msinet predict`; URIs pass through to Ray Data."""
    from msinet.image import find_images

    uris = [s for s in inputs if "://" in s]
    files, problems = find_images([s for s in inputs if "://" not in s])
    if problems:
        raise FileNotFoundError("; ".join(f"{spec}: {why}" for spec, why in problems))
    return uris + [str(f) for f in files]


def predict_files(
    inputs: list[str],
    outdir: str | Path,
    weights: str,
    engine: str = "onnx",
    size: str | None = None,
    actors: int = 1,
    batch_size: int = 4,
    threads_per_actor: int | None = None,
    cpus_per_actor: float = 0.5,
    progress: bool = True,
) -> Summary:
    """Score images into `outdir` with `actors` engine actors.

    `cpus_per_actor` is Ray's logical CPU reservation per actor (the engine's real threads are
    `threads_per_actor`); Ray Data keeps part of a cluster's CPUs for other stages, so an actor
    pool that asks for every core waits forever for its last actor."""
    import ray

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    paths = list_inputs(inputs)
    todo = [p for p in paths if "://" in p or not is_valid_map(output_path(outdir, p))]
    summary = Summary(total=len(paths), skipped=len(paths) - len(todo))
    if not todo:
        return summary
    ray.init(ignore_reinit_error=True, include_dashboard=False, log_to_driver=False)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = progress
    start = time.perf_counter()
    ds = ray.data.read_binary_files(
        todo, include_paths=True, override_num_blocks=max(1, len(todo) // batch_size)
    )
    results = ds.map_batches(
        Scorer,
        fn_constructor_args=(engine, str(weights), size, str(outdir), threads_per_actor),
        batch_size=batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_cpus=cpus_per_actor,
    )
    for row in results.iter_rows():
        if row["error"]:
            summary.failures.append((row["path"], row["error"]))
        else:
            summary.written += 1
    summary.seconds = time.perf_counter() - start
    return summary
