"""`msinet predict`: maps of images, folders, globs and videos, locally or on Ray Data."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from msinet.cli.common import (
    add_model_flags,
    fail,
    pipeline_of,
    positive_int,
    print_report,
    smoothing,
    unit_float,
)


def check_density(meta, weights: str | Path) -> None:
    """--format density needs weights that carry a density calibration: say so before any
    image is read."""
    if meta.density is None:
        from msinet.density import DensityError

        raise DensityError(f"{weights} carries no density calibration, needed for "
                           "--format density: fit one with `msinet calibrate`")  # fmt: skip


def cmd_predict(args: argparse.Namespace) -> int:
    from msinet.imaging.postprocess import colormap_lut
    from msinet.jobs import JobError
    from msinet.jobs.predict import maps_to_folder
    from msinet.pipeline import resolve
    from msinet.weights.files import read_meta
    from msinet.weights.store import WeightsError

    try:
        colormap_lut(args.colormap)
        if args.ray:
            device = "cuda" if args.gpus_per_actor else args.device
            engine, weights = resolve(args.weights, args.engine, device)
            if args.format == "density":  # the actors load the model: read its metadata here
                check_density(read_meta(weights), weights)
            return predict_ray(args, engine, weights)
        pipeline = pipeline_of(args)
        if args.format == "density":
            check_density(pipeline.engine.meta, args.weights or "the shipped model")
        overlay = {"colormap": args.colormap, "alpha": args.alpha} if args.overlay else None
        report = maps_to_folder(pipeline, args.inputs, args.output, fmt=args.format,
                                overlay=overlay, batch_size=args.batch_size, smooth=args.smooth,
                                progress=not args.quiet)  # fmt: skip
    except (ValueError, WeightsError, JobError) as e:
        return fail(str(e))
    return print_report(report)


def predict_ray(args: argparse.Namespace, engine: str, weights: Path) -> int:
    from msinet.scale.data import predict_files
    from msinet.weights.store import WeightsError

    try:
        overlay = {"colormap": args.colormap, "alpha": args.alpha} if args.overlay else None
        summary = predict_files(args.inputs, args.output, str(weights), engine, args.size,
                                actors=args.actors, batch_size=args.batch_size,
                                threads_per_actor=args.threads, progress=not args.quiet,
                                max_pixels=args.max_pixels, overlay=overlay,
                                fmt=args.format,
                                gpus_per_actor=args.gpus_per_actor)  # fmt: skip
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
    p.add_argument("--gpus-per-actor", type=float, default=0.0,
                   help="--ray: GPUs per actor; each actor runs its engine on its GPU")  # fmt: skip
    p.set_defaults(func=cmd_predict)
