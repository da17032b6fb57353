"""Saliency metrics as pure array functions, with the benchmarks' conventions spelled out.

Default: the MIT saliency benchmark's MATLAB code (cvzoya/saliency, code_forMetrics), which
published MSI-Net numbers use. Functions prefixed `pysaliency_` follow matthias-k/pysaliency
where it differs. docs/metrics.md has the table of every difference.

Arguments: `saliency` is any real (h, w) map; `fixation_map` a binary (H, W) map of fixated
pixels; `density` a continuous (H, W) fixation map. Predictions of another size are resized to
the ground truth's size with antialiased bicubic interpolation (MATLAB's `imresize`).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image

MATLAB_EPS = 2.2204e-16


class MetricError(ValueError):
    """Inputs a metric cannot score (non-finite values, bad shapes)."""


# --- input handling ---------------------------------------------------------------------------


def check_map(a: np.ndarray, what: str = "saliency map") -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 2 or a.size == 0:
        raise MetricError(f"{what} must be a non-empty 2-D array, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise MetricError(f"{what} contains NaN or inf")
    return a.astype(np.float64, copy=False)


def imresize(a: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bicubic resize with antialiasing when shrinking, like MATLAB's imresize default."""
    if a.shape == tuple(shape):
        return a
    img = Image.fromarray(np.asarray(a, np.float32), mode="F")
    return np.asarray(img.resize((shape[1], shape[0]), Image.Resampling.BICUBIC), np.float64)


def to_shape(saliency: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    return imresize(check_map(saliency), shape)


def check_fixations(fixation_map: np.ndarray) -> np.ndarray:
    f = np.asarray(fixation_map)
    if f.ndim != 2:
        raise MetricError(f"fixation map must be 2-D, got shape {f.shape}")
    return f > 0


def minmax(a: np.ndarray) -> np.ndarray:
    lo, hi = a.min(), a.max()
    return (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)


def _trapz(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.trapezoid(y, x, axis=axis)


# --- AUC family -------------------------------------------------------------------------------


def auc_judd(
    saliency: np.ndarray, fixation_map: np.ndarray, jitter: bool = True, seed: int = 0
) -> float:
    """AUC-Judd: thresholds at the saliency of each fixated pixel; all other pixels negative."""
    f = check_fixations(fixation_map)
    s = to_shape(saliency, f.shape)
    if not f.any() or f.all():  # no positives, or no negatives
        return float("nan")
    if jitter:  # break ties in flat regions, as the benchmark does
        s = s + np.random.default_rng(seed).random(s.shape) / 1e7
    s = minmax(s).ravel()
    sth = np.sort(s[f.ravel()])[::-1]
    n_fix, n_pix = len(sth), s.size
    above = n_pix - np.searchsorted(np.sort(s), sth, side="left")  # count(S >= t)
    i = np.arange(1, n_fix + 1)
    tp = np.concatenate(([0.0], i / n_fix, [1.0]))
    fp = np.concatenate(([0.0], (above - i) / (n_pix - n_fix), [1.0]))
    return float(_trapz(fp, tp))


def _auc_steps(sth: np.ndarray, negatives: np.ndarray, step: float) -> float:
    """Mean over splits of the step-threshold ROC area; `negatives` is (n, splits)."""
    top = max(sth.max(), negatives.max())
    thresholds = np.arange(int(np.floor(top / step + 1e-9)) + 1)[::-1] * step  # max..0
    tp = (sth[None, :] >= thresholds[:, None]).mean(1)  # (T,)
    fp = (negatives[None] >= thresholds[:, None, None]).mean(1)  # (T, splits)
    splits = negatives.shape[1]
    tp = np.concatenate(([0.0], tp, [1.0]))
    tp = np.repeat(tp[:, None], splits, axis=1)
    fp = np.concatenate((np.zeros((1, splits)), fp, np.ones((1, splits))))
    return float(_trapz(fp, tp, axis=0).mean())


def auc_borji(
    saliency: np.ndarray,
    fixation_map: np.ndarray,
    n_splits: int = 100,
    step: float = 0.1,
    seed: int = 0,
) -> float:
    """AUC-Borji: per split, as many negatives as fixations, uniform over all pixels."""
    f = check_fixations(fixation_map)
    s = minmax(to_shape(saliency, f.shape)).ravel()
    sth = s[f.ravel()]
    if len(sth) <= 1:
        return float("nan")
    rng = np.random.default_rng(seed)
    negatives = s[rng.integers(0, s.size, size=(len(sth), n_splits))]
    return _auc_steps(sth, negatives, step)


def auc_shuffled(
    saliency: np.ndarray,
    fixation_map: np.ndarray,
    other_map: np.ndarray,
    n_splits: int = 100,
    step: float = 0.1,
    seed: int = 0,
) -> float:
    """Shuffled AUC: negatives are fixated pixels of other images (`other_map`, the union of
    their binary maps, so duplicates are removed), min(Nfix, Nother) per split."""
    f = check_fixations(fixation_map)
    other = check_fixations(other_map)
    if other.shape != f.shape:
        raise MetricError(f"other-images map {other.shape} differs from fixations {f.shape}")
    s = minmax(to_shape(saliency, f.shape)).ravel()
    sth = s[f.ravel()]
    pool = np.flatnonzero(other.ravel())
    if len(sth) == 0 or len(pool) == 0:
        return float("nan")
    rng = np.random.default_rng(seed)
    k = min(len(sth), len(pool))
    picks = np.stack([rng.permutation(pool)[:k] for _ in range(n_splits)], axis=1)
    return _auc_steps(sth, s[picks], step)


def roc_auc(positives: np.ndarray, negatives: np.ndarray) -> float:
    """Exact area under the ROC curve, ties counting one half (Mann-Whitney U)."""
    positives, negatives = np.asarray(positives, float), np.asarray(negatives, float)
    if len(positives) == 0 or len(negatives) == 0:
        return float("nan")
    neg = np.sort(negatives)
    below = np.searchsorted(neg, positives, side="left")
    ties = np.searchsorted(neg, positives, side="right") - below
    return float((below + 0.5 * ties).sum() / (len(positives) * len(negatives)))


def pysaliency_auc(saliency: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> float:
    """pysaliency AUC: every fixation positive (duplicates kept), every pixel negative."""
    s = check_map(saliency)
    return roc_auc(s[pixel_index(ys), pixel_index(xs)], s.ravel())


def pysaliency_sauc(
    saliency: np.ndarray, xs: np.ndarray, ys: np.ndarray, other_xs: np.ndarray, other_ys: np.ndarray
) -> float:
    """pysaliency shuffled AUC: negatives are all fixations of all other images."""
    s = check_map(saliency)
    return roc_auc(
        s[pixel_index(ys), pixel_index(xs)], s[pixel_index(other_ys), pixel_index(other_xs)]
    )


def pixel_index(v: np.ndarray) -> np.ndarray:
    """pysaliency indexes pixels by truncating 0-based coordinates."""
    return np.asarray(v).astype(int)


# --- NSS, CC, KLD, SIM, IG --------------------------------------------------------------------


def nss(saliency: np.ndarray, fixation_map: np.ndarray, ddof: int = 1) -> float:
    """Mean z-scored saliency over fixated pixels. MATLAB's std is the sample std (ddof=1)."""
    f = check_fixations(fixation_map)
    s = to_shape(saliency, f.shape)
    if not f.any():
        return float("nan")
    sd = s.std(ddof=ddof)
    z = (s - s.mean()) / sd if sd > 0 else np.zeros_like(s)
    return float(z[f].mean())


def pysaliency_nss(saliency: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> float:
    """Per-fixation NSS (duplicates count every time), population std."""
    s = check_map(saliency)
    if len(xs) == 0:
        return float("nan")
    sd = s.std()
    z = (s - s.mean()) / sd if sd > 0 else s - s.mean()
    return float(z[pixel_index(ys), pixel_index(xs)].mean())


def cc(saliency: np.ndarray, density: np.ndarray) -> float:
    """Pearson correlation between the map and the fixation density (0 if one is constant)."""
    d = check_map(density, "fixation density")
    s = to_shape(saliency, d.shape)
    if s.std() == 0 or d.std() == 0:
        return 0.0
    a = (s - s.mean()) / s.std()
    b = (d - d.mean()) / d.std()
    return float((a * b).mean())


def kld(saliency: np.ndarray, density: np.ndarray, eps: float = MATLAB_EPS) -> float:
    """KL(density || saliency), each divided by its sum, eps inside the log and the quotient."""
    d = check_map(density, "fixation density")
    s = to_shape(saliency, d.shape)
    if s.min() < 0:
        raise MetricError("the MIT KLD needs a non-negative saliency map")
    p = d / d.sum() if d.any() else d
    q = s / s.sum() if s.any() else s
    return float((p * np.log(eps + p / (q + eps))).sum())


def pysaliency_kld(saliency: np.ndarray, density: np.ndarray) -> float:
    """pysaliency's MIT_KLDiv: negative maps are shifted to a minimum of 0 first."""
    d = check_map(density, "fixation density")
    s = to_shape(saliency, d.shape)
    return kld(s - min(s.min(), 0.0), d - min(d.min(), 0.0))


def sim(saliency: np.ndarray, density: np.ndarray) -> float:
    """Histogram intersection of the two maps, each min-max normalised then divided by its sum."""
    d = check_map(density, "fixation density")
    s = to_shape(saliency, d.shape)

    def dist(a: np.ndarray) -> np.ndarray:
        if not a.any():
            return a
        a = minmax(a)
        return a / a.sum() if a.any() else np.full_like(a, 1.0 / a.size)

    return float(np.minimum(dist(s), dist(d)).sum())


def pysaliency_sim(saliency: np.ndarray, density: np.ndarray) -> float:
    """pysaliency SIM: no min-max; a negative map is shifted to 0, then divided by its sum."""
    d = check_map(density, "fixation density")
    s = to_shape(saliency, d.shape)

    def dist(a: np.ndarray) -> np.ndarray:
        a = a - min(a.min(), 0.0)
        return a / a.sum() if a.sum() else np.full_like(a, 1.0 / a.size)

    return float(np.minimum(dist(s), dist(d)).sum())


def information_gain(
    saliency: np.ndarray, fixation_map: np.ndarray, baseline: np.ndarray, eps: float = MATLAB_EPS
) -> float:
    """Bits per fixated pixel gained over `baseline` (e.g. a centre bias); both maps are min-max
    normalised and divided by their sums (MIT InfoGain.m)."""
    f = check_fixations(fixation_map)
    s = minmax(to_shape(saliency, f.shape))
    b = minmax(to_shape(baseline, f.shape))
    if not f.any():
        return float("nan")
    p, q = _unit_sum(s), _unit_sum(b)
    return float((np.log2(eps + p[f]) - np.log2(eps + q[f])).mean())


def _unit_sum(a: np.ndarray) -> np.ndarray:
    """a / sum(a); a flat (all-zero after min-max) map becomes uniform."""
    total = a.sum()
    return a / total if total > 0 else np.full_like(a, 1.0 / a.size)


def to_density(saliency: np.ndarray) -> np.ndarray:
    """A saliency map as a probability distribution over pixels (min-shift, then / sum)."""
    s = check_map(saliency)
    s = s - min(s.min(), 0.0)
    total = s.sum()
    return s / total if total > 0 else np.full_like(s, 1.0 / s.size)


def pysaliency_information_gain(
    saliency: np.ndarray, xs: np.ndarray, ys: np.ndarray, baseline: np.ndarray
) -> float:
    """Bits per fixation (duplicates counted) of the prediction's density over the baseline's."""
    p, q = to_density(saliency), to_density(to_shape(baseline, np.shape(saliency)))
    r, c = pixel_index(ys), pixel_index(xs)
    return float((np.log2(MATLAB_EPS + p[r, c]) - np.log2(MATLAB_EPS + q[r, c])).mean())


# --- densities: log-likelihood and information gain (Kümmerer et al. 2015) -------------------


def map_log_density(saliency: np.ndarray) -> np.ndarray:
    """A saliency map read as a density, as pysaliency's IG reads maps: log(eps + map / sum)."""
    return np.log(MATLAB_EPS + to_density(saliency))


def log_likelihood(log_density: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> float:
    """Bits per fixation over a uniform density: mean log2 p at the fixations + log2(H W)."""
    ld = check_map(log_density, "log density")
    if len(rows) == 0:
        return float("nan")
    return float(ld[rows, cols].mean() / np.log(2) + np.log2(ld.size))


def density_information_gain(
    log_density: np.ndarray, baseline_log_density: np.ndarray, rows: np.ndarray, cols: np.ndarray
) -> float:
    """Bits per fixation of a density over a baseline density (both natural logs, same size)."""
    ld = check_map(log_density, "log density")
    lb = check_map(baseline_log_density, "baseline log density")
    if ld.shape != lb.shape:
        raise MetricError(f"density {ld.shape} and baseline {lb.shape} differ in size")
    if len(rows) == 0:
        return float("nan")
    return float((ld[rows, cols] - lb[rows, cols]).mean() / np.log(2))


# --- EMD --------------------------------------------------------------------------------------


def histogram_match(source: np.ndarray, reference: np.ndarray, bins: int = 256) -> np.ndarray:
    """Remap `source` so its value histogram follows `reference`'s (imhist over [0, 1]), by
    piecewise-linear CDF matching like matlabPyrTools' histoMatch."""
    lo, hi = source.min(), source.max()
    if hi <= lo:
        return source.copy()
    counts, _ = np.histogram(
        np.clip(reference, 0, 1), bins=bins, range=(-0.5 / (bins - 1), 1 + 0.5 / (bins - 1))
    )
    counts = counts + counts.mean() / 1e8  # no empty bins: a strictly increasing CDF
    ref_cdf = np.concatenate(([0.0], np.cumsum(counts))) / counts.sum()
    ref_edges = np.linspace(-0.5 / (bins - 1), 1 + 0.5 / (bins - 1), bins + 1)
    src_counts, src_edges = np.histogram(source, bins=bins, range=(lo, hi))
    src_cdf = np.concatenate(([0.0], np.cumsum(src_counts))) / src_counts.sum()
    mapped_edges = np.interp(src_cdf, ref_cdf, ref_edges)
    return np.interp(source, src_edges, mapped_edges)


def emd(
    saliency: np.ndarray, density: np.ndarray, downscale: int = 32, hist_match: bool = True
) -> float:
    """Earth mover's distance (in downscaled pixels) between the maps as distributions of mass 1.

    As the MIT code: both maps are shrunk to 1/`downscale` of the density's size, the prediction
    is histogram-matched to the density (`hist_match`; lossy: a map scores about 0.02-0.2 against
    itself), both are normalised to sum 1, and the transport with Euclidean ground distance is
    solved exactly with POT's network simplex (`ot.emd2`).
    """
    import ot

    d = check_map(density, "fixation density")
    small = tuple(max(1, int(np.ceil(n / downscale))) for n in d.shape)
    d = np.clip(imresize(minmax(d), small), 0, None)
    s = np.clip(imresize(minmax(check_map(saliency)), small), 0, None)
    if hist_match:
        s = np.clip(histogram_match(s, d), 0, None)
    if not d.any() or not s.any():
        return float("nan")
    p, q = d.ravel() / d.sum(), s.ravel() / s.sum()
    cost = _ground_distance(small)
    return float(ot.emd2(p, q * (p.sum() / q.sum()), cost, numItermax=1_000_000))


@lru_cache(maxsize=8)
def _ground_distance(shape: tuple[int, int]) -> np.ndarray:
    """Euclidean distances between all pixel centres of a grid; one per map size."""
    import ot

    rows, cols = np.indices(shape)
    coords = np.stack((rows.ravel(), cols.ravel()), axis=1).astype(np.float64)
    return ot.dist(coords, coords, metric="euclidean")
