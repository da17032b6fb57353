"""Reference predictors scored with the same metric code as the model.

- `GaussianCenterBias`: an anisotropic Gaussian whose centre and spread are the training
  fixations' mean and standard deviation (in image-relative coordinates).
- `EmpiricalCenterBias`: the training fixations' own histogram (relative coordinates), blurred.
  Both are also densities (`log_density`), the baseline of information gain.
- `spectral_residual`: Hou & Zhang 2007 via OpenCV contrib (`cv2.saliency`).
- The inter-observer "gold standard" (leave one subject out) lives in `evaluate`, since it
  needs the held-out ground truth.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

from msinet.data import Sample
from msinet.density import gaussian_log_density
from msinet.evaluation.metrics import imresize


def _relative_coords(samples: list[Sample]) -> tuple[np.ndarray, np.ndarray]:
    xs = [(s.fixations.xs + 0.5) / s.fixations.shape[1] for s in samples]
    ys = [(s.fixations.ys + 0.5) / s.fixations.shape[0] for s in samples]
    return np.concatenate(xs), np.concatenate(ys)


@dataclass(frozen=True)
class GaussianCenterBias:
    mean: tuple[float, float] = (0.5, 0.5)  # (y, x) relative to the image
    std: tuple[float, float] = (0.2, 0.2)  # (y, x) relative to the image's height, width

    @classmethod
    def fit(cls, samples: list[Sample]) -> GaussianCenterBias:
        xs, ys = _relative_coords(samples)
        return cls((float(ys.mean()), float(xs.mean())), (float(ys.std()), float(xs.std())))

    def __call__(self, shape: tuple[int, int]) -> np.ndarray:
        y = ((np.arange(shape[0]) + 0.5) / shape[0] - self.mean[0]) / self.std[0]
        x = ((np.arange(shape[1]) + 0.5) / shape[1] - self.mean[1]) / self.std[1]
        return np.exp(-0.5 * (y[:, None] ** 2 + x[None, :] ** 2))

    def log_density(self, shape: tuple[int, int]) -> np.ndarray:
        return gaussian_log_density(shape, self.mean, self.std)


@dataclass(frozen=True)
class EmpiricalCenterBias:
    histogram: np.ndarray  # (gh, gw) blurred fixation histogram in relative coordinates
    uniform: float = 1e-3  # as a density: share of a uniform floor (no pixel impossible)

    @classmethod
    def fit(
        cls, samples: list[Sample], grid: tuple[int, int] = (60, 80), sigma: float = 2.0
    ) -> EmpiricalCenterBias:
        """The histogram, and the uniform share that maximises the training fixations'
        likelihood on its grid."""
        from scipy.optimize import minimize_scalar

        xs, ys = _relative_coords(samples)
        h, _, _ = np.histogram2d(ys, xs, bins=grid, range=((0, 1), (0, 1)))
        counts = h.ravel()
        h = gaussian_filter(h, sigma, mode="nearest")
        p = (h / h.sum()).ravel()

        def loss(u: float) -> float:
            return -float(counts @ np.log((1 - u) * p + u / p.size))

        share = minimize_scalar(loss, bounds=(1e-6, 0.5), method="bounded").x
        return cls(h / h.max(), float(share))

    def __call__(self, shape: tuple[int, int]) -> np.ndarray:
        return np.clip(imresize(self.histogram, shape), 0, None)

    def log_density(self, shape: tuple[int, int]) -> np.ndarray:
        c = self(shape)
        total = c.sum()
        c = c / total if total > 0 else np.full(shape, 1.0 / c.size)
        return np.log((1 - self.uniform) * c + self.uniform / c.size)


def spectral_residual(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) RGB uint8 -> (H, W) spectral residual saliency (OpenCV contrib)."""
    import cv2

    sr = cv2.saliency.StaticSaliencySpectralResidual_create()
    ok, m = sr.computeSaliency(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError("OpenCV spectral residual saliency failed")
    return np.asarray(m, np.float64)
