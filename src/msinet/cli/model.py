"""`msinet train`, `export`, `convert-official` and `info`: making and reading model files."""

from __future__ import annotations

import argparse
import contextlib
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from msinet.cli.common import add_flags, fail, positive_int
from msinet.imaging.decode import ImageError, find_images


def cmd_train(args: argparse.Namespace) -> int:
    from dataclasses import fields

    from msinet.training.config import TrainConfig
    from msinet.training.train import Trainer
    from msinet.weights.store import WeightsError

    config = TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig)
                            if hasattr(args, f.name)})  # fmt: skip
    try:
        if args.ray:
            from msinet.scale.train import fit_on_ray

            fit_on_ray(config, args.workers, args.gpus_per_worker, args.cpus_per_worker,
                       resume=args.resume, progress=not args.quiet)  # fmt: skip
        else:
            Trainer(config).fit(resume=args.resume, progress=not args.quiet)
    except (ValueError, FileNotFoundError, WeightsError, ImageError) as e:
        return fail(str(e))
    print(f"run written to {config.out} (best.safetensors, last.safetensors, log.csv, curves.png)")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from msinet.weights.store import WeightsError, cast_weights, default_weights, file_sha256

    try:
        weights = Path(args.weights) if args.weights else default_weights()
        changes = {k: v for k, v in (("version", args.version), ("description",
                   args.description)) if v is not None}  # fmt: skip
        if args.format == "safetensors":
            cast_weights(weights, args.output, args.dtype, **changes)
        elif args.int8:
            from msinet.engine.quantize import quantize_int8

            if not args.calibration:
                return fail("--int8 needs --calibration DIR (real images to calibrate on)")
            images, _ = find_images([args.calibration])
            quantize_int8(weights, images[: args.calibration_count], args.output)
        else:
            from msinet.weights.onnx_graph import write_onnx

            write_onnx(weights, args.output)
    except (WeightsError, ValueError, ImageError) as e:
        return fail(str(e))
    print(f"{args.output}  sha256 {file_sha256(args.output)}")
    return 0


def cmd_convert_official(args: argparse.Namespace) -> int:
    from msinet.weights.official import convert
    from msinet.weights.store import WeightsError

    try:
        meta = convert(args.path, args.output, args.dataset)
    except WeightsError as e:
        return fail(str(e))
    print(
        f"{args.output}: official MSI-Net ({meta.dataset}), input_order=rgb, "
        f"training size {meta.training_size[0]}x{meta.training_size[1]}"
    )
    return 0


def parsed(value: str):
    """A metadata value as what it holds: JSON (sizes, lists, the density) where it is."""
    try:
        return json.loads(value)
    except ValueError:
        return value


def describe_weights(path: Path) -> dict:
    """What `msinet info` prints for one file: its metadata, verified; for an int8 .onnx file
    also the self-check on this CPU."""
    from msinet.weights.files import is_onnx

    if is_onnx(path):
        from msinet.engine.onnx import load_int8
        from msinet.engine.probe import PROBE_KEY
        from msinet.weights.onnx_file import load_onnx
        from msinet.weights.onnx_graph import props

        found = props(load_onnx(path))  # checked, no session
        info = {"file": str(path), **{k: parsed(v) for k, v in found.items() if k != PROBE_KEY}}
        if "quantization" in found:
            check = load_int8(path).self_check
            info["self_check"] = check.as_dict() | {"summary": check.summary()}
        return info
    from msinet.weights.store import load_arrays

    tensors, meta = load_arrays(path)
    return {
        "file": str(path),
        "parameters": int(sum(np.prod(t.shape) for t in tensors.values())),
        "dtypes": sorted({str(t.dtype) for t in tensors.values()}),
        "content_hash": "verified",
        **{k: v for k, v in meta.__dict__.items() if k != "density"},
        "density": asdict(meta.density) if meta.density else None,
    }


def cmd_info(args: argparse.Namespace) -> int:
    from msinet.weights.store import WeightsError, default_weights

    try:
        if args.weights:
            info = describe_weights(Path(args.weights))
        else:
            files = [default_weights()]
            with contextlib.suppress(WeightsError):  # a wheel may ship without the int8 file
                files.append(default_weights("onnx-int8"))
            info = {"default_model": [describe_weights(f) for f in files]}
    except (WeightsError, ImportError) as e:
        return fail(str(e))
    print(json.dumps(info, indent=2, default=list))
    return 0


def add_parser(sub) -> None:
    from msinet.training.config import TrainConfig

    p = sub.add_parser("train", help="train MSI-Net on eye-tracking data")
    add_flags(p, TrainConfig)
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--ray", action="store_true", help="data-parallel on Ray Train (msinet[ray])")
    p.add_argument("--workers", type=positive_int, default=2, help="--ray: training workers")
    p.add_argument("--gpus-per-worker", type=float, default=0.0, help="--ray: GPUs per worker "
                   "(NCCL; 0: CPU workers on gloo)")  # fmt: skip
    p.add_argument("--cpus-per-worker", type=float, default=1.0, help="--ray: CPUs per worker")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("export", help="write the model in another format or precision")
    p.add_argument("--format", choices=["safetensors", "onnx"], default="safetensors")
    p.add_argument("--int8", action="store_true", help="onnx: static int8 quantization")
    p.add_argument("--calibration", metavar="DIR", help="images to calibrate int8 on")
    p.add_argument("--calibration-count", type=int, default=64)
    p.add_argument("--weights", metavar="FILE", help="msinet weights (default: shipped)")
    p.add_argument("--dtype", choices=["float16", "float32"], default="float16")
    p.add_argument("--version", help="set the version recorded in the metadata")
    p.add_argument("--description", help="set the description recorded in the metadata")
    p.add_argument("-o", "--output", required=True, metavar="FILE")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("convert-official", help="import official MSI-Net TF weights")
    p.add_argument(
        "path",
        help="frozen model_<dataset>_<cpu|gpu>.pb, a TF1 checkpoint "
        "(prefix or .index), or a SavedModel folder",
    )
    p.add_argument("-o", "--output", required=True, metavar="FILE")
    p.add_argument("--dataset", help="salicon, mit1003, cat2000, osie, ... (default: from name)")
    p.set_defaults(func=cmd_convert_official)

    p = sub.add_parser(
        "info",
        help="a weights file's metadata (default: the shipped model); "
        "for an int8 .onnx file also its self-check on this CPU",
    )
    p.add_argument(
        "weights",
        metavar="WEIGHTS",
        nargs="?",
        help=".safetensors or .onnx file (default: the shipped model's files)",
    )
    p.set_defaults(func=cmd_info)
