"""What training reads: several datasets at once, their fixed splits, per-dataset sampling
weights, and the frozen layers' activations cached on disk.

The cache holds, per dataset and split, the output of the layers that do not train (the encoder's
1280 features for `head`, pool3 for `partial`, the preprocessed image for `full`), the target
maps and the fixated pixels, with training rows 2k = image k and 2k+1 its mirror image. Each part
is a folder of .npy files, memory-mapped when read, written under a temporary name and renamed
whole, with a manifest of shapes and sha256 checked on reuse: a truncated or altered cache is
rebuilt, never read.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from msinet.data import Sample
from msinet.imaging.decode import load_image
from msinet.imaging.files import PARTIAL
from msinet.imaging.preprocess import preprocess, preprocess_map


@dataclass(frozen=True)
class Source:
    """One dataset to train on: `NAME:DIR`, drawn `weight` x its training images per epoch."""

    name: str
    root: str
    weight: float = 1.0


def parse_sources(data: list[str], weights: list[str]) -> list[Source]:
    """`--data NAME:DIR` entries and `--sample-weight NAME=W` entries -> sources."""
    from msinet.data import DATASETS

    table: dict[str, float] = {}
    for item in weights:
        name, sep, value = item.partition("=")
        try:
            w = float(value)
        except ValueError:
            w = -1.0
        if not sep or not (w >= 0 and np.isfinite(w)):
            raise ValueError(f"--sample-weight takes NAME=W with W >= 0, got {item!r}")
        table[name] = w
    sources = []
    for item in data:
        name, sep, root = item.partition(":")
        if not sep or not root:
            raise ValueError(f"--data takes NAME:DIR, got {item!r}")
        if name not in DATASETS:
            raise ValueError(f"--data {item!r}: unknown dataset {name!r}; "
                             f"available: {', '.join(DATASETS)}")  # fmt: skip
        sources.append(Source(name, root, table.pop(name, 1.0)))
    if len({s.name for s in sources}) != len(sources):
        raise ValueError("--data names a dataset twice")
    if table:
        raise ValueError(f"--sample-weight for a dataset not in --data: {', '.join(table)}")
    if sources and not any(s.weight > 0 for s in sources):
        raise ValueError("every --sample-weight is 0: nothing to train on")
    return sources


def sources_of(data: list[str], dataset: str, root: str, weights: list[str] = ()) -> list[Source]:
    """What a command works on: `--data NAME:DIR ...`, or `--dataset NAME --root DIR`."""
    if data and root:
        raise ValueError("give --data NAME:DIR (repeatable) or --dataset/--root, not both")
    if not data and not root:
        raise ValueError("say which data: --data NAME:DIR (repeatable) or --root DIR")
    return parse_sources(data or [f"{dataset}:{root}"], list(weights))


@dataclass
class Part:
    """One split of one dataset, cached: numpy arrays (memory-mapped), rows as in the docstring."""

    dataset: str
    samples: list[Sample]
    inputs: np.ndarray  # (rows, C, h, w) float16 activations or float32 images
    maps: np.ndarray  # (rows, 1, H, W) float16 training targets
    fixations: np.ndarray  # (rows, 1, H, W) bool fixated pixels at model size
    flips: bool

    def batch(self, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        rows = np.asarray(rows)
        return (torch.from_numpy(np.ascontiguousarray(self.inputs[rows])).float(),
                torch.from_numpy(np.ascontiguousarray(self.maps[rows])).float(),
                torch.from_numpy(np.ascontiguousarray(self.fixations[rows])))  # fmt: skip


ARRAYS = ("inputs", "maps", "fixations")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def _verified(folder: Path) -> dict[str, np.ndarray] | None:
    """The part's arrays, memory-mapped, if its manifest and every file agree; else None."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
        arrays = {}
        for name in ARRAYS:
            path = folder / f"{name}.npy"
            entry = manifest[name]
            if path.stat().st_size != entry["bytes"] or _sha256(path) != entry["sha256"]:
                return None
            a = np.load(path, mmap_mode="r")
            if list(a.shape) != entry["shape"] or str(a.dtype) != entry["dtype"]:
                return None
            arrays[name] = a
        return arrays
    except (OSError, ValueError, KeyError, TypeError):
        return None


def target_map(sample: Sample, sigma: float) -> np.ndarray:
    """A dataset's own saliency map where it ships one, else its fixations blurred by `sigma`."""
    if sample.saliency_map is not None:
        return load_image(sample.saliency_map)[..., 0].astype(np.float32) / 255.0
    return sample.fixations.density(sigma)


def build_part(
    folder: Path,
    samples: list[Sample],
    size: tuple[int, int],
    sigma: float,
    flips: bool,
    frozen: Callable[[torch.Tensor], torch.Tensor],
    dtype: np.dtype,
    desc: str,
    batch: int = 4,
    progress: bool = True,
) -> dict[str, np.ndarray]:
    """Compute a part (in batches, straight into memory-mapped files) and commit it whole."""
    from tqdm import tqdm

    tmp = folder.with_name(folder.name + PARTIAL)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    per = 2 if flips else 1
    rows = per * len(samples)
    h, w = size
    with torch.no_grad():
        probe = frozen(torch.zeros(1, 3, h, w))
    shapes = {"inputs": (dtype, (rows, *probe.shape[1:])), "maps": (np.float16, (rows, 1, h, w)),
              "fixations": (np.bool_, (rows, 1, h, w))}  # fmt: skip
    files = {name: np.lib.format.open_memmap(tmp / f"{name}.npy", "w+", dt, shape)
             for name, (dt, shape) in shapes.items()}  # fmt: skip
    for start in tqdm(range(0, len(samples), batch), desc=desc, unit="batch", leave=False,
                      disable=not progress):  # fmt: skip
        images, maps, fixated = [], [], []
        for s in samples[start : start + batch]:
            x, _ = preprocess(load_image(s.image), size)
            m = preprocess_map(target_map(s, sigma), size)
            f = preprocess_map(s.fixations.counts(), size) > 0
            x = x.transpose(2, 0, 1)
            images.append(x)
            maps.append(m)
            fixated.append(f)
            if flips:
                images.append(x[..., ::-1])
                maps.append(m[..., ::-1])
                fixated.append(f[..., ::-1])
        r = slice(per * start, per * start + len(images))
        with torch.no_grad():
            out = frozen(torch.from_numpy(np.ascontiguousarray(np.stack(images))))
        if dtype == np.float16:
            out = out.clamp(-65000, 65000)
        files["inputs"][r] = out.numpy().astype(dtype)
        files["maps"][r, 0] = np.stack(maps)
        files["fixations"][r, 0] = np.stack(fixated)
    manifest = {}
    for name, a in files.items():
        a.flush()
        shape, dt = list(a.shape), str(a.dtype)
        del a
        path = tmp / f"{name}.npy"
        manifest[name] = {"shape": shape, "dtype": dt, "bytes": path.stat().st_size,
                          "sha256": _sha256(path)}  # fmt: skip
    files.clear()
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    arrays = _verified(folder)
    assert arrays is not None, f"{folder}: the cache just written does not verify"
    return arrays


def cached_part(folder: Path, build: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The part in `folder` if it verifies; else (absent, truncated, altered) built anew."""
    if folder.exists():
        arrays = _verified(folder)
        if arrays is not None:
            return arrays
        print(f"msinet: the cache in {folder} does not verify (truncated or changed): "
              "rebuilding it", file=sys.stderr)  # fmt: skip
    return build()
