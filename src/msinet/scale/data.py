"""`msinet predict --ray`: batch scoring with Ray Data over an actor pool.

Images are read as bytes by Ray Data (`read_binary_files`: local folders, lists of paths, or
any filesystem URI Ray Data reads), decoded and predicted in `Scorer` actors with the same
engine and pipeline as `msinet predict`, and written as `<name>.png` maps or `<name>.npy`
densities (and overlays), named as `msinet predict` names them (msinet.imaging.outputs). Re-running
skips outputs that already exist and read back (resumable); a corrupt image is reported, never
fatal.
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from msinet.imaging.decode import DEFAULT_MAX_PIXELS
from msinet.imaging.outputs import (
    clear_of_inputs,
    is_complete,
    map_files,
    output_names,
    write_map_files,
)
from msinet.scale.cluster import interrupt_on_sigterm, quiet_defaults, start_ray


def ray_key(path: str) -> str:
    """A path as Ray Data reports it in `include_paths` rows: as given, without a URI scheme."""
    return path.split("://", 1)[-1]


class Scorer:
    """One actor: one engine instance. Called on batches of {"path", "bytes"} rows."""

    def __init__(self, engine: str, weights: str, size: str | None, outdir: str,
                 threads: int | None, names: dict[str, str], max_pixels: int,
                 overlay: dict | None = None, fmt: str = "png",
                 device: str = "cpu") -> None:  # fmt: skip
        from msinet.pipeline import load

        self.pipeline = load(weights, engine=engine, size=size, threads=threads,
                             max_pixels=max_pixels, device=device)  # fmt: skip
        self.outdir = Path(outdir)
        self.names = names  # ray_key(path) -> output name, made unique on the driver
        self.overlay = overlay  # colormap and alpha, or None
        self.fmt = fmt

    def __call__(self, rows: dict[str, np.ndarray]) -> dict[str, list]:
        from msinet.imaging.decode import ImageError

        paths = [str(p) for p in rows["path"]]
        errors: list[str] = [""] * len(paths)
        inputs = ((i, bytes(data)) for i, data in enumerate(rows["bytes"]))
        for done in self.pipeline.run_batches(inputs, batch_size=len(paths)):
            i = done.key
            try:  # written whole: an interrupted write never looks finished
                if done.error is not None:
                    raise done.error  # bytes: the message names no file; the caller does
                stem = self.outdir / self.names[ray_key(paths[i])]
                write_map_files(self.pipeline, done.image, done.map, done.geometry, stem,
                                self.overlay, self.fmt)  # fmt: skip
            except (ImageError, MemoryError, OSError) as e:
                errors[i] = str(e)
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
    from msinet.imaging.decode import find_images

    uris = [u for s in inputs if "://" in s for u in expand_uri(s)]
    files, problems = find_images([s for s in inputs if "://" not in s])
    if problems:
        raise FileNotFoundError("; ".join(f"{spec}: {why}" for spec, why in problems))
    return uris + [str(f) for f in files]


def expand_uri(uri: str) -> list[str]:
    """A URI's image files (a folder's, recursively), listed here so that every input's output
    name is known before any is written."""
    from pyarrow import fs

    from msinet.imaging.decode import IMAGE_SUFFIXES

    scheme = uri.split("://", 1)[0]
    filesystem, root = fs.FileSystem.from_uri(uri)
    info = filesystem.get_file_info(root)
    if info.type == fs.FileType.NotFound:
        raise FileNotFoundError(f"{uri}: no such file or folder")
    if info.type == fs.FileType.File:
        return [uri]
    found = filesystem.get_file_info(fs.FileSelector(root, recursive=True))
    return sorted(f"{scheme}://{f.path}" for f in found if f.type == fs.FileType.File
                  and Path(f.path).suffix.lower() in IMAGE_SUFFIXES)  # fmt: skip


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
    max_pixels: int = DEFAULT_MAX_PIXELS,
    overlay: dict | None = None,
    fmt: str = "png",
    gpus_per_actor: float = 0.0,
) -> Summary:
    """Score images into `outdir` with `actors` engine actors.

    `cpus_per_actor` is Ray's logical CPU reservation per actor (the engine's real threads are
    `threads_per_actor`); Ray Data keeps part of a cluster's CPUs for other stages, so an actor
    pool that asks for every core waits forever for its last actor. With `gpus_per_actor`, each
    actor runs its engine on the GPU Ray gives it (`engine` should then be torch or onnx)."""
    quiet_defaults()
    import ray

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    paths = list_inputs(inputs)
    names = clear_of_inputs(
        output_names(paths), outdir, lambda key, stem: map_files(stem, fmt, overlay is not None)
    )

    def done(p: str) -> bool:
        return all(is_complete(f) for f in map_files(outdir / names[p], fmt, overlay is not None))

    todo = [p for p in paths if not done(p)]
    summary = Summary(total=len(paths), skipped=len(paths) - len(todo))
    if not todo:
        return summary
    started = start_ray()
    have = ray.cluster_resources().get("GPU", 0)
    if gpus_per_actor and have < gpus_per_actor * actors:  # Ray would wait for them forever
        if started:
            ray.shutdown()
        raise ValueError(f"--gpus-per-actor {gpus_per_actor:g} x {actors} actor(s): the Ray "
                         f"cluster has {have:g} GPU(s)")  # fmt: skip
    # SIGTERM stops the job as Ctrl-C does: the caller says "interrupted", and Ray is shut
    # down in order (a SIGTERM mid-job once ended in a segmentation fault)
    previous = signal.signal(signal.SIGTERM, interrupt_on_sigterm)
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = progress
        start = time.perf_counter()
        ds = ray.data.read_binary_files(
            todo, include_paths=True, override_num_blocks=max(1, len(todo) // batch_size)
        )
        results = ds.map_batches(
            Scorer,
            fn_constructor_args=(
                engine,
                str(weights),
                size,
                str(outdir),
                threads_per_actor,
                {ray_key(p): names[p] for p in todo},
                max_pixels,
                overlay,
                fmt,
                "cuda" if gpus_per_actor else "cpu",
            ),
            batch_size=batch_size,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=actors),
            num_cpus=cpus_per_actor,
            num_gpus=gpus_per_actor or None,
        )
        for row in results.iter_rows():
            if row["error"]:
                summary.failures.append((row["path"], row["error"]))
            else:
                summary.written += 1
        summary.seconds = time.perf_counter() - start
    finally:
        signal.signal(signal.SIGTERM, previous)
        if started:
            ray.shutdown()
    return summary
