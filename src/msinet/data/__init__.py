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
