"""`msinet aoi`: attention share, seen-by and lift of named areas of interest."""

from __future__ import annotations

import argparse

from msinet.cli.common import add_model_flags, fail, pipeline_of, print_report


def cmd_aoi(args: argparse.Namespace) -> int:
    from msinet.aoi import RegionError, parse_region, read_file
    from msinet.aoi.regions import checked
    from msinet.cli.predict import check_density
    from msinet.jobs import JobError
    from msinet.jobs.aoi import aoi_report, as_text
    from msinet.weights.store import WeightsError

    try:
        regions = [parse_region(r) for r in args.region or []]
        for path in args.regions or []:
            regions += read_file(path)
        checked(regions)
        pipeline = pipeline_of(args)
        check_density(pipeline.engine.meta, args.weights or "the shipped model")
        job, reports = aoi_report(pipeline, args.inputs, regions, json_path=args.json,
                                  figure_path=args.figure, progress=not args.quiet)  # fmt: skip
    except (RegionError, ValueError, WeightsError, JobError) as e:
        return fail(str(e))
    if reports:
        print(as_text(reports))
    return print_report(job)


def add_parser(sub) -> None:
    p = sub.add_parser("aoi", help="attention share, seen-by and lift of areas of interest",
                       description="How much of viewers' attention each named box gets (share), "
                       "how many viewers fixate it at least once (seen by) and how that compares "
                       "with its area (lift), from the calibrated fixation density; several "
                       "images are compared as variants of one design (docs/aoi.md).")  # fmt: skip
    p.add_argument("inputs", nargs="+", metavar="IMAGE", help="image files (variants: several)")
    p.add_argument("--region", action="append", metavar="NAME=X,Y,W,H",
                   help="a box in pixels of the image, or in fractions when all four numbers "
                   "are in 0..1; repeatable")  # fmt: skip
    p.add_argument("--regions", action="append", metavar="FILE.json",
                   help='regions as {"name": [x, y, w, h], ...}; repeatable')  # fmt: skip
    p.add_argument("--json", metavar="FILE", help="the report: one object, a list for variants")
    p.add_argument("--figure", metavar="PNG", help="heat map with the boxes labelled")
    add_model_flags(p)
    p.set_defaults(func=cmd_aoi)
