"""Attention on areas of interest (issue 31): how much of it each named box gets, how many
viewers see it, how it compares across variants of a design. `report(pipeline, image,
regions)` for one image; `compare` for variants; docs/aoi.md for how the numbers were checked
against real viewers."""

from __future__ import annotations

from msinet.aoi.measure import SEEN_BY, SeenBy, density_of, measure
from msinet.aoi.regions import (
    RegionError,
    RegionSpec,
    from_json,
    parse_region,
    read_file,
)

__all__ = [
    "SEEN_BY",
    "RegionError",
    "RegionSpec",
    "SeenBy",
    "compare",
    "density_of",
    "from_json",
    "measure",
    "parse_region",
    "read_file",
    "report",
]


def as_specs(regions) -> list[RegionSpec]:
    """RegionSpecs, `{"name": [x, y, w, h]}`, a list of `{"name", "box"}` or of `NAME=X,Y,W,H`."""
    if isinstance(regions, dict):
        return from_json(regions)
    out = []
    for r in regions:
        out += [r] if isinstance(r, RegionSpec) else [parse_region(r)] if isinstance(
            r, str) else from_json([r])  # fmt: skip
    return out


def report(pipeline, image, regions, *, name: str | None = None) -> dict:
    """The attention report of one image (a path, bytes, a PIL image or an array) through
    `pipeline`'s calibrated fixation density (weights with a density calibration)."""
    specs = as_specs(regions)
    log_p, size = density_of(pipeline, image)
    out = measure(log_p, specs, size=size)
    return {"image": name if name is not None else str(image)
            if isinstance(image, str) or hasattr(image, "__fspath__") else None, **out}  # fmt: skip


def compare(reports: list[dict]) -> dict:
    """Variants of one design with the same regions: per region, each variant's share and
    seen-by, and the variant that wins it (by share)."""
    names = [r["name"] for r in reports[0]["regions"]]
    table = []
    for i, name in enumerate(names):
        entries = [r["regions"][i] for r in reports]
        best = max(range(len(reports)), key=lambda k: entries[k]["share"])
        table.append({"name": name, "share": [e["share"] for e in entries],
                      "seen_by": [e["seen_by"] for e in entries],
                      "best": reports[best]["image"] or best})  # fmt: skip
    return {"images": [r["image"] for r in reports], "regions": table}
