"""`msinet calibrate`: fit a model's density calibration on a dataset's training fixations,
check it on held-out images, and store it in weights files (docs/metrics.md)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from msinet.data import Sample
from msinet.density import DensityCalibration, FitImage, fit, log_density
from msinet.evaluation import metrics as sal_metrics
from msinet.evaluation.baselines import GaussianCenterBias
from msinet.imaging.decode import load_image
from msinet.imaging.postprocess import map_to_image

if TYPE_CHECKING:
    from msinet.pipeline import Pipeline


def model_maps(pipeline: Pipeline, samples: list[Sample], desc: str,
               progress: bool = True) -> list[np.ndarray]:  # fmt: skip
    """The model-size map of every sample's image (what the density is made from)."""
    from tqdm import tqdm

    bar = tqdm(samples, desc=desc, unit="img", disable=not progress)
    # through the pipeline's batch driver, within --max-pixels; a bad image stops the fit
    return [d.raised().map for d in pipeline.run_batches((s, s.image) for s in bar)]


@dataclass
class Check:
    """Held-out log-likelihood, bits per fixation over a uniform density, mean over images."""

    images: int
    raw_map: float  # the map read as a density (divided by its sum)
    centre_prior: float  # the calibration's centre-bias prior alone
    calibrated: float

    def table(self, split: str) -> str:
        rows = [("map read as a density", self.raw_map), ("centre-bias prior alone",
                self.centre_prior), ("calibrated density", self.calibrated)]  # fmt: skip
        lines = [f"log-likelihood on {split} ({self.images} images), bits per fixation over "
                 "uniform:"]  # fmt: skip
        lines += [f"  {name:<26}{value:>8.4f}" for name, value in rows]
        return "\n".join(lines)


def check(maps: list[np.ndarray], samples: list[Sample], cal: DensityCalibration) -> Check:
    """Exact log-likelihoods at each image's size, through the same `log_density` as predict."""
    prior = replace(cal, centre_weight=1.0)
    raw, centre, calibrated = [], [], []
    for m, s in zip(maps, samples, strict=True):
        f = s.fixations
        if not len(f):
            continue
        rows, cols = sal_metrics.pixel_index(f.ys), sal_metrics.pixel_index(f.xs)
        raw_density = sal_metrics.map_log_density(map_to_image(m, f.shape))
        raw.append(sal_metrics.log_likelihood(raw_density, rows, cols))
        centre.append(sal_metrics.log_likelihood(log_density(m, f.shape, prior), rows, cols))
        calibrated.append(sal_metrics.log_likelihood(log_density(m, f.shape, cal), rows, cols))
    return Check(len(raw), float(np.mean(raw)), float(np.mean(centre)),
                 float(np.mean(calibrated)))  # fmt: skip


def calibrate(pipeline: Pipeline, train: list[Sample], fitted_on: str,
              progress: bool = True) -> DensityCalibration:  # fmt: skip
    """Maximum-likelihood calibration on `train`."""
    from tqdm import tqdm

    maps = model_maps(pipeline, train, "maps (train)", progress)
    images = [FitImage.make(m, s.fixations.shape, s.fixations.xs, s.fixations.ys)
              for m, s in zip(maps, train, strict=True)]  # fmt: skip
    prior = GaussianCenterBias.fit(train)
    with tqdm(desc="fit (blurs tried)", unit="blur", disable=not progress) as bar:

        def show(blur: float, ll: float) -> None:
            bar.update(1)
            bar.set_postfix_str(f"blur {blur:.4f}: train log-likelihood {ll / math.log(2):.4f} "
                                "bits/fix")  # fmt: skip

        return fit(images, prior.mean, prior.std, fitted_on, show)


def calibrate_datasets(pipeline: Pipeline, datasets: list, split: str = "val",
                       limit: int | None = None, progress: bool = True,
                       figure: str | os.PathLike | None = None,
                       ) -> tuple[DensityCalibration, list[tuple[str, Check]]]:  # fmt: skip
    """One calibration fitted on the first `limit` training images of every dataset, checked
    on each one's `split`; the figure shows the first dataset's."""
    train, held_out, parts = [], [], []
    for dataset in datasets:
        fit_on = dataset.samples("train")[:limit]
        checked = dataset.samples(split)
        if not fit_on or not checked:
            raise ValueError(f"{dataset.name}: the train or {split} split is empty")
        train += fit_on
        held_out.append(checked)
        parts.append(f"{dataset.name} {fit_on[0].name}-{fit_on[-1].name} ({len(fit_on)} images)")
    cal = calibrate(pipeline, train, " + ".join(parts), progress)
    reports = []
    for dataset, checked in zip(datasets, held_out, strict=True):
        maps = model_maps(pipeline, checked, f"maps ({dataset.name} {split})", progress)
        reports.append((dataset.name, check(maps, checked, cal)))
        if figure and dataset is datasets[0]:
            render_figure(maps, checked, cal, figure)
    return cal, reports


def render_figure(maps: list[np.ndarray], samples: list[Sample], cal: DensityCalibration,
                  path: str | os.PathLike, rows: int = 3) -> None:  # fmt: skip
    """image with fixations | the map read as a density | the calibrated density, both on one
    log10 scale per row, for the first `rows` samples."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = min(rows, len(samples))
    fig, axes = plt.subplots(n, 3, figsize=(13, 3.3 * n), squeeze=False)
    for ax_row, m, s in zip(axes, maps, samples, strict=False):
        f = s.fixations
        raw = sal_metrics.map_log_density(map_to_image(m, f.shape)) / math.log(10)
        calibrated = log_density(m, f.shape, cal) / math.log(10)
        lo, hi = float(np.percentile(calibrated, 0.5)), float(max(raw.max(), calibrated.max()))
        ax_row[0].imshow(load_image(s.image))
        ax_row[0].scatter(f.xs, f.ys, s=4, c="red")
        ax_row[0].set_title(f"{s.name}: {len(f)} fixations", fontsize=9)
        for ax, d, title in ((ax_row[1], raw, "map read as a density"),
                             (ax_row[2], calibrated, "calibrated density")):  # fmt: skip
            shown = ax.imshow(d, vmin=lo, vmax=hi, cmap="magma")
            ax.set_title(f"{title} (log10 p)", fontsize=9)
            fig.colorbar(shown, ax=ax, fraction=0.035)
        for ax in ax_row:
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=72)
    plt.close(fig)
