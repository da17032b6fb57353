"""One output name per input, for every command and path that writes files (maps, overlays,
Ray's actors): unique, the same from run to run, and never two inputs on one file; and the
map files themselves, written the same way by `msinet predict` and Ray's actors.

`predict DIR -o out` with x/1.jpg, y/x/1.jpg, same.jpg and same.png used to write two files for
four inputs and report four; `--ray` wrote sub1/x.jpg and sub2/x.jpg to one x.png."""

from __future__ import annotations

import io
import os
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path, PurePosixPath

import numpy as np

from msinet.imaging.files import write_bytes_whole


def _path(key: str) -> PurePosixPath:
    """A local path or URI as a POSIX path (the scheme dropped)."""
    return PurePosixPath(key.split("://", 1)[-1].replace(os.sep, "/"))


def _collisions(names: dict[str, str]) -> list[list[str]]:
    """Groups of keys whose names collide, compared case-insensitively (as on macOS and
    Windows file systems)."""
    groups: dict[str, list[str]] = defaultdict(list)
    for key, name in names.items():
        groups[name.casefold()].append(key)
    return [keys for keys in groups.values() if len(keys) > 1]


def output_names(paths: Iterable[str | os.PathLike]) -> dict[str, str]:
    """The output stem of each input (keyed by `str(path)`): the file's stem; where stems
    collide, the path below the colliding inputs' common folder with '/' as '_' (x/1.jpg ->
    x_1, y/x/1.jpg -> y_x_1); where that still collides, the suffix too (same.jpg -> same_jpg,
    same.png -> same_png); a number (-2, -3, ...) as the last resort."""
    keys = sorted(dict.fromkeys(str(p) for p in paths))
    names = {k: _path(k).stem for k in keys}
    for group in _collisions(names):
        parents = [str(_path(k).parent) for k in group]
        common = PurePosixPath(os.path.commonpath(parents)) if len(set(parents)) > 1 else None
        for k in group:
            p = _path(k)
            if common is not None:
                below = p.relative_to(common).with_suffix("")
                names[k] = "_".join(part for part in below.parts if part not in ("/", ".."))
    for group in _collisions(names):
        for k in group:
            suffix = _path(k).suffix.lstrip(".")
            if suffix:
                names[k] = f"{names[k]}_{suffix}"
    taken: set[str] = set()
    for k in keys:  # the last resort, and a guarantee
        name, n = names[k], 1
        while name.casefold() in taken:
            n += 1
            name = f"{names[k]}-{n}"
        names[k] = name
        taken.add(name.casefold())
    return names


def _local(key: str) -> str | None:
    """The real path of a local input (None for a URI: Ray's remote inputs)."""
    return None if "://" in key else os.path.realpath(key)


def clear_of_inputs(names: dict[str, str], outdir: str | os.PathLike,
                    files_of: Callable[[str, Path], list[Path]]) -> dict[str, str]:  # fmt: skip
    """`names` (output_names) with every stem whose files (`files_of(key, outdir / stem)`)
    would land on an input renamed `<stem>_saliency` (then `-2`, ...): `predict d -o d` must
    never write a map over d/photo.png."""
    inputs = {p for p in map(_local, names) if p}
    taken = {n.casefold() for n in names.values()}

    def clashes(key: str, stem: str) -> bool:
        return any(os.path.realpath(f) in inputs for f in files_of(key, Path(outdir) / stem))

    out = {}
    for key, stem in names.items():
        if clashes(key, stem):
            base = new = f"{stem}_saliency"
            n = 1
            while new.casefold() in taken or clashes(key, new):
                n += 1
                new = f"{base}-{n}"
            taken.add(new.casefold())
            stem = new
        out[key] = stem
    return out


MAP_FORMATS = ("png", "density")  # density: <stem>.npy, float32 natural-log fixation density


def map_files(stem: Path, fmt: str = "png", overlay: bool = False) -> list[Path]:
    """The files one image's output consists of."""
    suffix = ".npy" if fmt == "density" else ".png"
    files = [stem.with_name(stem.name + suffix)]
    if overlay:
        files.append(stem.with_name(stem.name + "_overlay.jpg"))
    return files


def video_files(stem: Path, overlay: bool = False) -> list[Path]:
    """The files one video's output consists of: the saliency video, and its overlay."""
    files = [stem.with_name(stem.name + ".mp4")]
    if overlay:
        files.append(stem.with_name(stem.name + "_overlay.mp4"))
    return files


def write_map_files(pipeline, image: np.ndarray, m: np.ndarray, geometry, stem: Path,
                    overlay: dict | None = None, fmt: str = "png") -> None:  # fmt: skip
    """`<stem>.png` (the map at the image's size) or, for `fmt` "density", `<stem>.npy` (the
    calibrated log density), and with `overlay` (colormap, alpha) `<stem>_overlay.jpg`; each
    written whole."""
    main, *rest = map_files(stem, fmt, overlay is not None)
    saliency = pipeline.map_back(m, geometry) if fmt == "png" or overlay is not None else None
    if fmt == "density":
        write_bytes_whole(main, npy_bytes(pipeline.density_back(m, geometry)))
    else:
        write_bytes_whole(main, pipeline.encode(image, saliency))
    if overlay is not None:
        jpeg = pipeline.encode(image, saliency, "jpeg", with_overlay=True, quality=92, **overlay)
        write_bytes_whole(rest[0], jpeg)


def npy_bytes(a: np.ndarray) -> bytes:
    """A float32 array as .npy bytes (no pickle)."""
    buf = io.BytesIO()
    np.save(buf, np.asarray(a, np.float32), allow_pickle=False)
    return buf.getvalue()


def is_complete(path: Path) -> bool:
    """An output file that exists and reads back whole (an image, or an .npy array)."""
    try:
        if path.suffix == ".npy":
            np.load(path, mmap_mode="r", allow_pickle=False)
            return path.stat().st_size > 0
        from PIL import Image

        with Image.open(path) as im:
            im.verify()
        return True
    except Exception:  # anything unreadable is to be redone
        return False
