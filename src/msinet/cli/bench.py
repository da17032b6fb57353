"""`msinet bench`: speed, memory and fidelity of every engine (msinet.evaluation.bench)."""

from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    from msinet.evaluation import bench

    p = sub.add_parser("bench", help="speed, memory and fidelity of every engine",
                       description=bench.__doc__)  # fmt: skip
    bench.add_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from msinet.evaluation.bench import command

    return command(args)
