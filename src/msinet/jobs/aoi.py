"""`msinet aoi`: the attention report of one design or several variants of it, as a table, a
JSON and a figure. A bad image or a region that does not fit it costs only that image."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tqdm import tqdm

from msinet.aoi import RegionSpec, compare, density_of, measure
from msinet.aoi.regions import RegionError
from msinet.density import DensityError
from msinet.imaging.decode import ImageError, find_images
from msinet.imaging.files import protect, skip_reason, written_whole
from msinet.jobs import JobError, JobReport


def aoi_report(pipeline, inputs: list[str], regions: list[RegionSpec], *,
               json_path: str | os.PathLike | None = None,
               figure_path: str | os.PathLike | None = None,
               progress: bool = True) -> tuple[JobReport, list[dict]]:  # fmt: skip
    """One report per image that could be measured, in the order given."""
    files, problems = find_images(inputs)
    job = JobReport(failures=[f"{spec}: {reason}" for spec, reason in problems])
    if not files:
        raise JobError("no images to report on" if not problems else
                       f"no images to report on: {job.failures[0]}")  # fmt: skip
    protect(files)
    reports, images, densities = [], [], []
    for f in tqdm(files, unit="img", desc="aoi", disable=not progress or len(files) < 2):
        try:
            image = pipeline.decode(f)
            log_p, size = density_of(pipeline, image)
            reports.append({"image": str(f), **measure(log_p, regions, size=size)})
            if figure_path:
                import numpy as np

                images.append(image)
                densities.append(np.exp(log_p))
        except (ImageError, RegionError, DensityError, MemoryError) as e:
            job.failures.append(skip_reason(f, e))
    job.done = len(reports)
    if json_path and reports:
        answer = reports[0] if len(files) == 1 else reports
        with written_whole(json_path) as tmp:
            tmp.write_text(json.dumps(answer, indent=2))
    if figure_path and reports:
        from msinet.aoi.figure import render

        with written_whole(figure_path) as tmp:
            render(reports, images, densities, tmp)
        job.lines.append(f"figure written to {figure_path}")
    return job, reports


def as_text(reports: list[dict]) -> str:
    """The reports as a table per image, and the variants compared."""
    lines = [line for r in reports for line in text(r)]
    if len(reports) > 1:
        lines += comparison(compare(reports))
    return "\n".join(lines)


def text(r: dict) -> list[str]:
    W, H = r["size"]
    lines = [f"{Path(r['image']).name} ({W}x{H}): {r['covered_share']:.1%} of the attention in "
             f"the regions; entropy {r['entropy']:.2f} (1 = spread evenly); the top 10% of the "
             f"image holds {r['top10_share']:.0%}",
             f"  {'region':<20}{'share':>8}{'seen by':>9}{'lift':>7}  box (x,y,w,h)"]  # fmt: skip
    for g in r["regions"]:
        lines.append(f"  {g['name'][:20]:<20}{g['share']:>8.1%}{g['seen_by']:>9.0%}"
                     f"{g['lift']:>6.1f}x  {','.join(map(str, g['box']))}")  # fmt: skip
    for leak in r["leaks"]:
        lines.append(f"  leak: {leak['share']:.1%} of the attention at "
                     f"{','.join(map(str, leak['box']))}, in no region")  # fmt: skip
    return lines


def comparison(c: dict) -> list[str]:
    names = [Path(i).name[:14] for i in c["images"]]
    head = f"  {'region':<20}" + "".join(f"{n:>18}" for n in names) + "  most attention"
    lines = ["variants, share (seen by) per region:", head]
    for g in c["regions"]:
        cells = "".join(f"{s:>11.1%} ({v:>4.0%})" for s, v in zip(g["share"], g["seen_by"],
                                                                  strict=True))  # fmt: skip
        lines.append(f"  {g['name'][:20]:<20}{cells}  {Path(str(g['best'])).name}")
    return lines
