"""`msinet crop`: saliency-aware crops, focal points and salient regions."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from msinet.cli.common import add_model_flags, fail, skip_reason, unit_float
from msinet.imaging.decode import ImageError, find_images


def cmd_crop(args: argparse.Namespace) -> int:
    from collections import Counter

    from tqdm import tqdm

    from msinet.crop import crop_image, parse_aspect, plan
    from msinet.imaging.files import protect, write_bytes_whole, written_whole
    from msinet.imaging.outputs import clear_of_inputs, output_names
    from msinet.imaging.postprocess import encode_jpeg
    from msinet.pipeline import load
    from msinet.weights.store import WeightsError

    specs = args.aspect or ["1:1"]
    try:
        aspects = {spec: parse_aspect(spec) for spec in specs}
        pipeline = load(args.weights, engine=args.engine, size=args.size, threads=args.threads,
                        max_pixels=args.max_pixels)  # fmt: skip
    except (ValueError, WeightsError) as e:
        return fail(str(e))
    files, problems = find_images(args.inputs)
    failures = [f"{spec}: {reason}" for spec, reason in problems]
    outdir = Path(args.output)

    def files_of(key: str, stem: Path) -> list[Path]:
        return [stem.with_name(f"{stem.name}_{a}x{b}.jpg") for a, b in aspects.values()]

    unique = clear_of_inputs(output_names(files), outdir, files_of)
    protect(files)
    seen = Counter(f.name for f in files)  # the JSON is keyed by file name where unique
    names = {f: f.name if seen[f.name] == 1 else unique[str(f)] for f in files}
    outdir.mkdir(parents=True, exist_ok=True)
    report: dict[str, dict] = {}
    for f in tqdm(files, unit="img", desc="crop", disable=args.quiet):
        try:
            image = pipeline.decode(f)
            entry = plan(pipeline.predict(image), aspects, args.min_scale, args.keep,
                         args.regions)  # fmt: skip
            if not args.no_images:
                for spec, (a, b) in aspects.items():
                    piece = crop_image(image, tuple(entry[spec]))
                    write_bytes_whole(outdir / f"{unique[str(f)]}_{a}x{b}.jpg",
                                      encode_jpeg(piece, 92))  # fmt: skip
            report[names[f]] = entry
        except (ImageError, MemoryError, OSError) as e:
            failures.append(skip_reason(f, e))
    if args.json:
        with written_whole(args.json) as tmp:
            tmp.write_text(json.dumps(report, indent=2))
    print(f"{len(report)} image(s) cropped to {', '.join(specs)} in {outdir}", file=sys.stderr)
    for message in failures:
        print(f"msinet: skipped {message}", file=sys.stderr)
    return 1 if failures else 0


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
