"""`msinet evaluate` and `msinet calibrate`: scores and density calibrations on eye-tracking
data."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from msinet.cli.common import add_device_flags, add_model_flags, fail, pipeline_of, positive_int
from msinet.imaging.decode import ImageError


def cmd_evaluate(args: argparse.Namespace) -> int:
    from msinet.data import open_dataset
    from msinet.evaluation.evaluate import evaluate, folder_predictions, model_rows
    from msinet.evaluation.metrics import MetricError
    from msinet.weights.store import WeightsError

    try:
        dataset = open_dataset(args.dataset, args.root)
        samples = dataset.samples(args.split)[: args.limit]
        predictors = {}
        if args.predictions:
            predictors[f"predictions ({Path(args.predictions).name})"] = folder_predictions(
                args.predictions
            )
        if args.weights or not args.predictions:  # the shipped model unless told otherwise
            pipeline = pipeline_of(args)
            name = Path(args.weights).name if args.weights else "shipped model"
            predictors.update(model_rows(pipeline, f"msinet ({name}, {pipeline.engine.name})"))
        if args.baselines and not args.quiet:
            print("msinet: --baselines scores the inter-observer row once per observer of each "
                  "image: a few seconds per image", file=sys.stderr)  # fmt: skip
        report = evaluate(
            samples,
            dataset.samples("train"),
            predictors,
            dataset=dataset.name,
            split=args.split,
            sigma=args.sigma if args.sigma else dataset.eval_sigma,
            metrics=args.metrics,
            convention=args.convention,
            baselines=args.baselines,
            progress=not args.quiet,
            figure=args.figure,
        )
    except (ValueError, FileNotFoundError, WeightsError, MetricError, ImageError) as e:
        return fail(str(e))
    print(report.table())
    if args.json:
        report.to_json(args.json)
    if args.csv:
        report.to_csv(args.csv)
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from msinet.evaluation.calibrate import calibrate_datasets
    from msinet.pipeline import resolve
    from msinet.weights.files import source_hash, write_density
    from msinet.weights.store import WeightsError

    try:
        datasets = opened(args)
        engine, weights = resolve(args.weights, args.engine, args.device)
        pipeline = pipeline_of(args, (engine, weights))
        source = source_hash(weights)
        for path in args.write:  # refuse before the long fit, not after it
            if source_hash(path) != source:
                return fail(f"{path} holds other weights than {weights}")
        cal, reports = calibrate_datasets(pipeline, datasets, args.split, args.limit,
                                          not args.quiet, args.figure)  # fmt: skip
        for path in args.write:
            write_density(path, cal, source)
    except (ValueError, FileNotFoundError, WeightsError, ImageError) as e:
        return fail(str(e))
    print(json.dumps(asdict(cal), indent=2))
    for name, report in reports:
        print(report.table(f"{name} {args.split}"))
    if args.json:
        both = {"calibration": asdict(cal),
                "check": {name: asdict(report) for name, report in reports}}  # fmt: skip
        Path(args.json).write_text(json.dumps(both, indent=2))
    for path in args.write:
        print(f"stored in {path}", file=sys.stderr)
    return 0


def opened(args: argparse.Namespace) -> list:
    """The datasets of `--data NAME:DIR ...`, or the one of `--dataset NAME --root DIR`."""
    from msinet.data import open_dataset
    from msinet.training.trainset import sources_of

    return [open_dataset(s.name, s.root) for s in sources_of(args.data, args.dataset, args.root)]


def add_parser(sub) -> None:
    from msinet.data import DATASETS
    from msinet.engine import ENGINES
    from msinet.evaluation.evaluate import CONVENTIONS, METRICS

    p = sub.add_parser("evaluate", help="score predictions and baselines on eye-tracking data")
    p.add_argument("--dataset", default="osie", choices=DATASETS)
    p.add_argument("--root", required=True, help="the dataset's folder (official layout)")
    p.add_argument("--split", default="val", help="train, val or all")
    p.add_argument(
        "--weights",
        metavar="FILE",
        help="score this model (default: the shipped one, unless --predictions)",
    )
    p.add_argument("--predictions", metavar="DIR", help="score saved maps <stem>.png (no torch)")
    p.add_argument(
        "--engine",
        choices=ENGINES,
        help="default: as predict (onnx-int8 for the shipped model, onnx otherwise)",
    )
    p.add_argument("--size", help="model input size (default: the weights' training size)")
    add_device_flags(p)
    p.add_argument(
        "--baselines", action="store_true", help="centre bias, spectral residual, inter-observer"
    )
    p.add_argument("--metrics", nargs="+", default=list(METRICS), choices=METRICS)
    p.add_argument("--convention", choices=CONVENTIONS, default="mit")
    p.add_argument("--sigma", type=float, help="density Gaussian in px (default: 1 degree)")
    p.add_argument("--limit", type=int, help="only the first N images of the split")
    p.add_argument("--json", metavar="FILE")
    p.add_argument("--csv", metavar="FILE")
    p.add_argument("--figure", metavar="PNG", help="image | truth | prediction | overlay")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("calibrate", help="fit the map -> fixation density calibration "
                       "(docs/metrics.md)")  # fmt: skip
    p.add_argument("--dataset", default="osie", choices=DATASETS)
    p.add_argument("--root", help="the dataset's folder (official layout)")
    p.add_argument("--data", action="append", default=[], metavar="NAME:DIR",
                   help="fit on the training splits of several datasets at once, repeatable "
                   "(instead of --dataset/--root); checked on each one's --split")  # fmt: skip
    p.add_argument("--split", default="val", help="held-out split the calibration is checked on")
    p.add_argument("--limit", type=positive_int, help="fit on the first N training images only")
    p.add_argument("--write", action="append", default=[], metavar="FILE",
                   help="store the calibration in this weights file of the same model "
                   "(.safetensors, or .onnx made from it), repeatable; default: print it "
                   "only")  # fmt: skip
    p.add_argument("--json", metavar="FILE", help="the calibration and its check as JSON")
    p.add_argument("--figure", metavar="PNG", help="held-out images: map vs calibrated density")
    add_model_flags(p)
    p.set_defaults(func=cmd_calibrate)
