"""The report as a picture: each image under its density heat map with the boxes labelled by
share and seen-by; for variants, side by side, and where they share a size, where attention
moved (the later variant's density minus the first's)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from msinet.imaging.postprocess import overlay

COLOURS = ("#ffffff", "#ffd400", "#00e5ff", "#ff4fd8", "#7CFC00", "#ff8c00")


def heat(p: np.ndarray) -> np.ndarray:
    """A density as a 0..1 map for the overlay (its peak at 1)."""
    return (p / p.max()).astype(np.float32)


def name(report: dict) -> str:
    return Path(report["image"]).name if report.get("image") else "image"


def on_grid(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The image at the density's grid (smaller for images over `measure.WORK_PIXELS`)."""
    if image.shape[:2] == tuple(shape):
        return image
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize((shape[1], shape[0]), Image.BILINEAR))


def draw_boxes(ax, regions: list[dict], delta: list[float] | None = None) -> None:
    from matplotlib.patches import Rectangle

    for i, r in enumerate(regions):
        x, y, w, h = r["box"]
        colour = COLOURS[i % len(COLOURS)]
        ax.add_patch(Rectangle((x - 0.5, y - 0.5), w, h, fill=False, lw=2, ec=colour))
        label = (f"{r['name']}: {r['share']:.0%} of attention, seen by {r['seen_by']:.0%}"
                 if delta is None else f"{r['name']}: {100 * delta[i]:+.1f} points")  # fmt: skip
        ax.text(x, y - 4, label, color="black", fontsize=8, va="bottom",
                bbox={"facecolor": colour, "alpha": 0.85, "pad": 1.5, "lw": 0})  # fmt: skip


def render(reports: list[dict], images: list[np.ndarray], densities: list[np.ndarray],
           path: str | os.PathLike) -> None:  # fmt: skip
    """One PNG: a panel per image; with variants of one size, a panel per later variant showing
    its density minus the first's."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    same = len(images) > 1 and all(d.shape == densities[0].shape for d in densities)
    panels = len(images) + (len(images) - 1 if same else 0)
    H, W = images[0].shape[:2]
    width = min(6.0, 6.0 * W / max(H, W) + 1)
    fig, axes = plt.subplots(1, panels, figsize=(width * panels, width * H / W + 0.8),
                             squeeze=False)  # fmt: skip
    axes = axes[0]
    for ax, r, image, p in zip(axes, reports, images, densities, strict=False):
        W, H = r["size"]
        extent = (-0.5, W - 0.5, H - 0.5, -0.5)  # the boxes are in the image's pixels
        ax.imshow(overlay(on_grid(image, p.shape), heat(p), "jet", 0.6), extent=extent)
        draw_boxes(ax, r["regions"])
        for leak in r["leaks"]:
            x, y, w, h = leak["box"]
            ax.add_patch(matplotlib.patches.Rectangle((x - 0.5, y - 0.5), w, h, fill=False,
                                                      lw=1.5, ec="red", ls="--"))  # fmt: skip
        ax.set_title(f"{name(r)}\nattention in boxes {r['covered_share']:.0%}, "
                     f"entropy {r['entropy']:.2f}; red dashes: leaks", fontsize=9)  # fmt: skip
    if same:
        for k in range(1, len(images)):
            ax = axes[len(images) + k - 1]
            diff = densities[k] - densities[0]
            top = float(np.abs(diff).max()) or 1.0
            W, H = reports[0]["size"]
            extent = (-0.5, W - 0.5, H - 0.5, -0.5)
            ax.imshow(on_grid(images[0], diff.shape).mean(axis=2), cmap="gray", alpha=0.5,
                      extent=extent)  # fmt: skip
            ax.imshow(diff, cmap="RdBu_r", vmin=-top, vmax=top, alpha=0.75, extent=extent)
            delta = [b["share"] - a["share"] for a, b in
                     zip(reports[0]["regions"], reports[k]["regions"], strict=True)]  # fmt: skip
            draw_boxes(ax, reports[k]["regions"], delta)
            ax.set_title(f"{name(reports[k])} minus {name(reports[0])}\nred: more "
                         "attention, blue: less; boxes: change in share", fontsize=9)  # fmt: skip
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100, format="png")
    plt.close(fig)
