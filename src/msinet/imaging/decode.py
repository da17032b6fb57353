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
        prefix, size = "", len(source)
        if not size:
            raise ImageError("empty input: zero bytes")
        fp: io.BytesIO | Path = io.BytesIO(source)
    else:
        fp, prefix = Path(source), f"{source}: "
        if fp.is_dir():
            raise ImageError(f"{prefix}is a folder, not an image file")
        if not fp.is_file():
            raise ImageError(f"{prefix}no such file")
        if not os.access(fp, os.R_OK):
            raise ImageError(f"{prefix}permission denied (not readable)")
        size = fp.stat().st_size
        if size == 0:
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
            if img.format in ("JPEG", "MPO"):
                check_jpeg_size(img, w, h, size, prefix)
            img.load()
            ImageOps.exif_transpose(img, in_place=True)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        # Pillow refuses before the size is known; the limit that counts is msinet's
        raise ImageTooLarge(f"{prefix}image exceeds the limit of {max_pixels} pixels") from e
    except UnidentifiedImageError as e:
        raise ImageError(f"{prefix}not an image (unrecognised format)") from e
    except ImageError:
        raise
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise ImageError(f"{prefix}corrupt or truncated image ({e})") from e
    return to_rgb(img)


# Huffman-coded JPEG frames (SOF0-3, 5-7); arithmetic coding (SOF9-15) has no bit floor.
HUFFMAN_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7}


def jpeg_frame_marker(fp) -> int | None:
    """The SOF marker byte of a JPEG stream (segments walked from the start), or None."""
    fp.seek(2)
    while True:
        head = fp.read(4)
        if len(head) < 4 or head[0] != 0xFF:
            return None
        marker, length = head[1], int.from_bytes(head[2:], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return marker
        if marker == 0xDA or length < 2:  # scan data reached without a frame header
            return None
        fp.seek(length - 2, io.SEEK_CUR)


def check_jpeg_size(img: Image.Image, w: int, h: int, size: int, prefix: str) -> None:
    """Refuse a JPEG too small for the size it declares. Huffman coding spends at least one
    bit on each 8x8 block's DC coefficient (in any scan order), so a real W x H JPEG has at
    least ceil(W/8) * ceil(H/8) / 8 bytes; libjpeg fills what a short or lying stream lacks
    with grey and only warns (a 63 KB file declaring 7000x7000 was answered with a map)."""
    floor = -(-w // 8) * -(-h // 8) // 8
    if size >= floor:
        return
    position = img.fp.tell()
    try:
        marker = jpeg_frame_marker(img.fp)
    finally:
        img.fp.seek(position)
    if marker in HUFFMAN_SOF:
        raise ImageError(f"{prefix}corrupt or truncated image (JPEG declares {w}x{h}, which "
                         f"needs at least {floor} bytes, but has {size})")  # fmt: skip


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
    return pixels(img)


# Rows copied out of Pillow at a time, for large images.
STRIP_ROWS = 256


def pixels(img: Image.Image) -> np.ndarray:
    """A writable (H, W, C) uint8 copy of an RGB image. np.array(img) goes through
    `tobytes`, which joins its chunks into one more copy: for a 49 MP image 2 x 147 MB on top
    of Pillow's own 196 MB, at the moment memory peaks (issue 16). Large images are copied a
    strip of rows at a time instead."""
    w, h = img.size
    if w * h <= STRIP_ROWS * 4096:
        return np.array(img, dtype=np.uint8)
    out = np.empty((h, w, len(img.getbands())), np.uint8)
    for top in range(0, h, STRIP_ROWS):
        strip = img.crop((0, top, w, min(h, top + STRIP_ROWS)))
        out[top : top + strip.height] = np.asarray(strip).reshape(strip.height, w, -1)
    return out
