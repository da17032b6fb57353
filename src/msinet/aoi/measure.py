"""What a design's areas of interest get from viewers, read off the calibrated fixation density
(a log density whose exponentials sum to 1 over the image, `Pipeline.log_density`):

- `share`: the expected share of all fixations that land in the box (the density's mass in it);
- `seen_by`: the expected share of viewers who fixate the box at least once in a few seconds of
  free viewing, from `share` through `SEEN_BY` (fitted on human fixations, docs/aoi.md);
- `lift`: `share` over the box's share of the image area (1: what a uniform viewer gives).

For the whole image: how concentrated attention is, the share inside any box, and the salient
places that no box covers ("leaks")."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from msinet.aoi.regions import RegionSpec, checked
from msinet.crop import regions as salient_regions
from msinet.crop import summed_area


@dataclass(frozen=True)
class SeenBy:
    """P(a viewer fixates a region at least once) = 1 - exp(-a * share ** b). Independent
    fixations would give b = 1 and a = fixations per viewer; real fixations cluster (a viewer
    drawn to a region looks at it again), which b < 1 captures."""

    a: float
    b: float
    fitted_on: str

    def __call__(self, share: float | np.ndarray) -> float | np.ndarray:
        s = np.clip(share, 0.0, 1.0)
        return 1.0 - np.exp(-self.a * s**self.b)


# Fitted by `benchmarks/aoi_validation.py --fit` on the training splits' human fixations alone
# (observed share -> observed fraction of observers; no model, no validation image): b ~ 1 and
# a ~ 9, close to independent fixations at the 9.5 fixations per observer these datasets hold.
SEEN_BY = SeenBy(a=9.171, b=1.017, fitted_on="training splits of osie, mit1003, eyecrowd: "
                 "32460 random boxes (20 per image, seed 0)")  # fmt: skip

WORK_PIXELS = 1 << 22  # the density is measured on at most this many pixels (4.2 MP): shares
# are integrals, so a coarser grid moves them only along the box edges, and memory stays
# ~120 MB however large the image
LEAK_LEVEL = 0.5  # a leak is a connected area above this x the uncovered density's peak
MIN_LEAK = 0.01  # and holds at least this share of all attention


def box_mass(table: np.ndarray, box: tuple[int, int, int, int]) -> float:
    """Sum inside x, y, w, h from a summed-area table."""
    x, y, w, h = box
    return float(table[y + h, x + w] - table[y, x + w] - table[y + h, x] + table[y, x])


def concentration(p: np.ndarray) -> dict[str, float]:
    """Normalised entropy (1: attention spread evenly; lower: concentrated) and the share of
    attention in the most-attended 10% of the image."""
    nz = p[p > 0]
    entropy = float(-(nz * np.log(nz)).sum() / math.log(p.size)) if p.size > 1 else 0.0
    k = max(1, p.size // 10)
    top = float(np.partition(p.ravel(), p.size - k)[p.size - k :].sum())
    return {"entropy": round(entropy, 4), "top10_share": round(top, 4)}


def work_shape(original: tuple[int, int], limit: int = WORK_PIXELS) -> tuple[int, int]:
    """(H, W) to measure an image of `original` (H, W) on: itself, or scaled to `limit`."""
    h, w = original
    if h * w <= limit:
        return h, w
    k = math.sqrt(limit / (h * w))
    return max(1, int(h * k)), max(1, int(w * k))


def to_grid(box: tuple[int, int, int, int], size: tuple[int, int],
            grid: tuple[int, int]) -> tuple[int, int, int, int]:  # fmt: skip
    """A box in image pixels (x, y, w, h; `size` = W, H) on a grid of (H, W) cells, at least
    one cell wide and high."""
    (W, H), (gh, gw) = size, grid
    x, y, w, h = box
    left, top = min(gw - 1, round(x * gw / W)), min(gh - 1, round(y * gh / H))
    right, bottom = round((x + w) * gw / W), round((y + h) * gh / H)
    return left, top, max(1, right - left), max(1, bottom - top)


def measure(log_p: np.ndarray, regions: list[RegionSpec], seen_by: SeenBy = SEEN_BY,
            leaks: int = 3, size: tuple[int, int] | None = None) -> dict:  # fmt: skip
    """The report for `regions` of an image of `size` (W, H; default: the density's own) from
    its density `log_p` (H, W), which may be on a coarser grid (`work_shape`)."""
    regions = checked(regions)
    gh, gw = log_p.shape
    W, H = size or (gw, gh)
    p = np.exp(log_p, dtype=np.float64)
    p /= p.sum()  # exactly 1 in float64
    table = summed_area(p)
    covered = np.zeros((gh, gw), bool)
    out = []
    for r in regions:
        box = r.pixels((W, H))
        x, y, w, h = to_grid(box, (W, H), (gh, gw))
        share = min(1.0, max(0.0, box_mass(table, (x, y, w, h))))
        covered[y : y + h, x : x + w] = True
        out.append({"name": r.name, "box": list(box), "share": round(share, 4),
                    "seen_by": round(float(seen_by(share)), 4),
                    "lift": round(share / (box[2] * box[3] / (W * H)), 3)})  # fmt: skip
    del table
    uncovered = np.where(covered, 0.0, p)
    rest = float(uncovered.sum())
    sx, sy = W / gw, H / gh
    found = [
        {"box": [round(a * sx), round(b * sy), round((c - a) * sx), round((d - b) * sy)],
         "share": round(g.share * rest, 4)}
        for g in salient_regions(uncovered, leaks, LEAK_LEVEL)
        for a, b, c, d in [g.box]
    ]  # fmt: skip
    return {
        "size": [W, H],
        "regions": out,
        "covered_share": round(float(p[covered].sum()), 4),
        **concentration(p),
        "leaks": [leak for leak in found if leak["share"] >= MIN_LEAK],
    }


def density_on_grid(m: np.ndarray, original: tuple[int, int], calibration) -> np.ndarray:
    """A model-size map -> the calibrated log density of an image of `original` (H, W), on
    its `work_shape` grid."""
    from msinet.density import DensityError, log_density

    if calibration is None:
        raise DensityError("these weights carry no density calibration, needed for attention "
                           "shares: fit one with `msinet calibrate`")  # fmt: skip
    return log_density(m, work_shape(original), calibration)


def density_of(pipeline, image) -> tuple[np.ndarray, tuple[int, int]]:
    """`image`'s calibrated log density on its `work_shape` grid, and the image's (W, H)."""
    x, geometry = pipeline.prepare(pipeline.decode(image))
    m = pipeline.run([x])[0]
    H, W = geometry.original
    return density_on_grid(m, (H, W), pipeline.engine.meta.density), (W, H)
