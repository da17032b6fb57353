"""Any folder of images with either saliency maps or a CSV of fixation points.

    ROOT/images/<stem>.<jpg|jpeg|png>
    ROOT/maps/<stem>.png            continuous maps (grayscale), and/or
    ROOT/fixations.csv              columns image,x,y[,subject]; `image` is the file name or
                                    stem, x and y 0-based pixel coordinates

Where only maps exist, the fixated pixels are taken as the map's local peaks above 0.5 of its
maximum (enough for NSS/AUC during training; evaluate on real fixations where possible).
Split: RandomState(42) over the sorted files, 80% train / 20% val.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from functools import cached_property
from pathlib import Path

import numpy as np
from PIL import Image

from msinet.data.base import Sample, images_in, official_permutation, require, split_by_indices
from msinet.data.fixations import Fixations
from msinet.imaging.decode import load_image


def read_points(csv_path: Path) -> dict[str, list[tuple[float, float, int]]]:
    points: dict[str, list[tuple[float, float, int]]] = defaultdict(list)
    with open(csv_path, newline="") as f:
        reader = csv.DictReader(f)
        missing = {"image", "x", "y"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{csv_path} lacks the columns {sorted(missing)}")
        for row in reader:
            stem = Path(row["image"]).stem
            points[stem].append((float(row["x"]), float(row["y"]), int(row.get("subject") or 0)))
    return points


def peaks(map_path: Path) -> Fixations:
    from scipy.ndimage import maximum_filter

    m = load_image(map_path)[..., 0].astype(np.float32)
    lit = (m == maximum_filter(m, size=9)) & (m > 0.5 * m.max()) & (m > 0)
    rows, cols = np.nonzero(lit)
    return Fixations(cols.astype(float), rows.astype(float), np.zeros(len(rows), np.int64), m.shape)


class ImageFolder:
    name = "folder"
    sigma = 24.0
    eval_sigma = 24.0

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.images = require(self.root / "images", "a folder dataset needs images/")
        if not (self.root / "maps").is_dir() and not (self.root / "fixations.csv").is_file():
            raise FileNotFoundError(f"{self.root} has neither maps/ nor fixations.csv")

    @cached_property
    def _all(self) -> list[Sample]:
        csv_path = self.root / "fixations.csv"
        points = read_points(csv_path) if csv_path.is_file() else {}
        samples = []
        for image in images_in(self.images):
            saliency = self.root / "maps" / f"{image.stem}.png"
            saliency = saliency if saliency.is_file() else None
            if image.stem in points:
                with Image.open(image) as im:
                    shape = (im.height, im.width)
                xs, ys, subj = (np.array(v) for v in zip(*points[image.stem], strict=True))
                fix = Fixations.from_one_based(xs + 1, ys + 1, subj.astype(np.int64), shape)
            elif saliency is not None:
                fix = peaks(saliency)
            else:
                continue
            samples.append(Sample(image.stem, image, fix, saliency))
        return samples

    def samples(self, split: str = "all") -> list[Sample]:
        samples = self._all
        idx = official_permutation(len(samples))
        k = round(0.8 * len(samples))
        return split_by_indices(samples, split, idx[:k], idx[k:])
