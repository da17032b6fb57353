"""Time all nine metrics (MIT conventions) on OSIE images, ground truth building included.

    python benchmarks/bench_metrics.py [--root ../shared/data/osie] [--images 100]

Predictions are the Gaussian centre bias (computed once, outside the timing), so the table
shows the metric code alone: per-metric seconds summed over the images, and the wall total.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from msinet.data import open_dataset
from msinet.evaluation.baselines import EmpiricalCenterBias, GaussianCenterBias
from msinet.evaluation.evaluate import METRICS, GroundTruthBuilder, score_map


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", default=str(Path(__file__).parents[2] / "shared/data/osie"))
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--split", default="val")
    args = ap.parse_args()
    ds = open_dataset("osie", args.root)
    samples, train = ds.samples(args.split)[: args.images], ds.samples("train")
    prediction = GaussianCenterBias.fit(train)((600, 800))
    build = GroundTruthBuilder(samples, ds.eval_sigma, EmpiricalCenterBias.fit(train))
    per_metric = dict.fromkeys(METRICS, 0.0)
    gt_time = 0.0
    score_map(prediction, build(0), ["EMD"])  # import POT outside the timing
    start = time.perf_counter()
    for i in range(len(samples)):
        t = time.perf_counter()
        gt = build(i)
        gt_time += time.perf_counter() - t
        for m in METRICS:
            t = time.perf_counter()
            score_map(prediction, gt, [m], seed=i)
            per_metric[m] += time.perf_counter() - t
    wall = time.perf_counter() - start
    print(f"# {len(samples)} OSIE {args.split} images (800x600), MIT conventions")
    print(f"{'step':<14} | {'total s':>8} | {'ms/image':>8}")
    print("-" * 36)
    for name, t in [("ground truth", gt_time), *per_metric.items()]:
        print(f"{name:<14} | {t:>8.2f} | {t / len(samples) * 1e3:>8.1f}")
    print("-" * 36)
    print(f"{'wall total':<14} | {wall:>8.2f} | {wall / len(samples) * 1e3:>8.1f}")


if __name__ == "__main__":
    main()
