"""Parity with pysaliency on real OSIE images where the conventions coincide."""

import numpy as np
import pytest

from msinet import metrics as M
from msinet.baselines import spectral_residual
from msinet.data.osie import OSIE
from msinet.image import load_image

pysaliency = pytest.importorskip("pysaliency")
if not hasattr(np, "trapz"):
    # pysaliency 0.2.22's ROC still calls np.trapz, removed in NumPy 2.4; it is np.trapezoid.
    np.trapz = np.trapezoid

from pysaliency import metrics as P  # noqa: E402
from pysaliency.roc import general_roc  # noqa: E402


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
        assert M.pysaliency_nss(sal, fix.xs, fix.ys) == pytest.approx(ref, abs=1e-6)


def test_cc_sim_kld(cases):
    for sal, _, den in cases:
        assert M.cc(sal, den) == pytest.approx(P.CC(sal, den), abs=1e-6)
        assert M.pysaliency_sim(sal, den) == pytest.approx(P.SIM(sal, den), abs=1e-6)
        assert M.pysaliency_kld(sal, den) == pytest.approx(P.MIT_KLDiv(sal, den), abs=1e-6)
        # on non-negative maps the MIT KLD is the same number
        assert M.kld(sal, den) == pytest.approx(P.MIT_KLDiv(sal, den), abs=1e-6)


def test_auc_all_pixels_and_shuffled(cases):
    for k, (sal, fix, _) in enumerate(cases):
        pos = sal[fix.ys.astype(int), fix.xs.astype(int)]
        ref, _, _ = general_roc(pos.astype(float), sal.ravel().astype(float))
        assert M.pysaliency_auc(sal, fix.xs, fix.ys) == pytest.approx(ref, abs=1e-6)
        other = cases[(k + 1) % len(cases)][1]
        neg = sal[other.ys.astype(int), other.xs.astype(int)]
        ref, _, _ = general_roc(pos.astype(float), neg.astype(float))
        assert M.pysaliency_sauc(sal, fix.xs, fix.ys, other.xs, other.ys) == pytest.approx(
            ref, abs=1e-6
        )
