"""The NUS fixation layout: OSIE's release format, shared by this project's MIT1003 and EyeCrowd.

    ROOT/stimuli/<name>.jpg
    ROOT/fixations.mat    `fixations`: struct array, one entry per image, fields `img` (file
                          name) and `subjects` (one entry per observer: fix_x, fix_y 1-based
                          pixel coordinates, fix_duration in ms)

Each dataset in this layout differs only in its split and its Gaussians; `NUS_DATASETS` holds
them (name -> `NUSSpec`). Ground-truth Gaussians are about one degree of visual angle: 24 px per
1000 px of image diagonal, the OSIE convention (its viewers saw 800x600 images at ~24 px/degree),
applied to each dataset's displayed size.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image

from msinet.data.base import Sample, official_permutation, split_by_indices
from msinet.data.fixations import Fixations

Split = Callable[[list[Sample]], tuple[list[int], list[int]]]


def split_from(first_val: int, last_val: int | None = None) -> Split:
    """Validation = numeric stems first_val..last_val; training = the stems below first_val
    (stems above last_val, absent from ../shared, stay in neither: a held-out test part)."""

    def split(samples: list[Sample]) -> tuple[list[int], list[int]]:
        numbers = [int(s.name) for s in samples]
        train = [i for i, n in enumerate(numbers) if n < first_val]
        val = [i for i, n in enumerate(numbers)
               if n >= first_val and (last_val is None or n <= last_val)]  # fmt: skip
        return train, val

    return split


def osie_split(samples: list[Sample]) -> tuple[list[int], list[int]]:
    """The full 700-image release: the official MSI-Net split (RandomState(42), 500/200); the
    600-image cut in ../shared: 1001-1500 train, 1501-1600 validate."""
    if len(samples) == 700:
        idx = official_permutation(700)
        return list(idx[:500]), list(idx[500:])
    return split_from(1501)(samples)


def official_mit1003_split(samples: list[Sample]) -> tuple[list[int], list[int]]:
    """The official MSI-Net split: RandomState(42) over the stems in sorted order, 200 validate
    (803 of 1003 train; the same fraction for a partial copy)."""
    idx = official_permutation(len(samples))
    n_train = round(len(samples) * 803 / 1003)
    return list(idx[:n_train]), list(idx[n_train:])


@dataclass(frozen=True)
class NUSSpec:
    name: str
    sigma: float  # training ground truth, px at the files' size (about one degree)
    eval_sigma: float  # evaluation densities, px at the files' size (about one degree)
    split: Split
    sort_by_stem: bool = False  # the official split is defined on sorted stems


NUS_DATASETS = {
    # 800x600, diagonal 1000 px: 24 px. The shipped v1 model trained on sigma 16 (the official
    # MSI-Net OSIE maps); v2 trains on one degree like the other datasets.
    "osie": NUSSpec("osie", 24.0, 24.0, osie_split),
    # long side 1024 (463 of 1003 at 1024x768, diagonal 1280 px): 30 px, as msinet has always
    # evaluated MIT1003.
    "mit1003": NUSSpec("mit1003", 30.0, 30.0, official_mit1003_split, sort_by_stem=True),
    # 640x480 here (the release's 1024x768 scaled by 0.625), diagonal 800 px: 19.2 px.
    "eyecrowd": NUSSpec("eyecrowd", 19.2, 19.2, split_from(321, 400)),
}


def is_nus_root(root: Path) -> bool:
    return (root / "fixations.mat").is_file() and (root / "stimuli").is_dir()


def read_fixations_mat(path: Path) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    """(image file name, xs, ys, observer index) per entry, 1-based as stored."""
    try:
        mat = scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False)
        entries = np.atleast_1d(mat["fixations"])
    except (ValueError, KeyError, OSError, TypeError, scipy.io.matlab.MatReadError) as e:
        raise ValueError(f"{path}: not a NUS fixations file ({e})") from None
    out = []
    for entry in entries:
        xs, ys, subj = [], [], []
        for k, s in enumerate(np.atleast_1d(entry.subjects)):
            x = np.atleast_1d(s.fix_x).astype(float).ravel()
            y = np.atleast_1d(s.fix_y).astype(float).ravel()
            xs.append(x)
            ys.append(y)
            subj.append(np.full(len(x), k))
        cat = (np.concatenate(v) if v else np.zeros(0) for v in (xs, ys, subj))
        out.append((str(entry.img), *cat))
    return out


class NUSDataset:
    """A dataset in the NUS layout; its images' sizes are read from their headers."""

    def __init__(self, root: str | Path, spec: NUSSpec) -> None:
        self.root = Path(root)
        self.spec = spec
        self.name, self.sigma, self.eval_sigma = spec.name, spec.sigma, spec.eval_sigma
        for what in ("fixations.mat", "stimuli"):
            if not (self.root / what).exists():
                name = spec.name.upper()
                raise FileNotFoundError(f"{self.root / what} not found: not an {name} root "
                                        "(NUS layout: stimuli/ and fixations.mat)")  # fmt: skip

    @cached_property
    def _all(self) -> list[Sample]:
        samples = []
        for file_name, xs, ys, subj in read_fixations_mat(self.root / "fixations.mat"):
            image = self.root / "stimuli" / file_name
            if not image.is_file():
                raise FileNotFoundError(f"{image} not found: fixations.mat names it")
            with Image.open(image) as im:
                shape = (im.height, im.width)
            samples.append(Sample(image.stem, image, Fixations.from_one_based(xs, ys, subj, shape)))
        if self.spec.sort_by_stem:
            samples.sort(key=lambda s: s.name)
        return samples

    def samples(self, split: str = "all") -> list[Sample]:
        samples = self._all
        train, val = self.spec.split(samples) if split != "all" else ([], [])
        return split_by_indices(samples, split, train, val)
