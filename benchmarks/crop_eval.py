"""How much of what people actually look at each crop keeps: msinet's crop against a centre
crop, a crop around the single most salient point, and the best crop chosen with the human
fixations themselves (the upper bound), on validation images with real eye tracking.

    python benchmarks/crop_eval.py --root ../shared/data/osie --figure docs/figures/crops.png

For every image and aspect: the share of the image's human fixations that fall inside the
crop (all crops are the largest of that aspect, as `msinet crop` makes by default). Prints a
markdown table (docs/cropping.md) and, with --figure, draws example crops.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from tqdm import tqdm

from msinet.crop import Box, crop_box, largest_size, parse_aspect
from msinet.data import open_dataset
from msinet.engine.cpu import cpu_info
from msinet.pipeline import load

ASPECTS = ("1:1", "4:5", "9:16", "16:9")
METHODS = ("msinet", "centre", "peak", "fixations (upper bound)")


def centred(width: int, height: int, w: int, h: int, cx: float, cy: float) -> Box:
    """The w x h box centred on (cx, cy) as nearly as the image allows."""
    left = int(min(max(round(cx - w / 2), 0), width - w))
    top = int(min(max(round(cy - h / 2), 0), height - h))
    return left, top, left + w, top + h


def share_inside(box: Box, xs: np.ndarray, ys: np.ndarray) -> float:
    left, top, right, bottom = box
    inside = (xs >= left) & (xs < right) & (ys >= top) & (ys < bottom)
    return float(inside.mean()) if len(xs) else float("nan")


def boxes(saliency: np.ndarray, counts: np.ndarray, aspect: tuple[int, int]) -> dict[str, Box]:
    height, width = saliency.shape
    w, h = largest_size(width, height, aspect)
    py, px = np.unravel_index(int(np.argmax(saliency)), saliency.shape)
    return {
        "msinet": crop_box(saliency, aspect),
        "centre": centred(width, height, w, h, width / 2, height / 2),
        "peak": centred(width, height, w, h, px + 0.5, py + 0.5),
        "fixations (upper bound)": crop_box(counts, aspect),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default="../shared/data/osie")
    ap.add_argument("--dataset", default="osie")
    ap.add_argument("--split", default="val")
    ap.add_argument("--limit", type=int)
    ap.add_argument("--engine", default=None)
    ap.add_argument("--figure", type=Path)
    args = ap.parse_args()
    samples = open_dataset(args.dataset, args.root).samples(args.split)[: args.limit]
    pipeline = load(engine=args.engine)
    aspects = {a: parse_aspect(a) for a in ASPECTS}
    shares = {a: {m: [] for m in METHODS} for a in ASPECTS}
    shown = []
    for s in tqdm(samples, desc="crop eval", unit="img"):
        image = pipeline.decode(s.image)
        saliency = pipeline.predict(image)
        f = s.fixations
        xs, ys = f.xs, f.ys
        counts = np.zeros(saliency.shape, np.float64)
        rows = np.clip(np.rint(ys).astype(int), 0, saliency.shape[0] - 1)
        cols = np.clip(np.rint(xs).astype(int), 0, saliency.shape[1] - 1)
        np.add.at(counts, (rows, cols), 1.0)
        for name, aspect in aspects.items():
            for method, box in boxes(saliency, counts, aspect).items():
                shares[name][method].append(share_inside(box, cols, rows))
        if len(shown) < 4:
            shown.append((s.name, image, boxes(saliency, counts, aspects["9:16"]), cols, rows))
    print(f"# {args.dataset} {args.split}: {len(samples)} images; engine {pipeline.engine.name}; "
          f"{cpu_info().describe()}")  # fmt: skip
    print("| aspect | " + " | ".join(METHODS) + " |")
    print("|---|" + "---|" * len(METHODS))
    for name in ASPECTS:
        cells = [f"{100 * np.nanmean(shares[name][m]):.1f}%" for m in METHODS]
        print(f"| {name} | " + " | ".join(cells) + " |")
    wins = {n: np.mean(np.array(shares[n]["msinet"]) > np.array(shares[n]["centre"]))
            for n in ASPECTS}  # fmt: skip
    print("msinet keeps more than the centre crop on: "
          + ", ".join(f"{n} {100 * w:.0f}% of images" for n, w in wins.items()))  # fmt: skip
    if args.figure:
        draw(shown, args.figure)


def draw(shown, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    colours = {"msinet": "#e41a1c", "centre": "#ff7f00", "peak": "#377eb8",
               "fixations (upper bound)": "#4daf4a"}  # fmt: skip
    fig, axes = plt.subplots(1, len(shown), figsize=(4 * len(shown), 3.8))
    for ax, (name, image, bxs, cols, rows) in zip(np.atleast_1d(axes), shown, strict=True):
        ax.imshow(image)
        ax.scatter(cols, rows, s=3, c="#ffff33", linewidths=0)
        for method, (left, top, right, bottom) in bxs.items():
            ax.add_patch(Rectangle((left, top), right - left, bottom - top, fill=False, lw=2,
                                   ec=colours[method], label=method))  # fmt: skip
        ax.set_title(f"OSIE {name}, 9:16 crops")
        ax.axis("off")
    handles, labels = np.atleast_1d(axes)[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)


if __name__ == "__main__":
    main()
