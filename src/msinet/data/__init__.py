"""Eye-tracking datasets: one module per format, all yielding the same `Sample`s."""

from __future__ import annotations

from pathlib import Path

from msinet.data.base import (
    IMAGE_SUFFIXES,
    SaliencyDataset,
    Sample,
    images_in,
    official_permutation,
    require,
    split_by_indices,
)

__all__ = ["DATASETS", "IMAGE_SUFFIXES", "SaliencyDataset", "Sample", "images_in",
           "official_permutation", "open_dataset", "require", "split_by_indices"]  # fmt: skip

DATASETS = ("osie", "salicon", "mit1003", "eyecrowd", "cat2000", "folder")


def open_dataset(name: str, root: str | Path) -> SaliencyDataset:
    """Open a dataset in its official layout, or in the NUS layout where the root holds
    `fixations.mat` and `stimuli/` (OSIE, EyeCrowd, ../shared's MIT1003; msinet.data.nus)."""
    from msinet.data.cat2000 import CAT2000
    from msinet.data.folder import ImageFolder
    from msinet.data.mit1003 import MIT1003
    from msinet.data.nus import NUS_DATASETS, NUSDataset, is_nus_root
    from msinet.data.salicon import SALICON

    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; available: {', '.join(DATASETS)}")
    root = Path(root)
    if name in NUS_DATASETS and (name != "mit1003" or is_nus_root(root)):
        return NUSDataset(root, NUS_DATASETS[name])
    kinds = {"salicon": SALICON, "mit1003": MIT1003, "cat2000": CAT2000, "folder": ImageFolder}
    return kinds[name](root)
