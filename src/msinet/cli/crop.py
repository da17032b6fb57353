"""`msinet crop`: saliency-aware crops, focal points and salient regions."""

from __future__ import annotations

import argparse

from msinet.cli.common import add_model_flags, fail, pipeline_of, print_report, unit_float


def cmd_crop(args: argparse.Namespace) -> int:
    from msinet.crop import parse_aspect
    from msinet.jobs.crop import crops_to_folder
    from msinet.weights.store import WeightsError

    try:
        aspects = {spec: parse_aspect(spec) for spec in args.aspect or ["1:1"]}
        pipeline = pipeline_of(args)
    except (ValueError, WeightsError) as e:
        return fail(str(e))
    report = crops_to_folder(pipeline, args.inputs, args.output, aspects,
                             min_scale=args.min_scale, keep=args.keep, regions=args.regions,
                             images=not args.no_images, json_path=args.json,
                             progress=not args.quiet)  # fmt: skip
    return print_report(report)


def add_parser(sub) -> None:
    p = sub.add_parser("crop", help="saliency-aware crops, focal points and salient regions")
    p.add_argument("inputs", nargs="+", metavar="PATH", help="image files, folders or globs")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR",
                   help="folder for <name>_<W>x<H>.jpg crops; made if missing")  # fmt: skip
    p.add_argument("--aspect", action="append", metavar="W:H",
                   help="crop aspect ratio, repeatable (default: 1:1)")  # fmt: skip
    p.add_argument("--min-scale", type=unit_float, default=1.0,
                   help="allow crops down to this fraction of the largest (0..1]: the smallest "
                   "that keeps --keep of the attention")  # fmt: skip
    p.add_argument(
        "--keep",
        type=unit_float,
        default=0.95,
        help="with --min-scale: share of the largest crop's attention kept",
    )
    p.add_argument(
        "--regions",
        type=int,
        default=5,
        metavar="N",
        help="the N most salient regions and their attention share (--json)",
    )
    p.add_argument("--json", metavar="FILE", help="boxes, focus and regions of every image")
    p.add_argument("--no-images", action="store_true", help="only the --json file, no crops")
    add_model_flags(p)
    p.set_defaults(func=cmd_crop)
