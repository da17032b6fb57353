"""OSIE (Xu et al., JoV 2014) in its official release layout.

ROOT/stimuli/1001.jpg …   800x600 RGB
ROOT/fixations.mat        `fixations`: struct array, one entry per image (same order),
                          fields `img` and `subjects` (per observer: fix_x, fix_y 1-based,
                          fix_duration in ms)
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import numpy as np
import scipy.io

from msinet.data.base import Sample, official_permutation, split_by_indices
from msinet.data.fixations import Fixations

SHAPE = (600, 800)  # every OSIE stimulus is 800x600
# msinet's fixed split of the 600-image cut (1001-1600): the last 100 images validate.
VAL_FROM = 1501


class OSIE:
    name = "osie"
    sigma = 16.0  # the official MSI-Net OSIE training maps
    eval_sigma = 24.0  # about one degree of visual angle at 800x600

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        if not (self.root / "fixations.mat").is_file():
            raise FileNotFoundError(f"{self.root}/fixations.mat not found: not an OSIE root")
        if not (self.root / "stimuli").is_dir():
            raise FileNotFoundError(f"{self.root}/stimuli not found: not an OSIE root")

    @cached_property
    def _all(self) -> list[Sample]:
        mat = scipy.io.loadmat(self.root / "fixations.mat", squeeze_me=True, struct_as_record=False)
        samples = []
        for entry in np.atleast_1d(mat["fixations"]):
            xs, ys, subj = [], [], []
            for k, s in enumerate(np.atleast_1d(entry.subjects)):
                x, y = np.atleast_1d(s.fix_x).astype(float), np.atleast_1d(s.fix_y).astype(float)
                xs.append(x)
                ys.append(y)
                subj.append(np.full(len(x), k))
            image = self.root / "stimuli" / str(entry.img)
            fix = Fixations.from_one_based(
                np.concatenate(xs), np.concatenate(ys), np.concatenate(subj), SHAPE
            )
            samples.append(Sample(image.stem, image, fix))
        return samples

    def samples(self, split: str = "all") -> list[Sample]:
        """The full 700-image release takes the official MSI-Net split (RandomState(42),
        500 train / 200 val); the 600-image cut here, 1001-1500 train / 1501-1600 val."""
        samples = self._all
        if len(samples) == 700:
            idx = official_permutation(700)
            return split_by_indices(samples, split, idx[:500], idx[500:])
        train = [i for i, s in enumerate(samples) if int(s.name) < VAL_FROM]
        val = [i for i, s in enumerate(samples) if int(s.name) >= VAL_FROM]
        return split_by_indices(samples, split, train, val)
