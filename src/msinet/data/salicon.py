"""SALICON (Jiang et al., CVPR 2015) in its official release layout.

    ROOT/images/{train,val}/COCO_train2014_000000000009.jpg …   480x640
    ROOT/maps/{train,val}/<stem>.png                            continuous maps
    ROOT/fixations/{train,val}/<stem>.mat                       `gaze`: one entry per observer,
                                                                `fixations` rows (x, y) 1-based

Mouse-tracking "fixations" (2017 release) can fall outside the image; they are dropped.
Splits: the official train (10,000) and val (5,000).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image

from msinet.data.base import Sample, images_in, require
from msinet.data.fixations import Fixations


def read_gaze(path: Path, shape: tuple[int, int]) -> Fixations:
    mat = scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False)
    xs, ys, subjects = [], [], []
    for k, observer in enumerate(np.atleast_1d(mat["gaze"])):
        fix = np.asarray(observer.fixations, dtype=np.float64).reshape(-1, 2)
        xs.append(fix[:, 0])
        ys.append(fix[:, 1])
        subjects.append(np.full(len(fix), k))
    if not xs:
        return Fixations(np.zeros(0), np.zeros(0), np.zeros(0, np.int64), shape)
    return Fixations.from_one_based(
        np.concatenate(xs), np.concatenate(ys), np.concatenate(subjects), shape
    )


class SALICON:
    name = "salicon"
    sigma = 19.0  # the maps ship with the dataset; used only where a map is missing
    eval_sigma = 19.0

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        require(self.root / "images", "not a SALICON root (images/{train,val})")
        self._splits: dict[str, list[Sample]] = {}  # read once: 15,000 .mat files

    def samples(self, split: str = "all") -> list[Sample]:
        if split == "all":
            return self.samples("train") + self.samples("val")
        if split not in ("train", "val"):
            raise ValueError(f"unknown split {split!r}; SALICON has train, val, all")
        if split not in self._splits:
            self._splits[split] = self._read(split)
        return list(self._splits[split])

    def _read(self, split: str) -> list[Sample]:
        out = []
        for image in images_in(require(self.root / "images" / split, "SALICON images")):
            with Image.open(image) as im:
                shape = (im.height, im.width)
            mat = self.root / "fixations" / split / f"{image.stem}.mat"
            fixations = read_gaze(mat, shape) if mat.is_file() else Fixations.empty(shape)
            saliency = self.root / "maps" / split / f"{image.stem}.png"
            out.append(
                Sample(image.stem, image, fixations, saliency if saliency.is_file() else None)
            )
        return out
