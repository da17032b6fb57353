"""The TF1 image resize kernels the official MSI-Net used, as separable weight matrices.

`tf.image.resize_area` and `tf.image.resize_bicubic` with align_corners=True (the official
data.py) differ from Pillow's and OpenCV's resizers by several grey levels at edges. Both are
separable, so each is a pair of (out, in) matrices applied with two matrix products; the matrices
follow tensorflow/core/kernels/image/resize_{area,bicubic}_op.cc.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

import numpy as np
from scipy import sparse

Method = Literal["area", "bicubic"]

_TABLE_SIZE = 1024  # TF's bicubic kernel is tabulated at 1/1024 steps
_CUBIC_A = -0.75  # the legacy (non half-pixel) TF bicubic coefficient


def _scale(in_size: int, out_size: int) -> float:
    """TF's CalculateResizeScale with align_corners=True."""
    if out_size > 1:
        return (in_size - 1) / (out_size - 1)
    return in_size / out_size


def area_matrix(in_size: int, out_size: int) -> np.ndarray:
    """Output pixel y averages the input interval [y*s, (y+1)*s), clamped to the image."""
    s = _scale(in_size, out_size)
    m = np.zeros((out_size, in_size), np.float64)
    for y in range(out_size):
        y0, y1 = y * s, (y + 1) * s
        for i in range(int(np.floor(y0)), int(np.ceil(y1))):
            if i < y0:
                w = s if i + 1 > y1 else i + 1 - y0
            else:
                w = y1 - i if i + 1 > y1 else 1.0
            m[y, min(max(i, 0), in_size - 1)] += w
    return (m / s).astype(np.float32)


@lru_cache(maxsize=1)
def _cubic_table() -> np.ndarray:
    x = np.arange(_TABLE_SIZE + 1) / _TABLE_SIZE
    a = _CUBIC_A
    inner = ((a + 2) * x - (a + 3)) * x * x + 1  # |t| in [0, 1]
    x1 = x + 1
    outer = ((a * x1 - 5 * a) * x1 + 8 * a) * x1 - 4 * a  # |t| in [1, 2]
    return np.stack([inner, outer], axis=1).astype(np.float32)  # (1025, 2)


def bicubic_matrix(in_size: int, out_size: int, start: int = 0,
                   stop: int | None = None) -> sparse.csr_array:  # fmt: skip
    """Keys cubic (a=-0.75) at y*s, indices clamped to the border (TF's legacy kernel); the rows
    of output pixels start..stop only (all by default)."""
    stop = out_size if stop is None else stop
    s = _scale(in_size, out_size)
    table = _cubic_table()
    loc = np.arange(start, stop, dtype=np.float64) * s
    base = np.floor(loc).astype(np.int64)
    offset = np.rint((loc - base) * _TABLE_SIZE).astype(np.int64)
    weights = np.stack([table[offset, 1], table[offset, 0], table[_TABLE_SIZE - offset, 0],
                        table[_TABLE_SIZE - offset, 1]], axis=1)  # fmt: skip
    index = np.clip(base[:, None] - 1 + np.arange(4), 0, in_size - 1)
    rows = np.repeat(np.arange(stop - start), 4)
    # sparse from the start: a 40000-pixel side would be a 51 MB dense matrix; duplicates (the
    # clamped border taps) are summed in k order, as TF adds them
    m = sparse.coo_array((weights.ravel(), (rows, index.ravel())), (stop - start, in_size))
    return m.tocsr()


def fit_size(
    original: tuple[int, int], target: tuple[int, int], cover: bool = False
) -> tuple[int, int]:
    """Scale (H, W) by the smaller ratio (inside `target`) or the larger one (`cover`).

    Sides are rounded half to even like tf.round, and never below one pixel.
    """
    ratios = (target[0] / original[0], target[1] / original[1])
    r = max(ratios) if cover else min(ratios)
    return max(1, int(np.rint(original[0] * r))), max(1, int(np.rint(original[1] * r)))


# Inputs larger than this (elements) are converted to float32 in blocks of rows: a 49 MP RGB
# image would otherwise take a 588 MB float copy just to be shrunk to the model's input.
BLOCK_ELEMENTS = 1 << 24


# Each output pixel reads a few inputs (4 for bicubic, ~s+1 for area), so the products are sparse:
# a few MACs per pixel where dense ones cost `in_size`, and BLAS's threads stay out of it. Only
# the sparse forms are cached; the dense matrices above are built once per size, for them.
@lru_cache(maxsize=128)
def _rows(method: Method, in_size: int, out_size: int, start: int = 0,
          stop: int | None = None) -> sparse.csr_array:  # fmt: skip
    """(stop - start, in): output rows start..stop of resizing axis 0 of an (H, W * C) array."""
    if method == "bicubic":
        return bicubic_matrix(in_size, out_size, start, stop)
    return sparse.csr_array(area_matrix(in_size, out_size)[start:stop])  # shrinking: small


@lru_cache(maxsize=128)
def _cols(method: Method, in_size: int, out_size: int, channels: int, start: int = 0,
          stop: int | None = None) -> sparse.csr_array:  # fmt: skip
    """(in * C, (stop - start) * C): resizes axis 1 of an (h, W * C) array from the right,
    channels kept interleaved, so that no transposed copy is ever made."""
    eye = sparse.eye_array(channels, dtype=np.float32)
    return sparse.csr_array(sparse.kron(_rows(method, in_size, out_size, start, stop).T, eye))


def resize(image: np.ndarray, size: tuple[int, int], method: Method,
           window: tuple[int, int, int, int] | None = None) -> np.ndarray:  # fmt: skip
    """Resize an (H, W) or (H, W, C) array to `size` = (h, w); returns float32, unclipped.

    `window` = (top, bottom, left, right): only that part of the resized array is computed, so
    a crop of a huge resize costs what the crop costs."""
    h, w = size
    top, bottom, left, right = window or (0, h, 0, w)
    H, W = image.shape[:2]
    channels = image.shape[2] if image.ndim == 3 else 1
    rows = _rows(method, H, h, top, bottom)
    cols = _cols(method, W, w, channels, left, right)
    x = image.reshape(H, W * channels)
    if x.dtype == np.float32 or x.size <= BLOCK_ELEMENTS:
        first = rows @ x.astype(np.float32, copy=False)
    else:  # a huge uint8 image: converted a block of rows at a time, never whole
        step = max(1, BLOCK_ELEMENTS // x.shape[1])
        by_column = sparse.csc_array(rows)
        first = sum(by_column[:, i : i + step] @ x[i : i + step].astype(np.float32)
                    for i in range(0, H, step))  # fmt: skip
    # (bottom - top, (right - left) * C), filled a block of rows at a time: a dense @ sparse
    # product comes back in column order, and one for a 49 MP map would be copied whole
    out = np.empty((first.shape[0], cols.shape[1]), np.float32)
    step = max(1, BLOCK_ELEMENTS // max(1, cols.shape[1]))
    for i in range(0, first.shape[0], step):
        out[i : i + step] = first[i : i + step] @ cols
    return out.reshape(bottom - top, right - left, *image.shape[2:])


def resize_tf(image: np.ndarray, size: tuple[int, int],
              window: tuple[int, int, int, int] | None = None) -> np.ndarray:  # fmt: skip
    """The official choice: area when either side shrinks, bicubic otherwise."""
    shrinking = image.shape[0] > size[0] or image.shape[1] > size[1]
    return resize(image, size, "area" if shrinking else "bicubic", window)
