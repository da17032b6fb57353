"""One output name per input, for every command and path that writes files (maps, overlays,
Ray's actors): unique, the same from run to run, and never two inputs on one file; and the
map files themselves, written the same way by `msinet predict` and Ray's actors.

`predict DIR -o out` with x/1.jpg, y/x/1.jpg, same.jpg and same.png used to write two files for
four inputs and report four; `--ray` wrote sub1/x.jpg and sub2/x.jpg to one x.png."""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

import numpy as np

from msinet.files import write_bytes_whole


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


def write_map_files(pipeline, image: np.ndarray, m: np.ndarray, geometry, stem: Path,
                    overlay: dict | None = None) -> None:  # fmt: skip
    """`<stem>.png` (the map at the image's size) and, with `overlay` (colormap, alpha),
    `<stem>_overlay.jpg`; each written whole."""
    saliency = pipeline.map_back(m, geometry)
    write_bytes_whole(stem.with_name(stem.name + ".png"), pipeline.encode(image, saliency))
    if overlay is not None:
        jpeg = pipeline.encode(image, saliency, "jpeg", with_overlay=True, quality=92, **overlay)
        write_bytes_whole(stem.with_name(stem.name + "_overlay.jpg"), jpeg)
