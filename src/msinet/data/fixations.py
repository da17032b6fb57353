"""Eye-tracking ground truth: fixation points, binary fixation maps and fixation densities."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import gaussian_filter


@dataclass(frozen=True)
class Fixations:
    """All fixations on one image, in 0-based pixel coordinates (x right, y down)."""

    xs: np.ndarray = field(repr=False)  # (N,) float
    ys: np.ndarray = field(repr=False)  # (N,) float
    subjects: np.ndarray = field(repr=False)  # (N,) int, the observer of each fixation
    shape: tuple[int, int]  # (H, W) of the image

    @classmethod
    def from_one_based(
        cls, xs: np.ndarray, ys: np.ndarray, subjects: np.ndarray, shape: tuple[int, int]
    ) -> Fixations:
        """MATLAB-style 1-based points; those that fall outside the image are dropped."""
        xs = np.asarray(xs, np.float64) - 1.0
        ys = np.asarray(ys, np.float64) - 1.0
        subjects = np.asarray(subjects, np.int64)
        rows, cols = np.rint(ys), np.rint(xs)
        keep = (
            np.isfinite(xs) & np.isfinite(ys)
            & (rows >= 0) & (rows < shape[0]) & (cols >= 0) & (cols < shape[1])
        )  # fmt: skip
        return cls(xs[keep], ys[keep], subjects[keep], shape)

    @classmethod
    def empty(cls, shape: tuple[int, int]) -> Fixations:
        return cls(np.zeros(0), np.zeros(0), np.zeros(0, np.int64), shape)

    def __len__(self) -> int:
        return len(self.xs)

    @property
    def rows(self) -> np.ndarray:
        """The pixel each fixation falls on (rounded, as the MATLAB benchmark builds maps)."""
        return np.rint(self.ys).astype(np.int64)

    @property
    def cols(self) -> np.ndarray:
        return np.rint(self.xs).astype(np.int64)

    def subset(self, mask: np.ndarray) -> Fixations:
        return Fixations(self.xs[mask], self.ys[mask], self.subjects[mask], self.shape)

    def counts(self) -> np.ndarray:
        """(H, W) number of fixations per pixel."""
        m = np.zeros(self.shape, np.float64)
        np.add.at(m, (self.rows, self.cols), 1.0)
        return m

    def binary_map(self) -> np.ndarray:
        """(H, W) bool: pixels with at least one fixation (duplicates collapse)."""
        return self.counts() > 0

    def density(self, sigma: float) -> np.ndarray:
        """Fixation counts blurred by a Gaussian of `sigma` px, scaled to max 1."""
        return blur(self.counts(), sigma)

    def rescaled(self, shape: tuple[int, int]) -> Fixations:
        """The same fixations on an image of another size (for pooling across images)."""
        sy, sx = shape[0] / self.shape[0], shape[1] / self.shape[1]
        return Fixations(
            (self.xs + 0.5) * sx - 0.5, (self.ys + 0.5) * sy - 0.5, self.subjects, shape
        )


def blur(counts: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur with zero padding (fixations near the border lose mass outside the image,
    as with a convolution of the fixation map), normalised to max 1."""
    d = gaussian_filter(counts.astype(np.float64), sigma, mode="constant", truncate=4.0)
    peak = d.max()
    return d / peak if peak > 0 else d
