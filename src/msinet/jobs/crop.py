"""Saliency-aware crops of images into a folder (`<name>_<W>x<H>.jpg` per aspect) and one JSON
of the boxes, focus and salient regions of every image."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

from tqdm import tqdm

from msinet.crop import crop_image, plan
from msinet.imaging.decode import ImageError, find_images
from msinet.imaging.files import protect, skip_reason, write_bytes_whole, written_whole
from msinet.imaging.outputs import clear_of_inputs, output_names
from msinet.imaging.postprocess import encode_jpeg
from msinet.jobs import JobReport


def crops_to_folder(pipeline, inputs: list[str], outdir: str | os.PathLike,
                    aspects: dict[str, tuple[int, int]], *, min_scale: float = 1.0,
                    keep: float = 0.95, regions: int = 5, images: bool = True,
                    json_path: str | os.PathLike | None = None,
                    progress: bool = True) -> JobReport:  # fmt: skip
    """`aspects`: the user's spelling ("16:9") -> (16, 9)."""
    files, problems = find_images(inputs)
    report = JobReport(failures=[f"{spec}: {reason}" for spec, reason in problems])
    outdir = Path(outdir)

    def files_of(key: str, stem: Path) -> list[Path]:
        return [stem.with_name(f"{stem.name}_{a}x{b}.jpg") for a, b in aspects.values()]

    unique = clear_of_inputs(output_names(files), outdir, files_of)
    protect(files)
    seen = Counter(f.name for f in files)  # the JSON is keyed by file name where unique
    names = {f: f.name if seen[f.name] == 1 else unique[str(f)] for f in files}
    outdir.mkdir(parents=True, exist_ok=True)
    entries: dict[str, dict] = {}
    for f in tqdm(files, unit="img", desc="crop", disable=not progress):
        try:
            image = pipeline.decode(f)
            entry = plan(pipeline.predict(image), aspects, min_scale, keep, regions)
            if images:
                for spec, (a, b) in aspects.items():
                    piece = encode_jpeg(crop_image(image, tuple(entry[spec])), 92)
                    write_bytes_whole(outdir / f"{unique[str(f)]}_{a}x{b}.jpg", piece)
            entries[names[f]] = entry
        except (ImageError, MemoryError, OSError) as e:
            report.failures.append(skip_reason(f, e))
    if json_path:
        with written_whole(json_path) as tmp:
            tmp.write_text(json.dumps(entries, indent=2))
    report.done = len(entries)
    report.lines.append(f"{len(entries)} image(s) cropped to {', '.join(aspects)} in {outdir}")
    return report
