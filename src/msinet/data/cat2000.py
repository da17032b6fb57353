"""CAT2000 (Borji & Itti 2015), training set, in its official release layout.

    ROOT/Stimuli/<Category>/NNN.jpg           20 categories x 100 images, 1920x1080
    ROOT/FIXATIONMAPS/<Category>/NNN.jpg      continuous maps
    ROOT/FIXATIONLOCS/<Category>/NNN.mat      `fixLocs`: binary map of fixated pixels

`Output` folders (model outputs shipped in some categories) are skipped.
Split: the official MSI-Net one, stratified by category: RandomState(42) over 100 positions,
the first 80 of every category train, the last 20 validate (1600/400).
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import numpy as np
import scipy.io

from msinet.data.base import Sample, official_permutation, require
from msinet.data.fixations import Fixations


def read_fixlocs(path: Path) -> Fixations:
    locs = scipy.io.loadmat(path)["fixLocs"]
    rows, cols = np.nonzero(locs)
    return Fixations(cols.astype(float), rows.astype(float), np.zeros(len(rows), np.int64),
                     locs.shape)  # fmt: skip


class CAT2000:
    name = "cat2000"
    sigma = 35.0  # about one degree at 1920x1080; the maps ship with the dataset
    eval_sigma = 35.0
    train_fraction = 0.8

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.stimuli = require(self.root / "Stimuli", "not a CAT2000 root")

    def categories(self) -> list[Path]:
        return sorted(p for p in self.stimuli.iterdir() if p.is_dir() and p.name != "Output")

    def _category(self, folder: Path) -> list[Sample]:
        out = []
        for image in sorted(folder.glob("*.jpg")):
            locs = self.root / "FIXATIONLOCS" / folder.name / f"{image.stem}.mat"
            saliency = self.root / "FIXATIONMAPS" / folder.name / image.name
            out.append(Sample(f"{folder.name}/{image.stem}", image, read_fixlocs(locs),
                              saliency if saliency.is_file() else None))  # fmt: skip
        return out

    @cached_property
    def _by_category(self) -> list[list[Sample]]:
        return [self._category(folder) for folder in self.categories()]

    def samples(self, split: str = "all") -> list[Sample]:
        if split not in ("train", "val", "all"):
            raise ValueError(f"unknown split {split!r}; CAT2000 has train, val, all")
        out = []
        for category in self._by_category:
            idx = official_permutation(len(category))
            k = round(len(category) * self.train_fraction)
            chosen = {"train": idx[:k], "val": idx[k:], "all": np.arange(len(category))}[split]
            out.extend(category[i] for i in chosen)
        return out
