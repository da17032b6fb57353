"""The `msinet` command line."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import numpy as np

from msinet.imaging.decode import DEFAULT_MAX_PIXELS, ImageError, find_images


def fail(message: str, code: int = 2) -> int:
    print(f"msinet: error: {message}", file=sys.stderr)
    return code


def chunks(items: list[Path], n: int) -> Iterator[list[Path]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


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
        for group in chunks(files, args.batch_size):
            loaded = []
            for f in group:
                try:
                    image = pipeline.decode(f)
                    loaded.append((f, image, *pipeline.prepare(image)))
                except (ImageError, MemoryError) as e:
                    failures.append(skip_reason(f, e))
                    bar.update(1)
            if not loaded:
                continue
            maps = pipeline.run([x for _, _, x, _ in loaded])
            for (f, image, _, geometry), m in zip(loaded, maps, strict=True):
                try:  # one image's failure (memory, disk) never costs the others theirs
                    write_map_files(pipeline, image, m, geometry, outdir / names[f], overlay,
                                    args.format)  # fmt: skip
                    written += 1
                except (MemoryError, OSError) as e:
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


def weights_meta(weights: Path):
    """A weights file's metadata without building an engine."""
    if weights.suffix == ".onnx":
        from msinet.engine.onnx import load_onnx
        from msinet.engine.onnx_graph import meta_of

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


def parsed(value: str):
    """A metadata value as what it holds: JSON (sizes, lists, the density) where it is."""
    try:
        return json.loads(value)
    except ValueError:
        return value


def describe_weights(path: Path) -> dict:
    """What `msinet info` prints for one file: its metadata, verified; for an int8 .onnx file
    also the self-check on this CPU."""
    if path.suffix == ".onnx":
        from msinet.engine.onnx import load_int8, load_onnx
        from msinet.engine.probe import PROBE_KEY

        props = {p.key: p.value for p in load_onnx(path).metadata_props}  # checked, no session
        info = {"file": str(path), **{k: parsed(v) for k, v in props.items() if k != PROBE_KEY}}
        if "quantization" in props:
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


def cmd_evaluate(args: argparse.Namespace) -> int:
    from msinet.data import open_dataset
    from msinet.evaluation.evaluate import evaluate, folder_predictions, model_rows
    from msinet.evaluation.metrics import MetricError
    from msinet.pipeline import load
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
            pipeline = load(args.weights, engine=args.engine, size=args.size)
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
    from msinet.evaluation.calibrate import (
        calibrate,
        check,
        model_maps,
        render_figure,
        source_hash,
        store,
    )
    from msinet.pipeline import load, resolve
    from msinet.weights.store import WeightsError

    try:
        datasets = opened(args)
        train, held_out, parts = [], [], []
        for dataset in datasets:
            fit_on = dataset.samples("train")[: args.limit]
            checked = dataset.samples(args.split)
            if not fit_on or not checked:
                return fail(f"{dataset.name}: the train or {args.split} split is empty")
            train += fit_on
            held_out.append(checked)
            parts.append(f"{dataset.name} {fit_on[0].name}-{fit_on[-1].name} ({len(fit_on)} "
                         "images)")  # fmt: skip
        engine, weights = resolve(args.weights, args.engine)
        pipeline = load(weights, engine=engine, size=args.size, threads=args.threads,
                        max_pixels=args.max_pixels)  # fmt: skip
        source = source_hash(weights)
        for path in args.write:  # refuse before the long fit, not after it
            if source_hash(path) != source:
                return fail(f"{path} holds other weights than {weights}")
        cal = calibrate(pipeline, train, " + ".join(parts), progress=not args.quiet)
        reports = []
        for dataset, checked in zip(datasets, held_out, strict=True):
            val_maps = model_maps(pipeline, checked, f"maps ({dataset.name} {args.split})",
                                  not args.quiet)  # fmt: skip
            reports.append((dataset.name, check(val_maps, checked, cal)))
            if args.figure and dataset is datasets[0]:
                render_figure(val_maps, checked, cal, args.figure)
        for path in args.write:
            store(path, cal, source)
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


def cmd_train(args: argparse.Namespace) -> int:
    from dataclasses import fields

    from msinet.model.config import TrainConfig
    from msinet.training.train import Trainer
    from msinet.weights.store import WeightsError

    config = TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig)
                            if hasattr(args, f.name)})  # fmt: skip
    try:
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
            import onnx

            from msinet.engine.onnx_graph import build_from_weights
            from msinet.imaging.files import written_whole

            with written_whole(args.output) as tmp:
                onnx.save(build_from_weights(weights), str(tmp))
    except (WeightsError, ValueError, ImageError) as e:
        return fail(str(e))
    print(f"{args.output}  sha256 {file_sha256(args.output)}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn
    from pydantic import ValidationError

    from msinet.engine import load_engine
    from msinet.pipeline import resolve
    from msinet.server.app import create_app
    from msinet.server.connections import ConnectionLimits, configure
    from msinet.server.memory import return_freed_memory
    from msinet.server.settings import Settings
    from msinet.weights.store import WeightsError

    # before the model loads: its build's large blocks, freed, went back to glibc's heaps
    # rather than to the system (an idle server held 904 MB instead of 520)
    return_freed_memory()
    given = {k: getattr(args, k) for k in Settings.model_fields if hasattr(args, k)}
    try:
        settings = Settings(**given)
        settings.api_key  # noqa: B018 - an unset key variable is an error now, not per request
        # The model loads here, before any server starts: a bad weights file is one line and
        # exit 2, not uvicorn's "Application startup failed" traceback.
        engine = load_engine(*resolve(settings.weights, settings.engine), settings.threads)
        if args.ray:
            del engine  # each replica loads its own
            from msinet.scale.serve import RayOptions, parse_autoscale, run

            autoscale = parse_autoscale(args.autoscale) if args.autoscale else None
            run(settings, RayOptions(args.replicas, autoscale, args.num_cpus,
                                     args.max_ongoing_requests))  # fmt: skip
            return 0
        if settings.workers > 1:  # each worker builds its app from MSINET_* (checked above)
            del engine
            for k, v in settings.model_dump().items():
                if v is not None:
                    os.environ[f"MSINET_{k.upper()}"] = (
                        json.dumps(v) if isinstance(v, list) else str(v)
                    )
            uvicorn.run("msinet.server.app:app_from_env", factory=True, host=settings.host,
                        port=settings.port, workers=settings.workers,
                        timeout_graceful_shutdown=30,
                        **configure(ConnectionLimits.of(settings)))  # fmt: skip
            return 0
        app = create_app(settings, engine=engine)
    except (ValidationError, ValueError, WeightsError) as e:
        return fail(str(e).splitlines()[0] if isinstance(e, ValidationError) else str(e))
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        timeout_graceful_shutdown=30,
        **configure(ConnectionLimits.of(settings)),
    )
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


def flag_specs(config) -> list[dict]:
    """Name, type, default, help and choices of every field of a dataclass (help in the field's
    metadata) or a pydantic model (help in its description)."""
    import dataclasses
    import typing

    if dataclasses.is_dataclass(config):
        hints = typing.get_type_hints(config)
        return [
            {
                "name": f.name,
                "type": hints[f.name],
                "default": None if f.default is dataclasses.MISSING else f.default,
                **f.metadata,
            }
            for f in dataclasses.fields(config)
        ]
    return [{"name": k, "type": f.annotation, "default": f.default, "help": f.description}
            for k, f in config.model_fields.items()]  # fmt: skip


def add_flags(parser: argparse.ArgumentParser, config, skip: tuple[str, ...] = ()) -> None:
    """`--kebab-case` flags from a config's fields; the defaults shown are the config's."""
    import typing

    for spec in flag_specs(config):
        name, kind, default = spec["name"], spec["type"], spec["default"]
        if name in skip or not spec.get("cli", True):
            continue
        flag, help_text = "--" + name.replace("_", "-"), spec.get("help") or ""
        args = typing.get_args(kind)
        if type(None) in args:  # X | None
            kind = next(a for a in args if a is not type(None))
            args = typing.get_args(kind)
        choices = spec.get("choices") or (args if typing.get_origin(kind) is typing.Literal
                                          else None)  # fmt: skip
        if kind is bool:
            if default:
                parser.add_argument(f"--no-{flag[2:]}", dest=name, action="store_false",
                                    help=f"turn off: {help_text}")  # fmt: skip
            else:
                parser.add_argument(flag, dest=name, action="store_true", help=help_text)
            continue
        if default not in (None, "", []):
            help_text += f" (default: {default})"
        extra = {"nargs": "+", "action": "extend"} if typing.get_origin(kind) is list else {}
        value_type = str if choices or extra else kind
        parser.add_argument(flag, dest=name, type=value_type, choices=choices,
                            required=spec.get("required", False), help=help_text,
                            default=None if spec.get("required") else argparse.SUPPRESS,
                            **extra)  # fmt: skip


class Defaults(argparse.HelpFormatter):
    """--help shows every option's default (unless its help already says it, or it is unset)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or action.default in (None, False, argparse.SUPPRESS):
            return text
        return f"{text} (default: %(default)s)"


class Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", Defaults)
        # no abbreviations: `--api-key VALUE` must not pass for `--api-key-env VALUE`
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def unit_float(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be within 0..1, got {value}")
    return value


# Optional dependencies: the module a command needs -> the extra that installs it.
EXTRAS = {
    **dict.fromkeys(["torch"], "torch"),
    **dict.fromkeys(["onnxruntime", "onnx"], "onnx"),
    **dict.fromkeys(
        [
            "fastapi",
            "fastapi_offline",
            "uvicorn",
            "starlette",
            "multipart",
            "prometheus_client",
            "pydantic_settings",
            "pydantic",
            "websockets",
        ],
        "serve",
    ),
    **dict.fromkeys(["ray"], "ray"),
    **dict.fromkeys(["ot", "cv2"], "eval"),
    **dict.fromkeys(["tensorboard"], "official"),
    **dict.fromkeys(["av"], "video"),
    **dict.fromkeys(["pysaliency"], "pysaliency"),
}


def missing_extra(e: ModuleNotFoundError) -> str | None:
    top = (e.name or "").partition(".")[0]
    extra = EXTRAS.get(top)
    return f"{top} is not installed; pip install 'msinet[{extra}]'" if extra else None


def add_serve_parser(sub) -> None:
    """`msinet serve`'s flags come from the server's Settings; without the serve extra the
    command still parses and says what to install (predict and the rest need no pydantic)."""
    p = sub.add_parser("serve", help="run the HTTP service (web page at /, API docs at /docs)")
    try:
        from msinet.server.settings import Settings
    except ModuleNotFoundError as e:
        message = missing_extra(e) or str(e)
        p.set_defaults(func=lambda _: fail(message), any_flags=True)
        return
    add_flags(p, Settings)
    p.add_argument("--ray", action="store_true", help="deploy on Ray Serve (msinet[ray])")
    p.add_argument("--replicas", type=int, default=1, help="--ray: fixed replica count")
    p.add_argument("--autoscale", metavar="MIN:MAX", help="--ray: autoscale replicas")
    p.add_argument("--num-cpus", type=float, default=1.0, help="--ray: CPUs per replica")
    p.add_argument("--max-ongoing-requests", type=int, default=32, help="--ray: per replica")
    p.set_defaults(func=cmd_serve)


def add_model_flags(p: argparse.ArgumentParser) -> None:
    """The model and input flags of every command that runs the model on image files."""
    from msinet.engine import ENGINES

    p.add_argument(
        "--weights",
        metavar="FILE",
        help="msinet .safetensors or .onnx file (default: the shipped model)",
    )
    p.add_argument("--engine", choices=ENGINES,
                   help="default: onnx-int8 for the shipped model, onnx for --weights (torch "
                   "without onnxruntime)")  # fmt: skip
    p.add_argument("--size", help="model input: preset (osie, salicon, mit1003, cat2000) or HxW")
    p.add_argument("--threads", type=positive_int, help="intra-op threads (default: all cores)")
    p.add_argument("--max-pixels", type=positive_int, default=DEFAULT_MAX_PIXELS,
                   help="refuse larger images (read from the header, before decoding)")  # fmt: skip
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def smoothing(text: str) -> float:
    v = float(text)
    if not 0.0 <= v < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return v


def build_parser() -> argparse.ArgumentParser:
    from msinet import __version__
    from msinet.engine import ENGINES
    from msinet.imaging.outputs import MAP_FORMATS

    parser = Parser(prog="msinet", description="MSI-Net saliency prediction")
    parser.add_argument("--version", action="version", version=f"msinet {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

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

    from msinet.data import DATASETS
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

    from msinet.model.config import TrainConfig

    p = sub.add_parser("train", help="train MSI-Net on eye-tracking data")
    add_flags(p, TrainConfig)
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
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

    add_serve_parser(sub)

    p = sub.add_parser("convert-official", help="import official MSI-Net TF weights")
    p.add_argument(
        "path",
        help="frozen model_<dataset>_<cpu|gpu>.pb, a TF1 checkpoint "
        "(prefix or .index), or a SavedModel folder",
    )
    p.add_argument("-o", "--output", required=True, metavar="FILE")
    p.add_argument("--dataset", help="salicon, mit1003, cat2000, osie, ... (default: from name)")
    p.set_defaults(func=cmd_convert_official)

    sub.add_parser("bench", help="speed, memory and fidelity of every engine (--help)")

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
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["bench"]:  # its own parser: msinet bench --help
        from msinet.engine.bench import main as bench

        return bench(argv[1:])
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown and not getattr(args, "any_flags", False):
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    from msinet.imaging.files import protecting

    try:
        with protecting():
            return args.func(args)
    except ModuleNotFoundError as e:
        message = missing_extra(e)
        if message is None:
            raise
        return fail(message)
    except KeyboardInterrupt:
        return fail("interrupted", 130)
    except OSError as e:  # file-system trouble the command did not handle itself
        return fail(os_error(e))


def skip_reason(path: Path, e: Exception) -> str:
    """Why one input was skipped, naming it once ("x.jpg: not an image ..."): image errors for
    files already start with the path; file-system errors in `os_error`'s words."""
    message = os_error(e) if isinstance(e, OSError) else str(e)
    return message if message.startswith(f"{path}: ") else f"{path}: {message}"


def os_error(e: OSError) -> str:
    """`OSError` in one line with the path it concerns: "permission denied: out/x.png"."""
    what = (e.strerror or type(e).__name__).lower()
    if isinstance(e, FileExistsError | NotADirectoryError) and e.filename:
        return f"{what}: {e.filename} (a file is in the way of a folder)"
    return f"{what}: {e.filename}" if e.filename else f"{what}: {e}"


if __name__ == "__main__":
    sys.exit(main())
