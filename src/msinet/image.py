"""Decoding real-world image files into RGB uint8 arrays, with clear errors for bad input."""

from __future__ import annotations

import glob
import io
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# 50 megapixels: a 10k x 5k panorama passes, a decompression bomb does not.
DEFAULT_MAX_PIXELS = 50_000_000
FORMATS = ("JPEG", "PNG", "BMP", "GIF", "TIFF", "WEBP", "MPO")


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def find_images(specs: list[str]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Files, folders (searched recursively for images) and globs -> image paths, and problems."""
    files: list[Path] = []
    problems: list[tuple[str, str]] = []
    for spec in specs:
        p = Path(spec)
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                problems.append((spec, "folder holds no images"))
            files.extend(found)
        elif p.is_file():
            files.append(p)
        elif glob.has_magic(spec):
            found = sorted(Path(f) for f in glob.glob(spec, recursive=True) if Path(f).is_file())
            if not found:
                problems.append((spec, "pattern matches no files"))
            files.extend(found)
        else:
            problems.append((spec, "no such file or folder"))
    unique = list(dict.fromkeys(files))
    return unique, problems


class ImageError(ValueError):
    """The input is not an image msinet can read; the message says why."""


class ImageTooLarge(ImageError):
    """The image declares more pixels than the configured cap."""


def load_image(
    source: str | os.PathLike | bytes, max_pixels: int = DEFAULT_MAX_PIXELS
) -> np.ndarray:
    """Decode a file path or encoded bytes into an (H, W, 3) uint8 RGB array, upright.

    The pixel cap is checked from the header before any pixel is decoded. Errors name a file
    path once ("x.jpg: not an image ..."); for bytes they say just what is wrong.
    """
    if isinstance(source, bytes | bytearray):
        prefix = ""
        if not source:
            raise ImageError("empty input: zero bytes")
        fp: io.BytesIO | Path = io.BytesIO(source)
    else:
        fp, prefix = Path(source), f"{source}: "
        if not fp.is_file():
            raise ImageError(f"{prefix}no such file")
        if fp.stat().st_size == 0:
            raise ImageError(f"{prefix}empty file (zero bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(fp)
            if img.format not in FORMATS:
                raise ImageError(f"{prefix}unsupported image format {img.format}")
            w, h = img.size
            if w < 1 or h < 1:
                raise ImageError(f"{prefix}image has no pixels ({w}x{h})")
            if w * h > max_pixels:
                raise ImageTooLarge(
                    f"{prefix}{w}x{h} = {w * h} pixels exceeds the limit of {max_pixels}"
                )
            img.load()
            ImageOps.exif_transpose(img, in_place=True)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageTooLarge(f"{prefix}{e}") from e
    except UnidentifiedImageError as e:
        raise ImageError(f"{prefix}not an image (unrecognised format)") from e
    except ImageError:
        raise
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise ImageError(f"{prefix}corrupt or truncated image ({e})") from e
    return to_rgb(img)


def declared_pixels(data: bytes) -> int:
    """Pixels an encoded image declares in its header, read without decoding; 0 where the
    header is unreadable (decoding then says why)."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            w, h = img.size
    except Exception:  # any header Pillow cannot read: the decoder reports it in words
        return 0
    return w * h


def to_rgb(img: Image.Image) -> np.ndarray:
    """Any Pillow mode -> RGB uint8; transparency is composited over white, as a page shows it."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(img, dtype=np.float64)
        a = np.clip(np.round(a / 257.0), 0, 255).astype(np.uint8)  # 16-bit -> 8-bit
        return np.repeat(a[:, :, None], 3, axis=2)
    if img.mode == "F":
        a = np.asarray(img, dtype=np.float64)
        a = a * 255.0 if a.max(initial=0.0) <= 1.0 else a
        return np.repeat(np.clip(np.round(a), 0, 255).astype(np.uint8)[:, :, None], 3, axis=2)
    if (img.mode == "P" and "transparency" in img.info) or img.mode in ("LA", "PA", "La"):
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "RGBa"):
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img.convert("RGBA"))
    if img.mode != "RGB":
        img = img.convert("RGB")
    # A read-only view of Pillow's bytes: np.array would copy them once more, and for a 49 MP
    # image that copy is 147 MB at the moment memory peaks (issue 16).
    return np.asarray(img, dtype=np.uint8)
