"""MIT1003 (Judd et al., ICCV 2009) in its official release layout.

    ROOT/ALLSTIMULI/<stem>.jpeg
    ROOT/ALLFIXATIONMAPS/<stem>_fixMap.jpg    continuous map
    ROOT/ALLFIXATIONMAPS/<stem>_fixPts.jpg    fixated pixels (JPEG: thresholded at half range)

The release also holds a stray `i05june05_static_street_boston_p1010764fixPts.jpg` (no
underscore) that the official code skips; pairing by exact names skips it too.
Split: the official MSI-Net one, RandomState(42) over the sorted files, 803 train / 200 val.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import numpy as np

from msinet.data.base import Sample, official_permutation, require, split_by_indices
from msinet.data.fixations import Fixations
from msinet.imaging.decode import load_image

N_TRAIN = 803


def points_from_map(path: Path) -> Fixations:
    """Fixations from a binary fixation-points image (one point per lit pixel)."""
    a = load_image(path)[..., 0]
    rows, cols = np.nonzero(a > 127)
    return Fixations(cols.astype(float), rows.astype(float), np.zeros(len(rows), np.int64), a.shape)


class MIT1003:
    name = "mit1003"
    sigma = 30.0  # about one degree; the maps ship with the dataset
    eval_sigma = 30.0

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.stimuli = require(self.root / "ALLSTIMULI", "not an MIT1003 root")
        self.maps = require(self.root / "ALLFIXATIONMAPS", "not an MIT1003 root")

    @cached_property
    def _all(self) -> list[Sample]:
        """Read once: every call of samples() would otherwise decode 1003 points images."""
        samples = []
        for image in sorted(self.stimuli.glob("*.jpeg")):
            pts = self.maps / f"{image.stem}_fixPts.jpg"
            fix_map = self.maps / f"{image.stem}_fixMap.jpg"
            if not pts.is_file():
                continue
            samples.append(Sample(image.stem, image, points_from_map(pts),
                                  fix_map if fix_map.is_file() else None))  # fmt: skip
        return samples

    def samples(self, split: str = "all") -> list[Sample]:
        samples = self._all
        idx = official_permutation(len(samples))
        n_train = round(len(samples) * N_TRAIN / 1003)
        return split_by_indices(samples, split, idx[:n_train], idx[n_train:])
