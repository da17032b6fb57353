"""msinet as a pysaliency model (`pip install msinet[pysaliency]`).

`MSINetModel` is a `pysaliency.Model` whose `_log_density` is msinet's calibrated fixation
density, so pysaliency's own functions score it (log-likelihood, information gain, AUC, ...);
`CentreBiasModel` is the centre bias `msinet evaluate` measures information gain against::

    from msinet.integrations.pysaliency import CentreBiasModel, MSINetModel, to_pysaliency
    stimuli, fixations = to_pysaliency(val_samples)
    baseline = CentreBiasModel.fit(train_samples)
    # msinet evaluate's IG of the density row, with --convention pysaliency:
    MSINetModel().information_gain(stimuli, fixations, baseline, average="image")
"""

from __future__ import annotations

import numpy as np
import pysaliency

from msinet.data import Sample
from msinet.density import DensityError
from msinet.evaluation.baselines import EmpiricalCenterBias
from msinet.pipeline import Pipeline, load


class MSINetModel(pysaliency.Model):
    """msinet's calibrated density (default: the shipped model) for any stimulus."""

    def __init__(self, pipeline: Pipeline | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.pipeline = pipeline if pipeline is not None else load()
        if self.pipeline.engine.meta.density is None:
            raise DensityError("these weights carry no density calibration (msinet calibrate)")

    def _log_density(self, stimulus: np.ndarray) -> np.ndarray:
        return self.pipeline.log_density(np.asarray(stimulus)).astype(np.float64)


class CentreBiasModel(pysaliency.Model):
    """The empirical centre bias of a set of training images, as `msinet evaluate` fits it."""

    def __init__(self, centre_bias: EmpiricalCenterBias, **kwargs) -> None:
        super().__init__(**kwargs)
        self.centre_bias = centre_bias

    @classmethod
    def fit(cls, train: list[Sample], **kwargs) -> CentreBiasModel:
        return cls(EmpiricalCenterBias.fit(train), **kwargs)

    def _log_density(self, stimulus: np.ndarray) -> np.ndarray:
        return self.centre_bias.log_density(np.shape(stimulus)[:2])


def to_pysaliency(samples: list[Sample]) -> tuple[pysaliency.FileStimuli, pysaliency.Fixations]:
    """msinet dataset samples as pysaliency stimuli (files) and fixations (one per point, `n`
    the image's index, `subject` the observer)."""
    stimuli = pysaliency.FileStimuli([str(s.image) for s in samples])
    f = [s.fixations for s in samples]
    fixations = pysaliency.Fixations.create_without_history(
        np.concatenate([x.xs for x in f]),
        np.concatenate([x.ys for x in f]),
        np.concatenate([np.full(len(x), i) for i, x in enumerate(f)]),
        subjects=np.concatenate([x.subjects for x in f]),
    )
    return stimuli, fixations
