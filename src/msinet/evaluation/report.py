"""The evaluation's report: the table people read, JSON and CSV for tools, and a figure of
image | truth | prediction | overlay rows."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from msinet.data import Sample
from msinet.evaluation import metrics as sal_metrics

LOWER_IS_BETTER = {"KLD", "EMD"}


@dataclass
class Report:
    dataset: str
    split: str
    convention: str
    sigma: float
    images: list[str]
    per_image: dict[str, list[dict[str, float]]]  # row name -> one dict of scores per image
    notes: list[str] = field(default_factory=list)  # what a reader must know about the rows

    def summary(self) -> dict[str, dict[str, float]]:
        return {
            row: {m: float(np.nanmean([s[m] for s in scores])) for m in scores[0]}
            for row, scores in self.per_image.items()
            if scores
        }

    def table(self) -> str:
        summary = self.summary()
        metrics = list(next(iter(summary.values())))
        width = max(len(r) for r in summary) + 2
        head = f"{'':<{width}}" + "".join(f"{m:>10}" for m in metrics)
        lines = [
            f"{self.dataset} {self.split}: {len(self.images)} images, {self.convention} "
            f"conventions, fixation density sigma {self.sigma:g} px",
            head,
            "-" * len(head),
        ]
        for row, scores in summary.items():
            lines.append(f"{row:<{width}}" + "".join(f"{scores[m]:>10.4f}" for m in metrics))
        arrows = " ".join(f"{m} {'lower' if m in LOWER_IS_BETTER else 'higher'}" for m in metrics)
        lines.append(f"(better: {arrows})")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def to_json(self, path: str | Path) -> None:
        data = {
            "dataset": self.dataset,
            "split": self.split,
            "convention": self.convention,
            "sigma": self.sigma,
            "n_images": len(self.images),
            "summary": self.summary(),
            "images": self.images,
            "per_image": self.per_image,
            "notes": self.notes,
        }
        Path(path).write_text(json.dumps(data, indent=2, allow_nan=True))

    def to_csv(self, path: str | Path) -> None:
        summary = self.summary()
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            metrics = list(next(iter(summary.values())))
            w.writerow(["predictor", "image", *metrics])
            for row, scores in self.per_image.items():
                for name, s in zip(self.images, scores, strict=True):
                    w.writerow([row, name, *(f"{s[m]:.6g}" for m in metrics)])
                w.writerow([row, "MEAN", *(f"{summary[row][m]:.6g}" for m in metrics)])


def render_figure(
    rows: list[tuple[Sample, np.ndarray, np.ndarray, np.ndarray]],
    path: str | Path,
    predictor: str = "prediction",
) -> None:
    """image | ground-truth density with fixations | prediction | overlay, one image per row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from msinet.imaging.postprocess import overlay

    fig, axes = plt.subplots(len(rows), 4, figsize=(16, 3.2 * len(rows)), squeeze=False)
    for ax_row, (sample, image, density, saliency) in zip(axes, rows, strict=True):
        s = sal_metrics.minmax(sal_metrics.to_shape(saliency, image.shape[:2]))
        panels = [
            (image, f"{sample.name}"),
            (density, "ground truth (density + fixations)"),
            (s, predictor),
            (overlay(image, s), "overlay"),
        ]
        for k, (ax, (img, title)) in enumerate(zip(ax_row, panels, strict=True)):
            ax.imshow(img, cmap="gray" if img.ndim == 2 else None)
            if k == 1:
                ax.scatter(sample.fixations.xs, sample.fixations.ys, s=3, c="red")
            ax.set_title(title, fontsize=9)
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
