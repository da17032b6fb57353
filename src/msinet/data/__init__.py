"""Eye-tracking datasets: one module per format, all yielding the same `Sample`s."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from msinet.data.fixations import Fixations


@dataclass(frozen=True)
class Sample:
    name: str  # file stem, unique within a dataset
    image: Path
    fixations: Fixations


class SaliencyDataset(Protocol):
    """A dataset knows its images, their fixations, and its named splits."""

    name: str
    sigma: float  # Gaussian (px) its training maps are built with
    eval_sigma: float  # Gaussian (px) for evaluation densities: about one degree of visual angle

    def samples(self, split: str = "all") -> list[Sample]: ...


def open_dataset(name: str, root: str | Path) -> SaliencyDataset:
    if name == "osie":
        from msinet.data.osie import OSIE

        return OSIE(root)
    raise ValueError(f"unknown dataset {name!r}; available: osie")
