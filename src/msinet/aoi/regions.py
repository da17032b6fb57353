"""Areas of interest as the user names them: `NAME=X,Y,W,H` on the command line, a JSON file,
or the JSON of a request; in pixels of the original image, or as fractions of it when all
four numbers are in 0..1. Every mistake is one line naming the region."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

MAX_REGIONS = 64  # per image: a report, not a grid
MAX_NAME = 64


class RegionError(ValueError):
    """A region that cannot be measured: malformed, outside the image, empty, or named twice."""


@dataclass(frozen=True)
class RegionSpec:
    """A region as given: fractions of the image, or pixels."""

    name: str
    box: tuple[float, float, float, float]  # x, y, w, h

    @property
    def fractional(self) -> bool:
        return all(0.0 <= v <= 1.0 for v in self.box)

    def pixels(self, size: tuple[int, int]) -> tuple[int, int, int, int]:
        """The box in whole pixels of an image `size` = (width, height): x, y, w, h."""
        width, height = size
        x, y, w, h = self.box
        if self.fractional:
            x, y, w, h = x * width, y * height, w * width, h * height
        left, top = round(x), round(y)
        right, bottom = round(x + w), round(y + h)
        if left < 0 or top < 0 or right > width or bottom > height:
            raise RegionError(f"region {self.name!r}: box {fmt(self.box)} is outside the "
                              f"{width}x{height} image")  # fmt: skip
        if right <= left or bottom <= top:
            raise RegionError(f"region {self.name!r}: box {fmt(self.box)} is less than a pixel "
                              f"wide or high on the {width}x{height} image")  # fmt: skip
        return left, top, right - left, bottom - top


def fmt(box) -> str:
    return ",".join(f"{v:g}" for v in box)


def make(name: object, box: object) -> RegionSpec:
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
        raise RegionError(f"region name {name!r}: give 1 to {MAX_NAME} characters")
    if not isinstance(box, list | tuple) or len(box) != 4:
        raise RegionError(f"region {name!r}: the box must be 4 numbers x,y,w,h, got {box!r}")
    try:
        values = tuple(float(v) for v in box)
    except (TypeError, ValueError):
        raise RegionError(f"region {name!r}: the box must be 4 numbers x,y,w,h, got "
                          f"{box!r}") from None  # fmt: skip
    if any(isinstance(v, bool) for v in box) or not all(math.isfinite(v) for v in values):
        raise RegionError(f"region {name!r}: the box must be 4 finite numbers, got {box!r}")
    if values[2] <= 0 or values[3] <= 0:
        raise RegionError(f"region {name!r}: width and height must be above 0, got "
                          f"{fmt(values)}")  # fmt: skip
    if values[0] < 0 or values[1] < 0:
        raise RegionError(f"region {name!r}: x and y must be 0 or more, got {fmt(values)}")
    return RegionSpec(name.strip(), values)  # type: ignore[arg-type]


def parse_region(text: str) -> RegionSpec:
    """`NAME=X,Y,W,H` (the command line's spelling)."""
    name, sep, numbers = text.rpartition("=")
    if not sep:
        raise RegionError(f"region {text!r}: write NAME=X,Y,W,H (pixels, or fractions 0..1)")
    return make(name, numbers.split(","))


def from_json(data: object) -> list[RegionSpec]:
    """`{"logo": [x, y, w, h], ...}` or `[{"name": "logo", "box": [x, y, w, h]}, ...]`."""
    if isinstance(data, dict):
        return [make(name, box) for name, box in data.items()]
    if isinstance(data, list):
        out = []
        for item in data:
            if not isinstance(item, dict) or set(item) - {"name", "box"}:
                raise RegionError(f'each region must be {{"name": ..., "box": [x, y, w, h]}}, '
                                  f"got {item!r}"[:200])  # fmt: skip
            out.append(make(item.get("name"), item.get("box")))
        return out
    raise RegionError('regions must be {"name": [x, y, w, h], ...} or a list of '
                      '{"name": ..., "box": [x, y, w, h]}')  # fmt: skip


def read_file(path: str | os.PathLike) -> list[RegionSpec]:
    try:
        return from_json(json.loads(Path(path).read_text()))
    except OSError as e:
        raise RegionError(f"{path}: {(e.strerror or str(e)).lower()}") from None
    except ValueError as e:
        if isinstance(e, RegionError):
            raise RegionError(f"{path}: {e}") from None
        raise RegionError(f"{path}: not JSON ({e})") from None


def checked(regions: list[RegionSpec]) -> list[RegionSpec]:
    """At least one, at most MAX_REGIONS, every name once."""
    if not regions:
        raise RegionError("no regions: give --region NAME=X,Y,W,H or --regions FILE.json")
    if len(regions) > MAX_REGIONS:
        raise RegionError(f"{len(regions)} regions: at most {MAX_REGIONS} per image")
    seen: set[str] = set()
    for r in regions:
        if r.name in seen:
            raise RegionError(f"region {r.name!r} is named twice: give each region its own name")
        seen.add(r.name)
    return regions
