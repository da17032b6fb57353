"""Saliency-aware cropping: the crop of a given aspect that holds the most predicted attention,
a focal point, and the most salient regions, from a map at the image's size.

Pure array functions (no model): the pipeline gives the map, these place the boxes. Boxes are
`(left, top, right, bottom)` in the image's pixels, right and bottom exclusive.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

Box = tuple[int, int, int, int]

MAX_ASPECT = 20  # aspects from 1:20 to 20:1 (a banner, a skyscraper ad); beyond, a line
# Sums within this relative distance of the best count as ties (float rounding of the table).
TIE = 1e-9
# Maps over this many pixels are searched on their area average and the boxes scaled back:
# at full size the search held ~28 bytes a pixel (1.9 GB for a 49 MP image) and its time grew
# with the pixels. Below it, the search is exact. A model's map is upsampled from ~0.3 MP, so
# the average of a larger one loses no detail the model gave.
SEARCH_PIXELS = 1 << 22


def parse_aspect(spec: str) -> tuple[int, int]:
    """'16:9' -> (16, 9), reduced ('32:18' -> (16, 9)); a clear error for anything else."""
    w, sep, h = spec.partition(":")
    if not sep or not (w.strip().isdigit() and h.strip().isdigit()) or not int(w) or not int(h):
        raise ValueError(f"aspect must be W:H, two positive whole numbers (16:9), not {spec!r}")
    w, h = int(w), int(h)
    if not 1 / MAX_ASPECT <= w / h <= MAX_ASPECT:
        raise ValueError(f"aspect {spec!r} is outside 1:{MAX_ASPECT}..{MAX_ASPECT}:1")
    g = math.gcd(w, h)
    return w // g, h // g


def largest_size(width: int, height: int, aspect: tuple[int, int]) -> tuple[int, int]:
    """The largest (w, h) of exactly `aspect` that fits the image: whole multiples of the
    reduced aspect; for images smaller than the aspect's own numbers, the closest fit."""
    a, b = aspect
    k = min(width // a, height // b)
    if k >= 1:
        return k * a, k * b
    if width * b >= height * a:  # tiny image: as near the aspect as whole pixels allow
        return max(1, min(width, round(height * a / b))), height
    return width, max(1, min(height, round(width * b / a)))


def sizes(width: int, height: int, aspect: tuple[int, int], min_scale: float = 1.0,
          ) -> list[tuple[int, int]]:  # fmt: skip
    """Crop sizes of exactly `aspect`, from the largest down to `min_scale` of it."""
    if not 0 < min_scale <= 1:
        raise ValueError(f"min_scale must be in (0, 1], got {min_scale}")
    a, b = aspect
    k = min(width // a, height // b)  # largest_size's multiple
    if k < 1:  # smaller than the aspect's own numbers: the one closest fit
        return [largest_size(width, height, aspect)]
    lowest = max(1, math.ceil(min_scale * k - 1e-9))
    return [(j * a, j * b) for j in range(k, lowest - 1, -1)]


def summed_area(saliency: np.ndarray) -> np.ndarray:
    """(H + 1, W + 1) table: t[y, x] is the sum of saliency[:y, :x]."""
    h, w = saliency.shape
    t = np.zeros((h + 1, w + 1), np.float64)
    # a block of rows at a time, carrying the column sums down: whole-array cumsums took two
    # more full-size float64 temporaries (24 bytes per pixel in all; this is the table's 8)
    rows = max(1, (1 << 18) // max(1, w))
    for top in range(0, h, rows):
        block = t[1 + top : 1 + top + rows, 1:]
        np.cumsum(saliency[top : top + rows], axis=1, dtype=np.float64, out=block)
        np.cumsum(block, axis=0, out=block)
        block += t[top, 1:]
    return t


def window_sums(table: np.ndarray, w: int, h: int) -> np.ndarray:
    """Sum of every w x h window: (H - h + 1, W - w + 1), indexed by the top-left corner
    (in place: one full-size array, not three)."""
    sums = table[h:, w:] - table[:-h, w:]
    sums -= table[h:, :-w]
    sums += table[:-h, :-w]
    return sums


def best_box(table: np.ndarray, w: int, h: int) -> tuple[Box, float]:
    """The w x h box with the largest sum, and that sum; ties go to the most central box."""
    sums = window_sums(table, w, h)
    top = float(sums.max())
    ys, xs = np.nonzero(sums >= top - TIE * max(abs(top), 1.0))
    H, W = table.shape[0] - 1, table.shape[1] - 1
    off = (2 * xs + w - W) ** 2 + (2 * ys + h - H) ** 2  # (2 x distance of the centres)^2
    i = int(np.argmin(off))
    x, y = int(xs[i]), int(ys[i])
    return (x, y, x + w, y + h), top


class CropTimeout(TimeoutError):
    """The search passed its deadline (the request's): stopped between window passes."""


def crop_box(saliency: np.ndarray, aspect: tuple[int, int], min_scale: float = 1.0,
             keep: float = 0.95, table: np.ndarray | None = None,
             deadline: float | None = None) -> Box:  # fmt: skip
    """The crop of `aspect` that holds the most attention, placed exactly over every position.
    With `min_scale` < 1 it is the smallest crop, down to that fraction of the largest, that
    still holds `keep` of what the best largest crop holds (a larger crop always holds more,
    so "most attention" alone would never choose a smaller one).

    Exact and bounded: saliency is non-negative, so the best sum of a size never falls as the
    size grows, and whether a size holds `keep` is monotone in it. A binary search over the
    sizes finds the smallest that does in about log2(sizes) passes over the image (11 for
    1600x1600 at any `min_scale`), where a scan would take one pass per size. `deadline`
    (time.perf_counter) stops it between passes with CropTimeout."""
    H, W = saliency.shape
    table = summed_area(saliency) if table is None else table
    candidates = sizes(W, H, aspect, min_scale)  # largest first

    def best(i: int) -> tuple[Box, float]:
        if deadline is not None and time.perf_counter() > deadline:
            raise CropTimeout("the crop search passed the request's deadline")
        return best_box(table, *candidates[i])

    box, most = best(0)
    lo, hi = 0, len(candidates) - 1  # candidates[lo] holds enough; find the last index that does
    while lo < hi:
        mid = (lo + hi + 1) // 2
        smaller, held = best(mid)
        if held >= keep * most:
            lo, box = mid, smaller
        else:
            hi = mid - 1
    return box


def focus(saliency: np.ndarray, level: float = 0.5) -> tuple[int, int]:
    """(x, y): the attention-weighted centre of the most salient region (the connected area
    above `level` x the peak that holds the peak), for CDN focal points and CSS
    object-position."""
    from scipy import ndimage

    peak = np.unravel_index(int(np.argmax(saliency)), saliency.shape)
    labels, _ = ndimage.label(saliency >= level * saliency[peak])
    region = labels == labels[peak]
    weights = np.where(region, saliency, 0.0)
    y, x = ndimage.center_of_mass(weights)
    return int(np.floor(x + 0.5)), int(np.floor(y + 0.5))  # halves up, not to even


@dataclass(frozen=True)
class Region:
    box: Box
    share: float  # of the predicted attention over the whole image, 0..1


def regions(saliency: np.ndarray, count: int = 5, level: float = 0.5) -> list[Region]:
    """The `count` most salient regions: connected areas above `level` x the peak, as boxes
    with the share of all predicted attention that falls inside each, largest share first."""
    from scipy import ndimage

    total = float(saliency.sum())
    if total <= 0:
        return []
    labels, n = ndimage.label(saliency >= level * float(saliency.max()))
    shares = ndimage.sum_labels(saliency, labels, index=np.arange(1, n + 1)) / total
    slices = ndimage.find_objects(labels)
    found = [Region((s[1].start, s[0].start, s[1].stop, s[0].stop), float(share))
             for s, share in zip(slices, shares, strict=True)]  # fmt: skip
    return sorted(found, key=lambda r: -r.share)[:count]


def crop_image(image: np.ndarray, box: Box) -> np.ndarray:
    """The box's pixels, contiguous (ready to encode)."""
    left, top, right, bottom = box
    return np.ascontiguousarray(image[top:bottom, left:right])


def search_map(saliency: np.ndarray, limit: int = SEARCH_PIXELS) -> np.ndarray:
    """The map itself up to `limit` pixels; above, its area average (box filter) to fit."""
    h, w = saliency.shape
    if h * w <= limit:
        return saliency
    from PIL import Image

    s = math.sqrt(limit / (h * w))
    size = (max(1, min(w, math.floor(w * s))), max(1, min(h, math.floor(h * s))))
    picture = Image.fromarray(np.ascontiguousarray(saliency, np.float32), mode="F")
    return np.asarray(picture.resize(size, Image.Resampling.BOX))


class Scale:
    """Coordinates of the searched map -> the image's own (the identity when they match)."""

    def __init__(self, image: tuple[int, int], searched: tuple[int, int]) -> None:
        (self.H, self.W), (h, w) = image, searched
        self.fy, self.fx = self.H / h, self.W / w

    def point(self, x: int, y: int, inside: Box) -> tuple[int, int]:
        """A pixel's centre, scaled, then kept inside the image-space box `inside`."""
        left, top, right, bottom = inside
        X, Y = math.floor((x + 0.5) * self.fx), math.floor((y + 0.5) * self.fy)
        return min(max(X, left), right - 1), min(max(Y, top), bottom - 1)

    def bounds(self, box: Box) -> Box:
        """A box, scaled outwards (regions)."""
        left, top, right, bottom = box
        return (math.floor(left * self.fx), math.floor(top * self.fy),
                min(self.W, math.ceil(right * self.fx)),
                min(self.H, math.ceil(bottom * self.fy)))  # fmt: skip

    def inverse(self, box: Box) -> Box:
        """An image-space box in the searched map's pixels (at least one pixel)."""
        left, top, right, bottom = box
        x, y = math.floor(left / self.fx), math.floor(top / self.fy)
        return x, y, max(x + 1, math.ceil(right / self.fx)), max(y + 1, math.ceil(bottom / self.fy))

    def crop(self, box: Box, aspect: tuple[int, int], min_scale: float) -> Box:
        """A crop found on the searched map -> the image's crop of exactly `aspect` whose size
        is nearest the scaled one, centred where it was and kept inside the image."""
        left, top, right, bottom = box
        width = (right - left) * self.fx
        w, h = min(sizes(self.W, self.H, aspect, min_scale), key=lambda s: abs(s[0] - width))
        cx, cy = (left + right) / 2 * self.fx, (top + bottom) / 2 * self.fy
        x = min(max(round(cx - w / 2), 0), self.W - w)
        y = min(max(round(cy - h / 2), 0), self.H - h)
        return x, y, x + w, y + h


def plan(saliency: np.ndarray, aspects: dict[str, tuple[int, int]], min_scale: float = 1.0,
         keep: float = 0.95, n_regions: int = 5,
         deadline: float | None = None) -> dict:  # fmt: skip
    """Everything about one image's map, as `msinet crop --json` and `/v1/crop` report it:
    {"size": [W, H], "<aspect as given>": [left, top, right, bottom], ..., "focus": [x, y],
    "crop_focus": {"<aspect>": [x, y], ...}, "regions": [{"box": [...], "share": 0.12}, ...]}.
    `focus` is the whole image's focal point; `crop_focus` each crop's own, always inside it.
    Exact up to SEARCH_PIXELS; a larger map is searched on its area average (search_map), so
    a box may sit up to one averaged pixel (sqrt(pixels / SEARCH_PIXELS)) from the exact one."""
    H, W = saliency.shape
    searched = search_map(saliency)
    scale = Scale((H, W), searched.shape)
    whole = (0, 0, W, H)
    table = summed_area(searched)
    out: dict = {"size": [W, H]}
    crop_focus = {}
    for spec, aspect in aspects.items():
        found = crop_box(searched, aspect, min_scale, keep, table, deadline)
        box = found if searched is saliency else scale.crop(found, aspect, min_scale)
        out[spec] = list(box)
        left, top, right, bottom = scale.inverse(box)
        x, y = focus(searched[top:bottom, left:right])
        crop_focus[spec] = list(scale.point(left + x, top + y, box))
    del table
    out["focus"] = list(scale.point(*focus(searched), whole))  # may lie outside a crop
    out["crop_focus"] = crop_focus  # each crop's own, inside it
    out["regions"] = [{"box": list(scale.bounds(r.box)), "share": round(r.share, 4)}
                      for r in regions(searched, n_regions)]  # fmt: skip
    return out
