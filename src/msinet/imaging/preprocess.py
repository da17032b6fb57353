"""Fitting images into the model's input size exactly as the official data.py does.

Aspect-preserving resize (area when shrinking, bicubic when enlarging, clipped to 0..255), then
centred padding with 126 (top/left get the floor of the split). Maps are padded with 0.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from msinet.imaging.decode import ImageError
from msinet.imaging.resize import fit_size, resize_tf

# (H, W) each dataset's models were trained at (official config.py).
SIZE_PRESETS: dict[str, tuple[int, int]] = {
    "salicon": (240, 320),
    "osie": (240, 320),
    "mit1003": (360, 360),
    "cat2000": (216, 384),
}
IMAGE_PAD_VALUE = 126.0
# An image whose shorter side would be under one cell of the encoder's 1/8 grid once fitted to
# the model's input (e.g. 1x40000) has no map worth computing: it is refused.
MIN_FITTED_SIDE = 8
MAP_PAD_VALUE = 0.0


def parse_size(spec: str | tuple[int, int]) -> tuple[int, int]:
    """A preset name or "HxW" (both multiples of 8) -> (H, W)."""
    if isinstance(spec, tuple):
        h, w = spec
    elif spec.lower() in SIZE_PRESETS:
        return SIZE_PRESETS[spec.lower()]
    else:
        m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", spec)
        if not m:
            raise ValueError(
                f"size must be one of {sorted(SIZE_PRESETS)} or HxW (e.g. 240x320), got {spec!r}"
            )
        h, w = int(m[1]), int(m[2])
    if h < 8 or w < 8 or h % 8 or w % 8:
        raise ValueError(f"model input size must be multiples of 8 and >= 8, got {h}x{w}")
    return h, w


@dataclass(frozen=True)
class Geometry:
    """Where an image went inside the model input, to map its saliency back."""

    original: tuple[int, int]  # (H, W) of the image
    resized: tuple[int, int]  # (h, w) after the aspect-preserving resize
    target: tuple[int, int]  # (H, W) of the model input
    pad: tuple[int, int, int, int]  # top, bottom, left, right


def pad_to(array: np.ndarray, target: tuple[int, int], value: float):
    """Centre `array` in `target` (top/left floor, bottom/right ceil); returns it and the pads."""
    dh, dw = target[0] - array.shape[0], target[1] - array.shape[1]
    pad = (dh // 2, dh - dh // 2, dw // 2, dw - dw // 2)
    widths = [(pad[0], pad[1]), (pad[2], pad[3])] + [(0, 0)] * (array.ndim - 2)
    return np.pad(array, widths, constant_values=value), pad


def preprocess(image: np.ndarray, target: tuple[int, int]) -> tuple[np.ndarray, Geometry]:
    """(H, W, 3) uint8 RGB -> (h, w, 3) float32 in 0..255 padded to `target`, and its geometry."""
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB image, got shape {image.shape}")
    original = (image.shape[0], image.shape[1])
    resized = fit_size(original, target)
    if min(resized) < MIN_FITTED_SIDE:
        raise ImageError(
            f"a {original[1]}x{original[0]} image is too thin for the model: at its "
            f"{target[1]}x{target[0]} input it would be {resized[1]}x{resized[0]} pixels "
            f"(at least {MIN_FITTED_SIDE} needed on each side)"
        )
    x = np.clip(resize_tf(image, resized), 0.0, 255.0)
    x, pad = pad_to(x, target, IMAGE_PAD_VALUE)
    return x.astype(np.float32, copy=False), Geometry(original, resized, target, pad)


def preprocess_map(fixation_map: np.ndarray, target: tuple[int, int]) -> np.ndarray:
    """A ground-truth map goes through the same geometry as its image, padded with 0."""
    resized = fit_size(fixation_map.shape[:2], target)
    x = np.clip(resize_tf(fixation_map, resized), 0.0, None)
    return pad_to(x, target, MAP_PAD_VALUE)[0].astype(np.float32, copy=False)


def batch(images: list[np.ndarray]) -> np.ndarray:
    """Stack preprocessed (H, W, 3) images into the engines' (B, 3, H, W) float32 batch."""
    return np.ascontiguousarray(np.stack(images).transpose(0, 3, 1, 2), dtype=np.float32)
