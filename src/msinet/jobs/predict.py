"""Maps of images and videos into a folder: `<stem>.png` / `<stem>.npy` (+ overlays) per image,
`<stem>.mp4` per video; unique names, inputs never overwritten, every file written whole."""

from __future__ import annotations

import os
from pathlib import Path

from tqdm import tqdm

from msinet.imaging.decode import ImageError, find_images
from msinet.imaging.files import protect, skip_reason
from msinet.imaging.outputs import (
    clear_of_inputs,
    map_files,
    output_names,
    video_files,
    write_map_files,
)
from msinet.jobs import JobError, JobReport
from msinet.video import frame_count, is_video, predict_video


def maps_to_folder(pipeline, inputs: list[str], outdir: str | os.PathLike, *, fmt: str = "png",
                   overlay: dict | None = None, batch_size: int = 1, smooth: float = 0.0,
                   progress: bool = True) -> JobReport:  # fmt: skip
    """`inputs`: files, folders or globs of images, and video files. `overlay`: colormap and
    alpha for `<stem>_overlay.jpg` / `.mp4`, or None for none."""
    report = JobReport()
    videos = [Path(a) for a in inputs if is_video(a) and Path(a).is_file()]
    files, problems = find_images([a for a in inputs if Path(a) not in videos])
    report.failures += [f"{spec}: {reason}" for spec, reason in problems]
    if not files and not videos:  # nothing to do: say why, and create no output folder
        return report
    outdir = Path(outdir)
    video_keys = {str(v) for v in videos}

    def files_of(key: str, stem: Path) -> list[Path]:
        if key in video_keys:
            return video_files(stem, overlay is not None)
        return map_files(stem, fmt, overlay is not None)

    unique = clear_of_inputs(output_names([*files, *videos]), outdir, files_of)
    protect([*files, *videos])
    outdir.mkdir(parents=True, exist_ok=True)
    if not os.access(outdir, os.W_OK | os.X_OK):
        raise JobError(f"cannot write to the output folder {outdir}: permission denied")
    for v in videos:
        if fmt == "density":
            report.failures.append(f"{v}: --format density is for images; videos get saliency "
                                   "videos")  # fmt: skip
            continue
        video_to_file(pipeline, v, outdir / unique[str(v)], report, overlay=overlay,
                      smooth=smooth, batch_size=batch_size, progress=progress)  # fmt: skip
    images = 0
    with tqdm(total=len(files), unit="img", desc="predict",
              disable=not progress or not files) as bar:  # fmt: skip
        for done in pipeline.run_batches(((f, f) for f in files), batch_size):
            try:  # one image's failure (memory, disk) never costs the others theirs
                if done.error is not None:
                    raise done.error
                write_map_files(pipeline, done.image, done.map, done.geometry,
                                outdir / unique[str(done.key)], overlay, fmt)  # fmt: skip
                images += 1
            except (ImageError, MemoryError, OSError) as e:
                report.failures.append(skip_reason(done.key, e))
            bar.update(1)
    report.done += images
    if files or not videos:  # videos report themselves, one line each
        report.lines.append(f"{images} saliency map(s) written to {outdir}")
    return report


def video_to_file(pipeline, source: Path, stem: Path, report: JobReport, *,
                  overlay: dict | None, smooth: float, batch_size: int,
                  progress: bool) -> None:  # fmt: skip
    """`<stem>.mp4` (and `<stem>_overlay.mp4`) for one video, frames/s shown as it goes."""
    maps, *overlay_file = video_files(stem, overlay is not None)
    style = overlay or {}
    with tqdm(total=frame_count(source), unit="frame", desc=source.name,
              disable=not progress) as bar:  # fmt: skip
        try:
            r = predict_video(pipeline, source, maps,
                              overlay_output=overlay_file[0] if overlay_file else None,
                              smooth=smooth, batch_size=batch_size,
                              progress=bar.update, **style)  # fmt: skip
        except (ImageError, MemoryError, OSError) as e:
            report.failures.append(skip_reason(source, e))
            return
    report.done += 1
    rate = r.frames / r.seconds
    report.lines.append(f"{source}: {r.frames} frames at {r.fps:g} fps, {r.size[0]}x{r.size[1]}, "
                        f"in {r.seconds:.1f} s ({rate:.2f} frames/s) -> {maps}")  # fmt: skip
