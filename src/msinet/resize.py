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


def bicubic_matrix(in_size: int, out_size: int) -> np.ndarray:
    """Keys cubic (a=-0.75) at y*s, indices clamped to the border (TF's legacy kernel)."""
    s = _scale(in_size, out_size)
    table = _cubic_table()
    m = np.zeros((out_size, in_size), np.float32)
    for y in range(out_size):
        loc = y * s
        base = int(np.floor(loc))
        offset = int(np.rint((loc - base) * _TABLE_SIZE))
        weights = (
            table[offset, 1],
            table[offset, 0],
            table[_TABLE_SIZE - offset, 0],
            table[_TABLE_SIZE - offset, 1],
        )
        for k, w in enumerate(weights):
            m[y, min(max(base - 1 + k, 0), in_size - 1)] += w
    return m


def fit_size(
    original: tuple[int, int], target: tuple[int, int], cover: bool = False
) -> tuple[int, int]:
    """Scale (H, W) by the smaller ratio (inside `target`) or the larger one (`cover`).

    Sides are rounded half to even like tf.round, and never below one pixel.
    """
    ratios = (target[0] / original[0], target[1] / original[1])
    r = max(ratios) if cover else min(ratios)
    return max(1, int(np.rint(original[0] * r))), max(1, int(np.rint(original[1] * r)))


# Each output pixel reads a few inputs (4 for bicubic, ~s+1 for area), so the products are sparse:
# a few MACs per pixel where dense ones cost `in_size`, and BLAS's threads stay out of it. Only
# the sparse forms are cached; the dense matrices above are built once per size, for them.
@lru_cache(maxsize=128)
def _rows(method: Method, in_size: int, out_size: int) -> sparse.csr_array:
    """(out, in): resizes axis 0 of an (H, W * C) array from the left."""
    matrix = area_matrix if method == "area" else bicubic_matrix
    return sparse.csr_array(matrix(in_size, out_size))


@lru_cache(maxsize=128)
def _cols(method: Method, in_size: int, out_size: int, channels: int) -> sparse.csr_array:
    """(in * C, out * C): resizes axis 1 of an (h, W * C) array from the right, channels kept
    interleaved, so that no transposed copy is ever made."""
    eye = sparse.eye_array(channels, dtype=np.float32)
    return sparse.csr_array(sparse.kron(_rows(method, in_size, out_size).T, eye))


def resize(image: np.ndarray, size: tuple[int, int], method: Method) -> np.ndarray:
    """Resize an (H, W) or (H, W, C) array to `size` = (h, w); returns float32, unclipped."""
    h, w = size
    H, W = image.shape[:2]
    channels = image.shape[2] if image.ndim == 3 else 1
    x = image.astype(np.float32, copy=False).reshape(H, W * channels)
    out = (_rows(method, H, h) @ x) @ _cols(method, W, w, channels)  # (h, w * C)
    return np.ascontiguousarray(out.reshape(h, w, *image.shape[2:]), dtype=np.float32)


def resize_tf(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The official choice: area when either side shrinks, bicubic otherwise."""
    shrinking = image.shape[0] > size[0] or image.shape[1] > size[1]
    return resize(image, size, "area" if shrinking else "bicubic")
