"""Parity with pysaliency on real OSIE images where the conventions coincide."""

import numpy as np
import pytest

from msinet.data.osie import OSIE
from msinet.evaluation import metrics
from msinet.evaluation.baselines import spectral_residual
from msinet.imaging.decode import load_image

pysaliency = pytest.importorskip("pysaliency")
if not hasattr(np, "trapz"):
    # pysaliency 0.2.22's ROC still calls np.trapz, removed in NumPy 2.4; it is np.trapezoid.
    np.trapz = np.trapezoid

from pysaliency import metrics as P  # noqa: E402


@pytest.fixture(scope="module")
def cases(osie_root):
    samples = OSIE(osie_root).samples("val")[:4]
    out = []
    for s in samples:
        image = load_image(s.image)
        out.append((spectral_residual(image), s.fixations, s.fixations.density(24)))
    return out


def test_nss_per_fixation(cases):
    for sal, fix, _ in cases:
        ref = P.NSS(sal, fix.xs.astype(int), fix.ys.astype(int)).mean()
        assert metrics.pysaliency_nss(sal, fix.xs, fix.ys) == pytest.approx(ref, abs=1e-6)


def test_cc_sim_kld(cases):
    for sal, _, den in cases:
        assert metrics.cc(sal, den) == pytest.approx(P.CC(sal, den), abs=1e-6)
        assert metrics.pysaliency_sim(sal, den) == pytest.approx(P.SIM(sal, den), abs=1e-6)
        assert metrics.pysaliency_kld(sal, den) == pytest.approx(P.MIT_KLDiv(sal, den), abs=1e-6)
        # on non-negative maps the MIT KLD is the same number
        assert metrics.kld(sal, den) == pytest.approx(P.MIT_KLDiv(sal, den), abs=1e-6)


class SavedMaps(pysaliency.SaliencyMapModel):
    """Our maps, handed to pysaliency's own model-level metrics."""

    def __init__(self, maps):
        super().__init__(caching=False)
        self.maps = maps

    def _saliency_map(self, stimulus):
        return next(m for m in self.maps if m.shape == stimulus.shape[:2] and
                    np.array_equal(m[:2, :2], stimulus[:2, :2, 0]))  # fmt: skip


def test_auc_and_shuffled_auc_against_pysaliency_models(cases):
    """pysaliency's own AUC (uniform non-fixations: all pixels) and sAUC (non-fixations: the
    other images' fixations), per image, through its SaliencyMapModel API."""
    maps = [sal.astype(np.float64) for sal, _, _ in cases]
    # the stimulus carries its map in its first channel so the model finds it
    stimuli = pysaliency.Stimuli([np.dstack([m, m, m]) for m in maps])
    xs = np.concatenate([fix.xs for _, fix, _ in cases])
    ys = np.concatenate([fix.ys for _, fix, _ in cases])
    ns = np.concatenate([np.full(len(fix.xs), k) for k, (_, fix, _) in enumerate(cases)])
    fixations = pysaliency.Fixations.create_without_history(xs, ys, ns)
    model = SavedMaps(maps)
    auc = model.AUC_per_image(stimuli, fixations, nonfixations="uniform")
    sauc = model.AUC_per_image(stimuli, fixations, nonfixations="shuffled")
    for k, (sal, fix, _) in enumerate(cases):
        assert metrics.pysaliency_auc(sal, fix.xs, fix.ys) == pytest.approx(auc[k], abs=1e-6)
        others = [c[1] for j, c in enumerate(cases) if j != k]
        ox = np.concatenate([o.xs for o in others])
        oy = np.concatenate([o.ys for o in others])
        ours = metrics.pysaliency_sauc(sal, fix.xs, fix.ys, ox, oy)
        assert ours == pytest.approx(sauc[k], abs=1e-6)
