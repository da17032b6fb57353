"""How much information gain is there to have? A fitted gold standard (issue 27's IG bar).

The inter-observer row of `msinet evaluate --baselines` blurs the other observers' fixations
with the evaluation sigma and reads the result as a map. As a ceiling for information gain
that is loose: its bandwidth is not fitted and it has no centre-bias regularisation, so a few
held-out fixations far from the others cost it a lot. The gold standard of Kümmerer et al.
(PNAS 2015) fits both: leave one subject out, the others' fixations blurred by a Gaussian of
fitted width, mixed with the centre bias at a fitted weight, read as a density. Here the width
and weight are fitted per dataset on its training split (most information gain over a grid),
then the gold standard is scored on the validation split exactly as `msinet evaluate` scores a
density (MIT convention: each fixated pixel once, bits per fixation over the empirical centre
bias fitted on the training split).

It estimates the information a perfect model could reach on these images from 14-15
observers; with more observers it would be somewhat higher, so it is a lower bound on the
ceiling, not the ceiling.

    .venv/bin/python benchmarks/gold_standard.py --fit-images 40
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
from scipy.special import ndtr
from tqdm import tqdm

DATASETS = ("osie", "mit1003", "eyecrowd")
SIGMA_FACTORS = (0.25, 0.35, 0.5, 0.625, 0.75, 1.0, 1.5, 2.0)  # x the dataset's evaluation sigma
WEIGHTS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5)  # centre-bias share of the mixture


def kde_at(points: np.ndarray, centres: np.ndarray, sigma: float, shape) -> np.ndarray:
    """The others' fixations blurred by a Gaussian of `sigma` px and normalised over the
    image (the mass a blur spreads outside the image is lost, as with zero padding), read at
    `points` ((N, 2) rows, cols): what blurring the count map would give, without the map."""
    d2 = ((points[:, None, :] - centres[None, :, :]) ** 2).sum(-1)
    dens = np.exp(-d2 / (2 * sigma * sigma)).sum(1) / (2 * math.pi * sigma * sigma)
    H, W = shape

    def mass(c: np.ndarray, n: int) -> np.ndarray:  # share of each Gaussian inside [0, n)
        return ndtr((n - 0.5 - c) / sigma) - ndtr((-0.5 - c) / sigma)

    inside = mass(centres[:, 0], H) * mass(centres[:, 1], W)
    return dens / inside.sum()


def loso_gains(gt, sigmas, weights) -> np.ndarray:
    """(sigmas, weights) mean over held-out subjects of the density IG in bits per fixation
    (MIT pixels: each fixated pixel of the held-out subject once)."""
    from msinet.evaluation.evaluate import fixation_pixels

    out = np.zeros((len(sigmas), len(weights)))
    n = 0
    for subject in np.unique(gt.fixations.subjects):
        held, rest = gt.held_out(int(subject))
        if len(held.fixations) == 0 or len(rest) == 0:
            continue
        rows, cols = fixation_pixels(held, "mit")
        base = gt.baseline_log[rows, cols]
        centre = np.exp(base)
        points = np.stack([rows, cols], 1).astype(np.float64)
        others = np.stack([rest.rows, rest.cols], 1).astype(np.float64)
        for i, s in enumerate(sigmas):
            kde = kde_at(points, others, s, gt.fixations.shape)
            for j, w in enumerate(weights):
                p = (1 - w) * kde + w * centre
                out[i, j] += float((np.log(p) - base).mean() / math.log(2))
        n += 1
    return out / max(n, 1)


def ground_truths(samples, centre, sigma):
    """Each sample's ground truth, with `centre` (fitted on the training split) as baseline."""
    from msinet.evaluation.evaluate import GroundTruthBuilder

    build = GroundTruthBuilder(samples, sigma, centre)
    for i in range(len(samples)):
        yield build(i)


def main() -> int:
    from msinet.data import open_dataset
    from msinet.engine.cpu import cpu_info
    from msinet.evaluation.baselines import EmpiricalCenterBias

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/data"))
    ap.add_argument("--fit-images", type=int, default=40, help="training images per dataset")
    ap.add_argument("--limit", type=int, default=0, help="validation images per dataset (0: all)")
    ap.add_argument("--json", help="write the table as JSON here")
    args = ap.parse_args()
    print(f"CPU: {cpu_info().describe()}", file=sys.stderr)
    results = {}
    for name in DATASETS:
        data = open_dataset(name, Path(args.data) / name)
        train, val = data.samples("train"), data.samples("val")
        if args.limit:
            val = val[: args.limit]
        centre = EmpiricalCenterBias.fit(train)  # once: the fit and the score share it
        sigmas = [f * data.eval_sigma for f in SIGMA_FACTORS]
        fit_set = train[:: max(1, len(train) // args.fit_images)][: args.fit_images]
        grid = np.zeros((len(sigmas), len(WEIGHTS)))
        for gt in tqdm(ground_truths(fit_set, centre, data.eval_sigma), total=len(fit_set),
                       desc=f"{name} fit", unit="img"):  # fmt: skip
            grid += loso_gains(gt, sigmas, WEIGHTS)
        i, j = np.unravel_index(np.argmax(grid), grid.shape)
        sigma, weight = sigmas[i], WEIGHTS[j]
        per_image = [float(loso_gains(gt, [sigma], [weight])[0, 0])
                     for gt in tqdm(ground_truths(val, centre, data.eval_sigma), total=len(val),
                                    desc=f"{name} val", unit="img")]  # fmt: skip
        results[name] = {
            "sigma_px": round(sigma, 2), "centre_weight": weight,
            "fitted_on": f"{len(fit_set)} training images",
            "fit_ig": round(float(grid[i, j] / len(fit_set)), 3),
            "val_images": len(val), "val_ig": round(float(np.nanmean(per_image)), 3),
        }  # fmt: skip
        print(json.dumps({name: results[name]}), file=sys.stderr)
    print("\n| split | images | sigma (px) | centre weight | gold-standard IG (bits/fix) |")
    print("| --- | --- | --- | --- | --- |")
    for name, r in results.items():
        print(
            f"| {name} val | {r['val_images']} | {r['sigma_px']} | {r['centre_weight']} | "
            f"{r['val_ig']:.3f} |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
