"""Metrics on hand-computed cases (the arithmetic is in the comments) and degenerate inputs."""

import numpy as np
import pytest

from msinet.evaluation import metrics


def fixmap(shape, points):
    f = np.zeros(shape, bool)
    for r, c in points:
        f[r, c] = True
    return f


def test_auc_judd_hand_computed():
    # minmax -> [0, 1/3, 2/3, 1]; fixated 1 and 1/3. Thresholds 1, 1/3:
    # t=1: tp 1/2, fp (1-1)/2 = 0; t=1/3: tp 1, fp (3-2)/2 = 1/2.
    # ROC (0,0) (0,.5) (.5,1) (1,1): area .5*(.5+1)/2 + .5*1 = 0.875
    s = np.array([[0.0, 1.0], [2.0, 3.0]])
    f = fixmap((2, 2), [(1, 1), (0, 1)])
    assert metrics.auc_judd(s, f, jitter=False) == pytest.approx(0.875)


def test_constant_map_scores_chance():
    rng = np.random.default_rng(0)
    f = fixmap((100, 100), [tuple(p) for p in rng.integers(0, 100, (200, 2))])
    flat = np.full((100, 100), 0.3)
    assert metrics.auc_judd(flat, f) == pytest.approx(0.5, abs=0.05)  # jitter breaks ties at random
    assert metrics.auc_borji(flat, f) == pytest.approx(0.5, abs=1e-9)  # every threshold passes all
    assert metrics.nss(flat, f) == 0.0
    assert metrics.cc(flat, rng.random((100, 100))) == 0.0


def test_auc_degenerate_cases():
    s = np.arange(16.0).reshape(4, 4)
    assert np.isnan(metrics.auc_judd(s, np.zeros((4, 4))))  # no fixations
    assert np.isnan(metrics.auc_judd(s, np.ones((4, 4))))  # all pixels fixated: no negatives
    one = fixmap((4, 4), [(3, 3)])
    assert metrics.auc_judd(s, one, jitter=False) == pytest.approx(1.0)  # the top pixel alone
    assert np.isnan(metrics.auc_borji(s, one))  # <= 1 fixation
    assert np.isnan(metrics.auc_shuffled(s, one, np.zeros((4, 4))))  # no other fixations


def test_auc_borji_perfect_and_shuffled_hand_computed():
    s = np.zeros((10, 10))
    s[0, :5] = 1.0
    f = fixmap((10, 10), [(0, c) for c in range(5)])
    # all fixations at 1, other-image fixations all at 0: thresholds 1.0..0.0:
    # fp 0 until t=0 where tp=fp=1 -> area 1
    other = fixmap((10, 10), [(5, 5), (6, 6), (7, 7)])
    assert metrics.auc_shuffled(s, f, other) == pytest.approx(1.0)
    # other images fixated the same places: tp == fp at every threshold -> 0.5
    assert metrics.auc_shuffled(s, f, f) == pytest.approx(0.5)


def test_roc_auc_exact_with_ties():
    # pairs (1,0)=1, (1,1)=.5, (2,0)=1, (2,1)=1 -> 3.5 / 4
    assert metrics.roc_auc([1.0, 2.0], [0.0, 1.0]) == 0.875


def test_nss_hand_computed():
    # mean 1; sample std sqrt((1+1+1+9)/3) = 2 -> (4-1)/2 = 1.5
    s = np.array([[0.0, 0.0], [0.0, 4.0]])
    assert metrics.nss(s, fixmap((2, 2), [(1, 1)])) == pytest.approx(1.5)
    # per fixation with population std sqrt(3): the pixel fixated twice counts twice
    xs, ys = np.array([1.0, 1.0, 0.0]), np.array([1.0, 1.0, 0.0])
    expected = (3 / np.sqrt(3) * 2 + (-1 / np.sqrt(3))) / 3
    assert metrics.pysaliency_nss(s, xs, ys) == pytest.approx(expected)


def test_cc_known_answers():
    d = np.random.default_rng(1).random((20, 30))
    assert metrics.cc(d, d) == pytest.approx(1.0)
    assert metrics.cc(2 * d + 3, d) == pytest.approx(1.0)
    assert metrics.cc(-d, d) == pytest.approx(-1.0)


def test_kld_hand_computed():
    # p = [.5, .5, 0, 0], q = [.25] * 4: 2 * .5 * log(.5/.25) = log 2
    d = np.array([[1.0, 1.0], [0.0, 0.0]])
    assert metrics.kld(np.ones((2, 2)), d) == pytest.approx(np.log(2), abs=1e-9)
    assert metrics.kld(d, d) == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(metrics.MetricError, match="non-negative"):
        metrics.kld(d - 5, d)
    # pysaliency shifts a negative map to 0 first: d - 5 -> d
    assert metrics.pysaliency_kld(d - 5, d) == pytest.approx(0.0, abs=1e-9)


def test_sim_hand_computed():
    # [0,1,2,3] -> /6 after min-max: [0, 1/6, 1/3, 1/2]; reversed for d; sum of minima 1/3
    s = np.array([[0.0, 1.0], [2.0, 3.0]])
    d = s[::-1, ::-1].copy()
    assert metrics.sim(s, d) == pytest.approx(1 / 3)
    assert metrics.sim(d, d) == pytest.approx(1.0)
    # pysaliency: no min-max: [0,1,2,3]/6 vs [3,2,1,0]/6 -> (0+1+1+0)/6
    assert metrics.pysaliency_sim(s, d) == pytest.approx(1 / 3)
    assert metrics.pysaliency_sim(s + 1, d + 1) == pytest.approx((1 + 2 + 2 + 1) / 10)
    assert metrics.sim(s + 1, d + 1) == pytest.approx(1 / 3)  # min-max removes the offset


def test_information_gain_hand_computed():
    # p = [0,0,0,1]; baseline [1,2,3,4] -> [0,1/6,1/3,1/2]; at the fixation log2(1) - log2(1/2)
    s = np.array([[0.0, 0.0], [0.0, 1.0]])
    b = np.array([[1.0, 2.0], [3.0, 4.0]])
    assert metrics.information_gain(s, fixmap((2, 2), [(1, 1)]), b) == pytest.approx(1.0)
    assert metrics.information_gain(b, fixmap((2, 2), [(1, 1)]), b) == pytest.approx(0.0)
    assert metrics.pysaliency_information_gain(b, [1.0], [1.0], b) == pytest.approx(0.0)


def test_emd_shift_and_identity():
    # a Gaussian blob predicted 160 px (5 downscaled pixels) to the right moves all its mass
    # 5 pixels; the same blob costs (almost) nothing: histogram matching is not exactly lossless.
    yy, xx = np.mgrid[:320, :480]

    def blob(cx):
        return np.exp(-((yy - 160) ** 2 + (xx - cx) ** 2) / (2 * 30.0**2))

    assert metrics.emd(blob(320), blob(160), hist_match=False) == pytest.approx(5.0, abs=1e-6)
    assert metrics.emd(blob(160), blob(160), hist_match=False) == pytest.approx(0.0, abs=1e-9)
    # the MIT histogram matching (256 bins) perturbs the prediction a little
    assert metrics.emd(blob(320), blob(160)) == pytest.approx(5.0, abs=0.25)
    assert metrics.emd(blob(160), blob(160)) < 0.25


@pytest.mark.parametrize(
    "fn",
    [
        lambda s, f, d: metrics.auc_judd(s, f),
        lambda s, f, d: metrics.nss(s, f),
        lambda s, f, d: metrics.cc(s, d),
        lambda s, f, d: metrics.kld(s, d),
        lambda s, f, d: metrics.sim(s, d),
        lambda s, f, d: metrics.emd(s, d),
    ],
)
def test_nan_or_inf_in_the_map_is_a_clear_error(fn):
    f = fixmap((8, 8), [(2, 2)])
    d = f.astype(float)
    for bad in (np.nan, np.inf):
        s = np.ones((8, 8))
        s[0, 0] = bad
        with pytest.raises(metrics.MetricError, match="NaN or inf"):
            fn(s, f, d)


def test_mismatched_sizes_are_resized_like_the_benchmark():
    d = np.zeros((60, 80))
    d[20:40, 30:50] = 1.0
    small = metrics.imresize(d, (30, 40))
    assert small.shape == (30, 40)
    assert metrics.cc(small, d) > 0.95
    with pytest.raises(metrics.MetricError, match="differs"):
        metrics.auc_shuffled(d, d > 0, np.zeros((10, 10)))
    with pytest.raises(metrics.MetricError, match="2-D"):
        metrics.nss(np.ones(5), d > 0)
