"""Do `msinet aoi`'s numbers match real viewers? (issue 31, docs/aoi.md)

`--fit observed|model`: fit the seen-by mapping (`msinet.aoi.measure.SeenBy`) on the training
splits: for seeded random boxes, the share of fixations in the box (observed, or the model's
prediction) -> the observed fraction of observers who fixated it. No validation image is
involved.

Default: on the validation splits, for seeded random boxes (8-40% of each side) and boxes
around the model's own salient regions, compare the predicted `share` (the calibrated density's
mass in the box) with the observed share of fixations, against the baseline that predicts the
share from the box's area alone; and the predicted `seen_by` with the observed fraction of
observers, against the naive mapping (each fixation independent, with the image's own number of
fixations per observer, which a prediction cannot know) and against the noise floor (the MAE a
perfect seen-by would show, the observed fraction being a sample of the image's 15-16
observers). Prints tables, writes a scatter plot and a JSON.

    .venv/bin/python benchmarks/aoi_validation.py --fit model --limit 200
    .venv/bin/python benchmarks/aoi_validation.py --figure docs/figures/aoi-validation.png \
        --json /tmp/aoi-validation.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ("osie", "mit1003", "eyecrowd")


def random_boxes(rng: np.random.Generator, W: int, H: int, n: int) -> list[tuple[int, ...]]:
    """x, y, w, h with each side 8-40% of the image's."""
    out = []
    for _ in range(n):
        w = max(1, round(W * rng.uniform(0.08, 0.40)))
        h = max(1, round(H * rng.uniform(0.08, 0.40)))
        out.append((int(rng.integers(0, W - w + 1)), int(rng.integers(0, H - h + 1)), w, h))
    return out


def in_box(fix, box) -> np.ndarray:
    """Which fixations fall in the box (x, y, w, h)."""
    x, y, w, h = box
    return (fix.cols >= x) & (fix.cols < x + w) & (fix.rows >= y) & (fix.rows < y + h)


def observed(fix, box, inside: np.ndarray | None = None) -> tuple[float, float, float]:
    """(share of fixations in the box, fraction of observers with one there, mean fixations per
    observer) on one image; `inside`: the box's `in_box` mask, where the caller has it."""
    inside = in_box(fix, box) if inside is None else inside
    observers = np.unique(fix.subjects)
    seen = np.unique(fix.subjects[inside])
    return float(inside.mean()), len(seen) / len(observers), len(fix) / len(observers)


def half_gap(inside: np.ndarray, half: np.ndarray) -> float:
    """Half the gap between the shares of fixations in the box of two halves of the observers
    (`half`: True for the fixations of one half): about the MAE that even a perfect predicted
    share shows against the observed share of all the observers (that share is itself a
    sample: the gap between two halves has twice its spread). `inside`: the box's `in_box`."""
    if half.all() or not half.any():
        return float("nan")
    return abs(float(inside[half].mean()) - float(inside[~half].mean())) / 2


def human_boxes(samples, boxes_per_image: int, seed: int) -> np.ndarray:
    """Rows of (observed share, observed seen-by) for random boxes on every sample."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in samples:
        f = s.fixations
        if len(f) == 0:
            continue
        H, W = f.shape
        rows += [observed(f, b)[:2] for b in random_boxes(rng, W, H, boxes_per_image)]
    return np.array(rows)


def model_boxes(pipeline, samples, boxes_per_image: int, seed: int) -> np.ndarray:
    """Rows of (predicted share, observed seen-by, area share, observed share) for random
    boxes on every sample."""
    from msinet.aoi.measure import box_mass
    from msinet.crop import summed_area

    rng = np.random.default_rng(seed)
    rows = []
    for s in tqdm(samples, desc="training images", unit="img"):
        f = s.fixations
        if len(f) == 0:
            continue
        p = np.exp(pipeline.log_density(s.image), dtype=np.float64)
        table = summed_area(p / p.sum())
        H, W = p.shape
        for b in random_boxes(rng, W, H, boxes_per_image):
            obs_share, obs_seen, _ = observed(f, b)
            rows.append((box_mass(table, b), obs_seen, b[2] * b[3] / (W * H), obs_share))
    return np.array(rows)


def fit(args) -> int:
    from scipy.optimize import curve_fit

    from msinet.data import open_dataset

    pipeline = None
    if args.fit == "model":
        from msinet.pipeline import load

        pipeline = load(engine=args.engine)
    data = []
    for name in DATASETS:
        samples = open_dataset(name, Path(args.data) / name).samples("train")[: args.limit]
        data.append(human_boxes(samples, args.boxes, args.seed) if pipeline is None
                    else model_boxes(pipeline, samples, args.boxes, args.seed))  # fmt: skip
        print(f"{name}: {len(samples)} training images", file=sys.stderr)
    xy = np.concatenate(data)
    (a, b), _ = curve_fit(lambda s, a, b: 1 - np.exp(-a * np.clip(s, 0, 1) ** b), xy[:, 0],
                          xy[:, 1], p0=(5.0, 0.7))  # fmt: skip
    pred = 1 - np.exp(-a * xy[:, 0] ** b)
    print(json.dumps({"a": round(float(a), 3), "b": round(float(b), 3), "boxes": len(xy),
                      "train_mae": round(float(np.abs(pred - xy[:, 1]).mean()), 4),
                      "from": "the model's predicted share" if pipeline else "observed share",
                      "fitted_on": f"training splits of {', '.join(DATASETS)}: {len(xy)} random "
                      f"boxes ({args.boxes} per image, seed {args.seed})"}, indent=2))  # fmt: skip
    if pipeline is not None:  # the share itself, shrunk toward the box's area share?
        for u in (0.0, 0.05, 0.1, 0.15, 0.2, 0.3):
            mae = np.abs((1 - u) * xy[:, 0] + u * xy[:, 2] - xy[:, 3]).mean()
            print(f"share mixed with {u:.2f} x area share: train MAE {mae:.4f}", file=sys.stderr)
    return 0


def floor(p: float, n: int) -> float:
    """The MAE a perfect seen-by would still show against `n` observers: E|Binomial(n, p)/n - p|
    (the observed fraction is itself a sample of n viewers)."""
    from scipy.stats import binom

    k = np.arange(n + 1)
    return float((binom.pmf(k, n, p) * np.abs(k / n - p)).sum())


def pearson(a, b) -> float:
    return float(np.corrcoef(a, b)[0, 1])


def validate(args) -> int:
    from msinet.aoi.measure import SEEN_BY, box_mass
    from msinet.crop import regions as salient_regions
    from msinet.crop import summed_area
    from msinet.data import open_dataset
    from msinet.engine.cpu import cpu_info
    from msinet.pipeline import load

    pipeline = load(engine=args.engine)
    rng = np.random.default_rng(args.seed)
    halves = np.random.default_rng(args.seed + 1)  # apart, so the boxes stay those of `rng`
    rows = []  # dataset, kind, area, predicted share, observed share, seen-by, observed, naive
    for name in DATASETS:
        samples = open_dataset(name, Path(args.data) / name).samples("val")[: args.limit]
        for s in tqdm(samples, desc=f"{name} val", unit="img"):
            f = s.fixations
            if len(f) == 0:
                continue
            subjects = np.unique(f.subjects)
            observers = len(subjects)
            half = np.isin(f.subjects, halves.permutation(subjects)[: observers // 2])
            p = np.exp(pipeline.log_density(s.image), dtype=np.float64)
            H, W = p.shape
            table = summed_area(p / p.sum())
            boxes = [("random", b) for b in random_boxes(rng, W, H, args.boxes)]
            boxes += [("salient", (x0, y0, x1 - x0, y1 - y0))
                      for (x0, y0, x1, y1) in (g.box for g in salient_regions(p, 5))]  # fmt: skip
            for kind, box in boxes:
                share = box_mass(table, box)
                inside = in_box(f, box)
                obs_share, obs_seen, per_observer = observed(f, box, inside)
                naive = 1 - (1 - share) ** per_observer
                seen = float(SEEN_BY(share))
                rows.append((name, kind, box[2] * box[3] / (W * H), share, obs_share, seen,
                             obs_seen, naive, floor(seen, observers),
                             half_gap(inside, half)))  # fmt: skip
    table_rows = []
    for name in (*DATASETS, "all"):
        for kind in ("random", "salient", "all"):
            sel = [r for r in rows if name in (r[0], "all") and kind in (r[1], "all")]
            if not sel:
                continue
            cols = [np.array([r[i] for r in sel]) for i in range(2, 10)]
            area, share, obs, seen, obs_seen, naive, noise, gap = cols
            table_rows.append({
                "dataset": name, "boxes": kind, "n": len(sel),
                "share_r": pearson(share, obs), "share_mae": float(np.abs(share - obs).mean()),
                "share_noise_floor": float(np.nanmean(gap)),
                "area_r": pearson(area, obs), "area_mae": float(np.abs(area - obs).mean()),
                "seen_by_r": pearson(seen, obs_seen),
                "seen_by_mae": float(np.abs(seen - obs_seen).mean()),
                "naive_seen_by_mae": float(np.abs(naive - obs_seen).mean()),
                "seen_by_noise_floor": float(noise.mean()),
            })  # fmt: skip
    print(f"CPU: {cpu_info().describe()}; engine {pipeline.engine.name}; seen-by a={SEEN_BY.a} "
          f"b={SEEN_BY.b}; {args.boxes} random boxes per image (seed {args.seed}) + up to 5 "
          "salient-region boxes")  # fmt: skip
    print(
        "\n| dataset | boxes | n | share r | share MAE | share noise floor | area-only r | "
        "area-only MAE | seen-by r | seen-by MAE | naive seen-by MAE | seen-by noise floor |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for t in table_rows:
        print(f"| {t['dataset']} | {t['boxes']} | {t['n']} | {t['share_r']:.3f} | "
              f"{t['share_mae']:.3f} | {t['share_noise_floor']:.3f} | {t['area_r']:.3f} | "
              f"{t['area_mae']:.3f} | "
              f"{t['seen_by_r']:.3f} | {t['seen_by_mae']:.3f} | "
              f"{t['naive_seen_by_mae']:.3f} | {t['seen_by_noise_floor']:.3f} |")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": table_rows}, indent=2))
    if args.figure:
        plot(rows, args.figure)
    return 0


def plot(rows, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 5))
    colours = {"osie": "tab:blue", "mit1003": "tab:orange", "eyecrowd": "tab:green"}
    for name, colour in colours.items():
        sel = [r for r in rows if r[0] == name]
        axes[0].scatter([r[3] for r in sel], [r[4] for r in sel], s=4, alpha=0.4, c=colour,
                        label=name)  # fmt: skip
        axes[1].scatter([r[2] for r in sel], [r[4] for r in sel], s=4, alpha=0.4, c=colour)
        axes[2].scatter([r[5] for r in sel], [r[6] for r in sel], s=4, alpha=0.4, c=colour)
    titles = [("predicted share (msinet)", "observed share of fixations"),
              ("box area / image area (baseline)", "observed share of fixations"),
              ("predicted seen-by (msinet)", "observed fraction of observers")]  # fmt: skip
    for ax, (x, y) in zip(axes, titles, strict=True):
        ax.plot([0, 1], [0, 1], "k--", lw=1)
        ax.set(xlabel=x, ylabel=y, xlim=(0, 1), ylim=(0, 1), aspect="equal")
    for ax, (xi, yi) in ((axes[0], (3, 4)), (axes[2], (5, 6))):  # binned means: calibration
        xs, ys = np.array([r[xi] for r in rows]), np.array([r[yi] for r in rows])
        edges = np.quantile(xs, np.linspace(0, 1, 16))
        k = np.clip(np.searchsorted(edges, xs, side="right") - 1, 0, 14)
        mx = [xs[k == i].mean() for i in range(15) if (k == i).any()]
        my = [ys[k == i].mean() for i in range(15) if (k == i).any()]
        ax.plot(mx, my, "ko-", ms=4, lw=1.5, label="mean in bins")
    axes[0].legend(markerscale=2)
    fig.suptitle("Areas of interest on validation images: predicted against observed")
    fig.tight_layout()
    fig.savefig(path, dpi=90, bbox_inches="tight")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared/data"))
    ap.add_argument("--fit", choices=("observed", "model"),
                    help="fit SEEN_BY on training images: from the observed share of fixations, "
                    "or from the model's predicted share")  # fmt: skip
    ap.add_argument("--boxes", type=int, default=20, help="random boxes per image")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int, help="first N images of each dataset's split")
    ap.add_argument("--engine", help="default: the default engine (onnx-int8)")
    ap.add_argument("--json")
    ap.add_argument("--figure")
    args = ap.parse_args(argv)
    return fit(args) if args.fit else validate(args)


if __name__ == "__main__":
    raise SystemExit(main())
