"""What every dataset module shares: the `Sample`, the dataset protocol, the official splits."""

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
