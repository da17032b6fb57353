"""What every command shares: errors in one line, flags from typed configs, argument
types and the model flags."""

from __future__ import annotations

import argparse
import sys

from msinet.engine.device import DEVICE_HELP
from msinet.imaging.decode import DEFAULT_MAX_PIXELS


def fail(message: str, code: int = 2) -> int:
    print(f"msinet: error: {message}", file=sys.stderr)
    return code


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
    add_device_flags(p)
    p.add_argument("--max-pixels", type=positive_int, default=DEFAULT_MAX_PIXELS,
                   help="refuse larger images (read from the header, before decoding)")  # fmt: skip
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def add_device_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="cpu", help=DEVICE_HELP)
    p.add_argument("--amp", choices=("bf16", "fp16"),
                   help="torch engine: autocast (mixed precision, for GPUs)")  # fmt: skip


def pipeline_of(args: argparse.Namespace, resolved: tuple | None = None):
    """The pipeline the model flags describe (`resolved`: the engine and weights
    `pipeline.resolve` already chose)."""
    from msinet.imaging.decode import DEFAULT_MAX_PIXELS
    from msinet.pipeline import load

    engine, weights = resolved or (args.engine, args.weights)
    return load(weights, engine=engine, size=args.size,
                threads=getattr(args, "threads", None), device=args.device, amp=args.amp,
                max_pixels=getattr(args, "max_pixels", DEFAULT_MAX_PIXELS))  # fmt: skip


def smoothing(text: str) -> float:
    v = float(text)
    if not 0.0 <= v < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return v


def print_report(report) -> int:
    """A folder job's lines, then one `msinet: skipped` line per failed input; exit 1 if any."""
    for line in report.lines:
        print(line, file=sys.stderr)
    for message in report.failures:
        print(f"msinet: skipped {message}", file=sys.stderr)
    return 1 if report.failures else 0
