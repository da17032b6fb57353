"""`msinet predict`: maps of images, folders, globs and videos, locally or on Ray Data."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from msinet.cli.common import (
    add_model_flags,
    fail,
    positive_int,
    skip_reason,
    smoothing,
    unit_float,
)
from msinet.imaging.decode import ImageError, find_images


def weights_meta(weights: Path):
    """A weights file's metadata without building an engine."""
    if weights.suffix == ".onnx":
        from msinet.weights.onnx_file import load_onnx
        from msinet.weights.onnx_graph import meta_of

        return meta_of(load_onnx(weights))
    from msinet.weights.store import WeightsMeta, read_header

    return WeightsMeta.from_header(read_header(weights))


def check_density(meta, weights: str | Path) -> None:
    """--format density needs weights that carry a density calibration: say so before any
    image is read."""
    if meta.density is None:
        from msinet.density import DensityError

        raise DensityError(f"{weights} carries no density calibration, needed for "
                           "--format density: fit one with `msinet calibrate`")  # fmt: skip


def cmd_predict(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from msinet.imaging.postprocess import colormap_lut
    from msinet.pipeline import load, resolve
    from msinet.weights.store import WeightsError

    try:
        colormap_lut(args.colormap)
        if args.ray:
            engine, weights = resolve(args.weights, args.engine)
            if args.format == "density":  # the actors load the model: read its metadata here
                check_density(weights_meta(weights), weights)
            return predict_ray(args, engine, weights)
        pipeline = load(args.weights, engine=args.engine, size=args.size, threads=args.threads,
                        max_pixels=args.max_pixels)  # fmt: skip
        if args.format == "density":
            check_density(pipeline.engine.meta, args.weights or "the shipped model")
    except (ValueError, WeightsError) as e:
        return fail(str(e))
    from msinet.imaging.files import protect
    from msinet.imaging.outputs import (
        clear_of_inputs,
        map_files,
        output_names,
        video_files,
        write_map_files,
    )
    from msinet.video import is_video

    videos = [Path(a) for a in args.inputs if is_video(a) and Path(a).is_file()]
    files, problems = find_images([a for a in args.inputs if Path(a) not in videos])
    failures = [f"{spec}: {reason}" for spec, reason in problems]
    if not files and not videos:  # nothing to do: say why, and create no output folder
        for spec, reason in problems:
            print(f"msinet: skipped {spec}: {reason}", file=sys.stderr)
        return 1
    outdir = Path(args.output)
    video_keys = {str(v) for v in videos}

    def files_of(key: str, stem: Path) -> list[Path]:
        if key in video_keys:
            return video_files(stem, args.overlay)
        return map_files(stem, args.format, args.overlay)

    unique = clear_of_inputs(output_names([*files, *videos]), outdir, files_of)
    names = {f: unique[str(f)] for f in [*files, *videos]}
    protect([*files, *videos])
    outdir.mkdir(parents=True, exist_ok=True)  # an unusable folder: one line, from main()
    if not os.access(outdir, os.W_OK | os.X_OK):
        return fail(f"cannot write to the output folder {outdir}: permission denied")
    for v in videos:
        if args.format == "density":
            failures.append(f"{v}: --format density is for images; videos get saliency videos")
            continue
        failures += predict_one_video(pipeline, v, outdir, names[v], args)
    overlay = {"colormap": args.colormap, "alpha": args.alpha} if args.overlay else None
    written = 0
    with tqdm(total=len(files), unit="img", desc="predict",
              disable=args.quiet or not files) as bar:  # fmt: skip
        for done in pipeline.run_batches(((f, f) for f in files), args.batch_size):
            f = done.key
            try:  # one image's failure (memory, disk) never costs the others theirs
                if done.error is not None:
                    raise done.error
                write_map_files(pipeline, done.image, done.map, done.geometry,
                                outdir / names[f], overlay, args.format)  # fmt: skip
                written += 1
            except (ImageError, MemoryError, OSError) as e:
                failures.append(skip_reason(f, e))
            bar.update(1)
    if files or not videos:  # videos report themselves, one line each
        print(f"{written} saliency map(s) written to {outdir}", file=sys.stderr)
    for message in failures:
        print(f"msinet: skipped {message}", file=sys.stderr)
    return 1 if failures else 0


def predict_one_video(pipeline, source: Path, outdir: Path, name: str,
                      args: argparse.Namespace) -> list[str]:  # fmt: skip
    """`<name>.mp4` (and `<name>_overlay.mp4`) for one video, with frames/s shown; the
    failure in one line, if any."""
    from tqdm import tqdm

    from msinet.imaging.outputs import video_files
    from msinet.video import frame_count, predict_video

    maps, *overlay = video_files(outdir / name, args.overlay)
    with tqdm(total=frame_count(source), unit="frame", desc=source.name,
              disable=args.quiet) as bar:  # fmt: skip
        try:
            r = predict_video(pipeline, source, maps, overlay_output=overlay[0] if overlay
                              else None, smooth=args.smooth, batch_size=args.batch_size,
                              colormap=args.colormap, alpha=args.alpha,
                              progress=bar.update)  # fmt: skip
        except (ImageError, MemoryError, OSError) as e:
            return [skip_reason(source, e)]
    print(f"{source}: {r.frames} frames at {r.fps:g} fps, {r.size[0]}x{r.size[1]}, in "
          f"{r.seconds:.1f} s ({r.frames / r.seconds:.2f} frames/s) -> {maps}",
          file=sys.stderr)  # fmt: skip
    return []


def predict_ray(args: argparse.Namespace, engine: str, weights: Path) -> int:
    from msinet.scale.data import predict_files
    from msinet.weights.store import WeightsError

    try:
        overlay = {"colormap": args.colormap, "alpha": args.alpha} if args.overlay else None
        summary = predict_files(args.inputs, args.output, str(weights), engine, args.size,
                                actors=args.actors, batch_size=args.batch_size,
                                threads_per_actor=args.threads, progress=not args.quiet,
                                max_pixels=args.max_pixels, overlay=overlay,
                                fmt=args.format)  # fmt: skip
    except (FileNotFoundError, WeightsError, ValueError) as e:
        return fail(str(e))
    print(
        f"{summary.written} written, {summary.skipped} already done, "
        f"{len(summary.failures)} failed of {summary.total} in {summary.seconds:.1f} s "
        f"({summary.images_per_s:.2f} images/s, {args.actors} actor(s))",
        file=sys.stderr,
    )
    for name, reason in summary.failures:
        print(f"msinet: skipped {name}: {reason}", file=sys.stderr)
    return 1 if summary.failures else 0


def add_parser(sub) -> None:
    from msinet.imaging.outputs import MAP_FORMATS

    p = sub.add_parser("predict", help="saliency maps for images, folders or globs")
    p.add_argument(
        "inputs",
        nargs="+",
        metavar="PATH",
        help="image files, folders or globs; video files (.mp4, .mov, .mkv, ...)",
    )
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR",
                   help="folder for <stem>.png maps (and overlays), <stem>.mp4 saliency videos; "
                   "made if missing")  # fmt: skip
    add_model_flags(p)
    p.add_argument("--format", choices=MAP_FORMATS, default="png",
                   help="png: 8-bit map <stem>.png; density: <stem>.npy, float32 natural-log "
                   "fixation density at the image's size (its exp sums to 1)")  # fmt: skip
    p.add_argument("--overlay", action="store_true", help="also write <stem>_overlay.jpg")
    p.add_argument("--colormap", default="jet", help="matplotlib colormap for overlays")
    p.add_argument("--alpha", type=unit_float, default=0.6,
                   help="overlay opacity at peak saliency, 0..1")  # fmt: skip
    p.add_argument("--batch-size", type=positive_int, default=1, help="images per model call")
    p.add_argument("--smooth", type=smoothing, default=0.0, metavar="S",
                   help="videos: exponential moving average of the maps over time, weight S "
                   "of the previous frame, 0 <= S < 1 (default 0: off)")  # fmt: skip
    p.add_argument("--ray", action="store_true", help="score with Ray Data (msinet[ray])")
    p.add_argument("--actors", type=positive_int, default=1, help="--ray: engine actors")
    p.set_defaults(func=cmd_predict)
