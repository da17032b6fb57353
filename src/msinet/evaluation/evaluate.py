"""Scoring saliency predictions against eye-tracking data, model and baselines side by side.

Ground truth per image: the binary map of fixated pixels, the fixation density (Gaussian of
`sigma` px, default one degree of visual angle), fixations of other images for shuffled AUC, and
a centre bias (fitted on the training split) as the information-gain baseline, as a map and as a
density. Predictions are saliency maps or, from models with a density calibration, log
densities (`LogDensity`), which are scored as the MIT/Tübingen benchmark does (Kümmerer et al.,
ECCV 2018): each metric on the map that is best for it under the density. Nothing here needs
torch unless a model's weights are scored.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
from scipy.special import logsumexp

from msinet.data import Sample
from msinet.data.fixations import Fixations, blur
from msinet.evaluation import metrics as sal_metrics
from msinet.evaluation.baselines import EmpiricalCenterBias, GaussianCenterBias, spectral_residual
from msinet.evaluation.report import Report, render_figure
from msinet.imaging.decode import load_image

if TYPE_CHECKING:
    from msinet.pipeline import Pipeline

METRICS = ("AUC-Judd", "AUC-Borji", "sAUC", "NSS", "CC", "KLD", "SIM", "EMD", "IG", "LL")
CONVENTIONS = ("mit", "pysaliency")
INTER_OBSERVER = "inter-observer (LOSO)"
# The map each metric scores when the prediction is a density p (Kümmerer et al. 2018, Table 1):
# p itself for AUC and NSS, p over the centre bias for shuffled AUC, p blurred by the ground
# truth's Gaussian (the expected fixation map) for CC, KLD, SIM and EMD (for SIM and EMD this
# is the benchmark's choice, not their exact optimum), and the log density for IG and LL.
DENSITY_MAPS = {"AUC-Judd": "p", "AUC-Borji": "p", "NSS": "p", "sAUC": "p / centre bias",
                "CC": "p * G", "KLD": "p * G", "SIM": "p * G", "EMD": "p * G",
                "IG": "log p", "LL": "log p"}  # fmt: skip


@dataclass(frozen=True)
class LogDensity:
    """A prediction that is a fixation density: (H, W) natural log, summing to 1 (exp)."""

    values: np.ndarray


class CentreBias(Protocol):
    def __call__(self, shape: tuple[int, int]) -> np.ndarray: ...

    def log_density(self, shape: tuple[int, int]) -> np.ndarray: ...


@dataclass
class GroundTruth:
    fixations: Fixations
    sigma: float
    other: Fixations  # fixations of other images, rescaled to this image (for shuffled AUC)
    other_union: np.ndarray  # MIT sAUC: union of a few other images' fixated pixels
    baseline: np.ndarray  # centre-bias map for information gain
    baseline_log: np.ndarray  # the centre bias as a log density, for densities' IG
    fixation_map: np.ndarray = field(init=False)
    density: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.fixation_map = self.fixations.binary_map()
        self.density = self.fixations.density(self.sigma)

    def held_out(self, subject: int) -> tuple[GroundTruth, Fixations]:
        """This image's ground truth for one subject, and the other subjects' fixations."""
        mask = self.fixations.subjects == subject
        gt = GroundTruth(self.fixations.subset(mask), self.sigma, self.other, self.other_union,
                         self.baseline, self.baseline_log)  # fmt: skip
        return gt, self.fixations.subset(~mask)


def score_map(
    prediction: np.ndarray | LogDensity,
    gt: GroundTruth,
    metrics: Iterable[str] = METRICS,
    convention: str = "mit",
    seed: int = 0,
) -> dict[str, float]:
    """Every requested metric for one prediction (a map of any size, or a `LogDensity`)
    against one image's truth."""
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown convention {convention!r}; use one of {CONVENTIONS}")
    metrics = list(metrics)
    shape = gt.fixations.shape
    if isinstance(prediction, LogDensity):
        log_p = density_to_shape(prediction.values, shape)
        p = np.exp(log_p)
        derived = {"p": p, "log p": log_p}
        if "sAUC" in metrics:
            derived["p / centre bias"] = np.exp(log_p - gt.baseline_log)
        if any(DENSITY_MAPS[m] == "p * G" for m in metrics):
            derived["p * G"] = blur(p, gt.sigma)
        maps = {m: derived[DENSITY_MAPS[m]] for m in metrics}
    else:
        s = sal_metrics.to_shape(prediction, shape)
        maps, log_p = dict.fromkeys(metrics, s), None
    rows, cols = fixation_pixels(gt, convention)
    out = {}
    for name in metrics:
        if not len(gt.fixations):
            out[name] = float("nan")
        elif name == "LL":
            density = log_p if log_p is not None else sal_metrics.map_log_density(maps[name])
            out[name] = sal_metrics.log_likelihood(density, rows, cols)
        elif name == "IG" and log_p is not None:
            out[name] = sal_metrics.density_information_gain(log_p, gt.baseline_log, rows, cols)
        else:
            out[name] = map_metric(name, maps[name], gt, convention, seed)
    return out


def map_metric(name: str, s: np.ndarray, gt: GroundTruth, convention: str, seed: int) -> float:
    """One metric of a map at the ground truth's size."""
    f, fm, d = gt.fixations, gt.fixation_map, gt.density
    if convention == "mit":
        fn: Callable[[], float] = {
            "AUC-Judd": lambda: sal_metrics.auc_judd(s, fm, seed=seed),
            "AUC-Borji": lambda: sal_metrics.auc_borji(s, fm, seed=seed),
            "sAUC": lambda: sal_metrics.auc_shuffled(s, fm, gt.other_union, seed=seed),
            "NSS": lambda: sal_metrics.nss(s, fm),
            "CC": lambda: sal_metrics.cc(s, d),
            "KLD": lambda: sal_metrics.kld(s, d),
            "SIM": lambda: sal_metrics.sim(s, d),
            "EMD": lambda: sal_metrics.emd(s, d),
            "IG": lambda: sal_metrics.information_gain(s, fm, gt.baseline),
        }[name]
    else:
        fn = {
            "AUC-Judd": lambda: sal_metrics.pysaliency_auc(s, f.xs, f.ys),
            "AUC-Borji": lambda: sal_metrics.auc_borji(s, fm, seed=seed),
            "sAUC": lambda: sal_metrics.pysaliency_sauc(s, f.xs, f.ys, gt.other.xs, gt.other.ys),
            "NSS": lambda: sal_metrics.pysaliency_nss(s, f.xs, f.ys),
            "CC": lambda: sal_metrics.cc(s, d),
            "KLD": lambda: sal_metrics.pysaliency_kld(s, d),
            "SIM": lambda: sal_metrics.pysaliency_sim(s, d),
            "EMD": lambda: sal_metrics.emd(s, d),
            "IG": lambda: sal_metrics.pysaliency_information_gain(s, f.xs, f.ys, gt.baseline),
        }[name]
    return fn()


def fixation_pixels(gt: GroundTruth, convention: str) -> tuple[np.ndarray, np.ndarray]:
    """The pixels LL and IG average over: each fixated pixel once (MIT, as InfoGain.m), or
    every fixation, coordinates truncated (pysaliency)."""
    if convention == "mit":
        return np.nonzero(gt.fixation_map)
    return sal_metrics.pixel_index(gt.fixations.ys), sal_metrics.pixel_index(gt.fixations.xs)


def density_to_shape(log_p: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A log density at another size: resized in log space and renormalised."""
    log_p = sal_metrics.check_map(log_p, "log density")
    if log_p.shape != tuple(shape):
        log_p = sal_metrics.imresize(log_p, shape)
    return log_p - logsumexp(log_p)


def pooled_fixations(samples: list[Sample], shape: tuple[int, int]) -> Fixations:
    parts = [s.fixations.rescaled(shape) for s in samples]
    return Fixations(
        np.concatenate([p.xs for p in parts]) if parts else np.zeros(0),
        np.concatenate([p.ys for p in parts]) if parts else np.zeros(0),
        np.concatenate([p.subjects for p in parts]) if parts else np.zeros(0, np.int64),
        shape,
    )


class GroundTruthBuilder:
    """Builds each image's ground truth on demand (a whole split's maps would not fit in RAM)."""

    def __init__(
        self,
        samples: list[Sample],
        sigma: float,
        center_bias: CentreBias,
        n_other: int = 10,
        seed: int = 0,
    ) -> None:
        self.samples, self.sigma, self.center_bias = samples, sigma, center_bias
        self.n_other, self.seed = n_other, seed
        self.owner = np.repeat(np.arange(len(samples)), [len(s.fixations) for s in samples])
        self._per_shape: dict[tuple[int, int], tuple[Fixations, np.ndarray, np.ndarray]] = {}

    def _for_shape(self, shape: tuple[int, int]) -> tuple[Fixations, np.ndarray, np.ndarray]:
        """Every image's fixations rescaled to `shape` (once), and the centre bias as a map
        and as a log density."""
        if shape not in self._per_shape:
            pooled = pooled_fixations(self.samples, shape)
            self._per_shape[shape] = (pooled, self.center_bias(shape),
                                      self.center_bias.log_density(shape))  # fmt: skip
        return self._per_shape[shape]

    def __call__(self, i: int) -> GroundTruth:
        sample = self.samples[i]
        pooled, baseline, baseline_log = self._for_shape(sample.fixations.shape)
        others = np.array([j for j in range(len(self.samples)) if j != i], np.int64)
        rng = np.random.default_rng(self.seed + i)
        picked = others[rng.permutation(len(others))[: self.n_other]]
        union = pooled.subset(np.isin(self.owner, picked)).binary_map()
        return GroundTruth(sample.fixations, self.sigma, pooled.subset(self.owner != i), union,
                           baseline, baseline_log)  # fmt: skip


def inter_observer(
    gt: GroundTruth, metrics: Iterable[str], convention: str, seed: int = 0
) -> dict[str, float]:
    """Leave one subject out: the others' blurred fixations predict the held-out subject."""
    metrics = list(metrics)
    rows = []
    for subject in np.unique(gt.fixations.subjects):
        held, rest = gt.held_out(int(subject))
        if len(held.fixations) == 0 or len(rest) == 0:
            continue
        rows.append(score_map(rest.density(gt.sigma), held, metrics, convention, seed))
    return {m: float(np.nanmean([r[m] for r in rows])) if rows else math.nan for m in metrics}


# What a row of the table scores: (sample, its RGB image) -> saliency map or log density.
MapSource = Callable[[Sample, np.ndarray], "np.ndarray | LogDensity"]


def folder_predictions(folder: str | Path) -> MapSource:
    """Saved maps named `<stem>.png` (or .jpg, .npy) in `folder`, e.g. from `msinet predict`;
    an .npy log density (`msinet predict --format density`: its exp sums to 1) is scored as a
    density."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"predictions folder {folder} not found")

    def predict(sample: Sample, image: np.ndarray) -> np.ndarray:
        for suffix in (".png", ".jpg", ".jpeg", ".npy"):
            p = folder / f"{sample.name}{suffix}"
            if p.is_file():
                if suffix == ".npy":
                    a = np.load(p, allow_pickle=False).astype(np.float64)
                    is_density = a.ndim == 2 and abs(float(logsumexp(a))) < 1e-3
                    return LogDensity(a) if is_density else a
                return load_image(p)[..., 0].astype(np.float64) / 255.0
        raise FileNotFoundError(f"no saved map for {sample.name} in {folder}")

    return predict


def model_rows(pipeline: Pipeline, name: str) -> dict[str, MapSource]:
    """The model's map and, where its weights carry a density calibration, its density (row
    `<name> density`): one model run per image for both."""
    last: dict[str, object] = {}

    def run(sample: Sample, image: np.ndarray) -> tuple[np.ndarray, object]:
        if last.get("name") != sample.name:
            x, geometry = pipeline.prepare(image)
            last.update(name=sample.name, out=(pipeline.run([x])[0], geometry))
        return last["out"]  # type: ignore[return-value]

    rows: dict[str, MapSource] = {name: lambda s, im: pipeline.map_back(*run(s, im))}
    if pipeline.engine.meta.density is not None:
        rows[f"{name} density"] = lambda s, im: LogDensity(pipeline.density_back(*run(s, im)))
    return rows


def evaluate(
    samples: list[Sample],
    train: list[Sample],
    predictors: dict[str, MapSource],
    *,
    dataset: str = "",
    split: str = "",
    sigma: float = 24.0,
    metrics: Iterable[str] = METRICS,
    convention: str = "mit",
    baselines: bool = False,
    progress: bool = True,
    figure: str | Path | None = None,
    figure_images: int = 4,
) -> Report:
    """Score each predictor (and, with `baselines`, the centre biases, spectral residual and
    inter-observer agreement) on `samples`; centre biases are fitted on `train`."""
    from tqdm import tqdm

    metrics = list(metrics)
    if unknown := set(metrics) - set(METRICS):
        raise ValueError(f"unknown metrics {sorted(unknown)}; choose from {', '.join(METRICS)}")
    if not samples:
        raise ValueError(f"no images to evaluate: the {dataset or 'dataset'} {split or ''} "
                         "selection is empty (check --split, --limit and the folder)")  # fmt: skip
    notes = []
    if train:
        gaussian = GaussianCenterBias.fit(train)
        centre: CentreBias = EmpiricalCenterBias.fit(train)
    else:  # e.g. a folder of test images only: nothing to fit a centre bias on
        gaussian = centre = GaussianCenterBias()
        notes.append(f"no training images here to fit a centre bias on: the information-gain "
                     f"baseline is a fixed Gaussian centre bias (mean {gaussian.mean}, std "
                     f"{gaussian.std} of the image's height and width)")  # fmt: skip
    rows = dict(predictors)
    if baselines:
        rows["centre bias (Gaussian)"] = lambda s, im: gaussian(s.fixations.shape)
        if train:
            rows["centre bias (empirical)"] = lambda s, im: centre(s.fixations.shape)
        rows["spectral residual"] = lambda s, im: spectral_residual(im)
    build = GroundTruthBuilder(samples, sigma, centre)
    per_image: dict[str, list[dict[str, float]]] = {r: [] for r in rows}
    if baselines:
        per_image[INTER_OBSERVER] = []
    shown: list[tuple[Sample, np.ndarray, np.ndarray, np.ndarray]] = []  # for the figure
    first = next(iter(rows), None)
    for i, sample in enumerate(tqdm(samples, desc="evaluate", unit="img", disable=not progress)):
        gt = build(i)
        image = load_image(sample.image)
        for row, predict in rows.items():
            saliency = predict(sample, image)
            per_image[row].append(score_map(saliency, gt, metrics, convention, seed=i))
            if row == first and figure and len(shown) < figure_images:
                picture = np.exp(saliency.values) if isinstance(saliency, LogDensity) else saliency
                shown.append((sample, image, gt.density, picture))
        if baselines:
            per_image[INTER_OBSERVER].append(inter_observer(gt, metrics, convention, seed=i))
    if figure and shown:
        render_figure(shown, figure, first or "")
    return Report(dataset, split, convention, sigma, [s.name for s in samples], per_image, notes)
