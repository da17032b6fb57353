"""The `msinet` command line: one module per command group, each with `add_parser(sub)`
and the commands it runs; this module builds the parser from them and runs one."""

from __future__ import annotations

import sys

from msinet.cli.common import Parser, fail, missing_extra
from msinet.imaging.files import os_error


def build_parser() -> Parser:
    from msinet import __version__
    from msinet.cli import aoi, bench, crop, evaluate, model, predict, serve

    parser = Parser(prog="msinet", description="MSI-Net saliency prediction")
    parser.add_argument("--version", action="version", version=f"msinet {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    predict.add_parser(sub)
    crop.add_parser(sub)
    aoi.add_parser(sub)
    evaluate.add_parser(sub)
    model.add_parser(sub)
    serve.add_serve_parser(sub)
    bench.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
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
