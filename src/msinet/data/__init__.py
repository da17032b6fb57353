"""Eye-tracking datasets: one module per format, all yielding the same `Sample`s."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from msinet.data.fixations import Fixations


@dataclass(frozen=True)
class Sample:
    name: str  # file stem, unique within a dataset
    image: Path
    fixations: Fixations
    saliency_map: Path | None = None  # the dataset's own continuous map, where it ships one


class SaliencyDataset(Protocol):
    """A dataset knows its images, their fixations, and its named splits."""

    name: str
    sigma: float  # Gaussian (px) its training maps are built with
    eval_sigma: float  # Gaussian (px) for evaluation densities: about one degree of visual angle

    def samples(self, split: str = "all") -> list[Sample]: ...


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")  # what the official dataset layouts hold


def official_permutation(n: int) -> np.ndarray:
    """The official MSI-Net splits shuffle indices with NumPy's RandomState(42)."""
    indices = np.arange(n)
    np.random.RandomState(42).shuffle(indices)
    return indices


def split_by_indices(samples: list[Sample], split: str, train_idx, val_idx) -> list[Sample]:
    if split == "all":
        return list(samples)
    if split == "train":
        return [samples[i] for i in train_idx]
    if split == "val":
        return [samples[i] for i in val_idx]
    raise ValueError(f"unknown split {split!r}; use train, val or all")


def images_in(folder: Path) -> list[Path]:
    """Image files below `folder`, sorted by path (the official loaders' order)."""
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def require(path: Path, what: str) -> Path:
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: {what}")
    return path


DATASETS = ("osie", "salicon", "mit1003", "cat2000", "folder")


def open_dataset(name: str, root: str | Path) -> SaliencyDataset:
    """Open a dataset in its official layout (see each module's docstring)."""
    from msinet.data.cat2000 import CAT2000
    from msinet.data.folder import ImageFolder
    from msinet.data.mit1003 import MIT1003
    from msinet.data.osie import OSIE
    from msinet.data.salicon import SALICON

    kinds = {"osie": OSIE, "salicon": SALICON, "mit1003": MIT1003, "cat2000": CAT2000,
             "folder": ImageFolder}  # fmt: skip
    if name not in kinds:
        raise ValueError(f"unknown dataset {name!r}; available: {', '.join(DATASETS)}")
    return kinds[name](Path(root))
