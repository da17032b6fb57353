"""Eager PyTorch CPU time per image at the OSIE/SALICON input size (240x320).

    python benchmarks/bench_eager.py [--threads N] [--runs 10]

Timing does not depend on the weights' values, so a Glorot-initialised model is used.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from msinet.model.net import MSINet, init_weights


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--size", type=int, nargs=2, default=[240, 320], metavar=("H", "W"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = MSINet()
    init_weights(model)
    model.eval()
    print(
        f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{args.threads} threads, input {args.size[0]}x{args.size[1]}, median of {args.runs}"
    )
    print(f"{'batch':>5} | {'ms/batch':>9} | {'ms/image':>9} | {'images/s':>8}")
    print("-" * 42)
    for bs in args.batch_sizes:
        x = torch.rand(bs, 3, *args.size) * 255
        times = []
        with torch.inference_mode():
            for _ in range(2):
                model(x)
            for _ in range(args.runs):
                t = time.perf_counter()
                model(x)
                times.append(time.perf_counter() - t)
        med = statistics.median(times)
        print(f"{bs:>5} | {med * 1e3:>9.1f} | {med * 1e3 / bs:>9.1f} | {bs / med:>8.2f}")


if __name__ == "__main__":
    main()
