"""Saliency maps as fixation densities: how likely a fixation is on each pixel, summing to 1.

The model's map is min-max normalised: it ranks pixels, it does not say how much more likely
one is than another. Read directly as a density it is poorly calibrated (too flat in the
background, too sure at its peaks). Following Kümmerer et al. (PNAS 2015, ECCV 2018), a few
parameters fitted by maximum likelihood of fixations turn it into one:

    q = (blur_s(m) + floor) ** exponent / sum       the map, smoothed, sharpened and floored
    c = Gaussian centre-bias prior / sum
    p = (1 - w) * q + w * c                          the density (`centre_weight` = w)

The parameters live in the weights' metadata (`WeightsMeta.density`), so every engine gives the
same density; `msinet calibrate` fits them on a dataset's training split.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np
from scipy.ndimage import gaussian_filter
from scipy.special import logsumexp

from msinet.imaging.postprocess import map_to_image
from msinet.imaging.resize import fit_size, resize_tf


class DensityError(ValueError):
    """A density that cannot be made: no calibration, or parameters out of range."""


@dataclass(frozen=True)
class DensityCalibration:
    blur: float = 0.0  # Gaussian blur of the map, sigma as a fraction of the image's longer side
    exponent: float = 1.0  # >1 sharpens the map's peaks, <1 flattens them
    floor: float = 1e-3  # added to the 0..1 map before the power: no pixel is impossible
    centre_weight: float = 0.0  # share of the centre-bias prior in the mixture, 0..1
    centre_mean: tuple[float, float] = (0.5, 0.5)  # prior's centre (y, x), fraction of H, W
    centre_std: tuple[float, float] = (0.2, 0.2)  # prior's spread (y, x), fraction of H, W
    fitted_on: str = ""  # the fixations the parameters were fitted to

    def __post_init__(self) -> None:
        values = (self.blur, self.exponent, self.floor, self.centre_weight, *self.centre_mean,
                  *self.centre_std)  # fmt: skip
        if not all(math.isfinite(v) for v in values):
            raise DensityError(f"density calibration has non-finite parameters: {self}")
        if self.blur < 0 or self.exponent <= 0 or self.floor <= 0:
            raise DensityError("density calibration needs blur >= 0, exponent > 0, floor > 0")
        if not 0.0 <= self.centre_weight <= 1.0 or min(self.centre_std) <= 0:
            raise DensityError("density calibration needs 0 <= centre_weight <= 1, centre_std > 0")

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> DensityCalibration:
        try:
            d = json.loads(text)
            d["centre_mean"], d["centre_std"] = tuple(d["centre_mean"]), tuple(d["centre_std"])
            return cls(**d)
        except (ValueError, TypeError, KeyError) as e:
            raise DensityError(f"malformed density calibration {text[:80]!r}: {e}") from e


# --- applying it ------------------------------------------------------------------------------


def content_shape(model_shape: tuple[int, int], original: tuple[int, int]) -> tuple[int, int]:
    """The part of the model-size map that shows the image (the rest is padding), in model
    pixels: where the density is made before it is brought to the image's size."""
    return fit_size(original, model_shape)


def gaussian_log_density(shape: tuple[int, int], mean: tuple[float, float],
                         std: tuple[float, float]) -> np.ndarray:  # fmt: skip
    """log of a Gaussian over a grid of `shape` (mean and std as fractions of H, W), summing
    to 1 over the grid."""
    y = ((np.arange(shape[0]) + 0.5) / shape[0] - mean[0]) / std[0]
    x = ((np.arange(shape[1]) + 0.5) / shape[1] - mean[1]) / std[1]
    log_c = -0.5 * (y[:, None] ** 2 + x[None, :] ** 2)
    return log_c - logsumexp(log_c)


def centre_log_prior(shape: tuple[int, int], cal: DensityCalibration) -> np.ndarray:
    """log of the calibration's centre-bias prior on a grid of `shape`."""
    return gaussian_log_density(shape, cal.centre_mean, cal.centre_std)


def blurred(m: np.ndarray, blur: float) -> np.ndarray:
    """The map blurred by `blur` x its longer side (none at 0), clipped at 0."""
    if blur > 0:
        m = gaussian_filter(m, blur * max(m.shape), mode="nearest", truncate=3.0)
    return np.clip(m, 0.0, None)


def grid_log_density(m: np.ndarray, cal: DensityCalibration,
                     centre: np.ndarray | None = None) -> np.ndarray:  # fmt: skip
    """A 0..1 map on the image's grid -> float64 log density on the same grid (sums to 1).
    `centre`: the prior's log on this grid, where the caller has it already."""
    s = blurred(np.asarray(m, np.float64), cal.blur)
    log_q = cal.exponent * np.log(s + cal.floor)
    log_q -= logsumexp(log_q)
    if cal.centre_weight == 0.0:
        return log_q
    if centre is None:
        centre = centre_log_prior(s.shape, cal)
    if cal.centre_weight == 1.0:
        return centre
    return np.logaddexp(math.log1p(-cal.centre_weight) + log_q,
                        math.log(cal.centre_weight) + centre)  # fmt: skip


def log_density(m: np.ndarray, original: tuple[int, int], cal: DensityCalibration) -> np.ndarray:
    """A model-size map -> the image's fixation density: (H, W) float32 natural log whose
    exponentials sum to 1. Made at model resolution on the image's part of the map, then
    resized (in log space, so it stays positive) and renormalised at the image's size."""
    work = content_shape(m.shape, original)
    grid = grid_log_density(map_to_image(m, work), cal).astype(np.float32)
    return normalise_log(grid if work == tuple(original) else resize_tf(grid, original))


def normalise_log(log_p: np.ndarray, block: int = 1 << 22) -> np.ndarray:
    """Subtract the log of the sum of exp (in place, float64 sums a block at a time, so that a
    49 MP density takes no full-size float64 temporary)."""
    flat = log_p.reshape(-1)
    top = float(flat.max())
    total = sum(float(np.exp(flat[i : i + block] - top, dtype=np.float64).sum())
                for i in range(0, flat.size, block))  # fmt: skip
    flat -= np.float32(top + math.log(total))
    return log_p


# --- fitting it -------------------------------------------------------------------------------


@dataclass
class FitImage:
    """One training image for the fit: its map on the content grid and the grid cells its
    fixations fall in."""

    grid: np.ndarray  # (h, w) 0..1 map, as `log_density` makes it before resizing
    rows: np.ndarray  # (N,) fixations' cells on the grid
    cols: np.ndarray

    @classmethod
    def make(cls, m: np.ndarray, original: tuple[int, int], xs: np.ndarray,
             ys: np.ndarray) -> FitImage:  # fmt: skip
        work = content_shape(m.shape, original)
        rows = np.clip(((np.asarray(ys) + 0.5) * work[0] / original[0]).astype(int), 0,
                       work[0] - 1)  # fmt: skip
        cols = np.clip(((np.asarray(xs) + 0.5) * work[1] / original[1]).astype(int), 0,
                       work[1] - 1)  # fmt: skip
        return cls(map_to_image(m, work), rows, cols)


def log_likelihood(images: Sequence[FitImage], cal: DensityCalibration) -> float:
    """Mean log-likelihood per fixation over a uniform density, in nats, on each image's grid
    (the same at the image's size up to resizing: a cell's density is spread over its pixels,
    the uniform density's likewise)."""
    total, n = 0.0, 0
    priors: dict[tuple[int, int], np.ndarray] = {}
    for im in images:
        if not len(im.rows):
            continue
        if im.grid.shape not in priors:
            priors[im.grid.shape] = centre_log_prior(im.grid.shape, cal)
        ll = grid_log_density(im.grid, cal, priors[im.grid.shape])[im.rows, im.cols]
        total += float(ll.sum()) + math.log(im.grid.size) * len(ll)
        n += len(ll)
    return total / max(n, 1)


def fit(images: Sequence[FitImage], centre_mean: tuple[float, float],
        centre_std: tuple[float, float], fitted_on: str = "",
        progress: Callable[[float, float], None] | None = None) -> DensityCalibration:  # fmt: skip
    """Maximum-likelihood blur, exponent, floor and centre weight for `images`; the centre
    prior's mean and spread are given (the training fixations' mean and standard deviation).

    The blur is searched in one dimension (no blur, then Brent's method on its log), each blur
    blurring the maps once; for each, exponent, floor and weight by bounded Nelder-Mead on
    log / logit transforms, where a fixation's likelihood needs only its pixel and the map's
    normaliser. `progress(blur, log-likelihood in nats)` after each blur."""
    from scipy.optimize import minimize, minimize_scalar

    base = DensityCalibration(centre_mean=centre_mean, centre_std=centre_std, fitted_on=fitted_on)
    images = [im for im in images if len(im.rows)]
    n = sum(len(im.rows) for im in images)
    offset = sum(math.log(im.grid.size) * len(im.rows) for im in images)  # over uniform
    priors = {shape: np.exp(centre_log_prior(shape, base))
              for shape in {im.grid.shape for im in images}}  # fmt: skip
    centre_at = [priors[im.grid.shape][im.rows, im.cols] for im in images]
    tried: dict[float, tuple[float, np.ndarray]] = {}
    start = np.array([0.0, np.log(0.05), 0.0])  # exponent 1, floor 0.05, centre weight 1/2

    def unpack(blur: float, x: np.ndarray) -> DensityCalibration:
        exponent, floor = (float(v) for v in np.exp(x[:2]))
        weight = float(1 / (1 + np.exp(-x[2])))
        return replace(base, blur=blur, exponent=exponent, floor=floor, centre_weight=weight)

    def best_for(blur: float) -> float:
        """The best mean log-likelihood (nats per fixation) at this blur."""
        maps = []
        for im in images:
            g = blurred(im.grid.astype(np.float32), blur)
            maps.append((g, g[im.rows, im.cols]))

        def loss(x: np.ndarray) -> float:
            exponent, floor = np.exp(x[:2])
            weight = 1 / (1 + np.exp(-x[2]))
            total = 0.0
            for (g, at), c in zip(maps, centre_at, strict=True):
                z = float(
                    np.power(g + np.float32(floor), np.float32(exponent)).sum(dtype=np.float64)
                )
                q = np.power(at.astype(np.float64) + floor, exponent) / z
                total += float(np.log((1 - weight) * q + weight * c).sum())
            return -(total + offset) / n

        warm = max(tried.values(), key=lambda t: t[0])[1] if tried else start
        bounds = [(np.log(0.1), np.log(10.0)), (np.log(1e-8), 0.0), (-12.0, 12.0)]
        result = minimize(loss, warm, method="Nelder-Mead", bounds=bounds,
                          options={"xatol": 1e-3, "fatol": 1e-6, "maxfev": 300})  # fmt: skip
        tried[blur] = (-float(result.fun), result.x)
        if progress is not None:
            progress(blur, -float(result.fun))
        return float(result.fun)

    best_for(0.0)
    minimize_scalar(lambda t: best_for(float(np.exp(t))), bounds=(np.log(0.002), np.log(0.1)),
                    method="bounded", options={"xatol": 0.05})  # fmt: skip
    blur, (_, x) = max(tried.items(), key=lambda kv: kv[1][0])
    return unpack(blur, x)
