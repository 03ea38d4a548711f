"""Metrics by hand, the naive baselines and their intervals, auto-ETS and Theta."""
import math
from statistics import NormalDist

import numpy as np
import pytest

from lstmkit.tasks import forecast as fc


# ---- metrics, baselines, coverage ------------------------------------------------
def test_metrics_match_hand_computed_values():
    y, f = np.array([1.0, 2.0, 4.0, 0.0]), np.array([2.0, 2.0, 1.0, 0.0])
    assert fc.mae(y, f) == pytest.approx((1 + 0 + 3 + 0) / 4)
    assert fc.rmse(y, f) == pytest.approx(math.sqrt((1 + 0 + 9 + 0) / 4))
    assert fc.smape(y, f) == pytest.approx((200 * 1 / 3 + 0 + 200 * 3 / 5 + 0) / 4)
    assert fc.mase(y, f, 2.0) == pytest.approx(1.0 / 2)
    hist = np.array([1.0, 3.0, 2.0, 6.0, 4.0])          # m = 2: |2-1|, |6-3|, |4-2| -> 2
    assert fc.mase_scale(hist, 2) == pytest.approx(2.0)
    assert fc.mase_scale(hist, 1) == pytest.approx((2 + 1 + 4 + 2) / 4)
    assert fc.pinball(np.array([3.0]), np.array([1.0]), 0.9) == pytest.approx(1.8)
    assert fc.pinball(np.array([1.0]), np.array([3.0]), 0.9) == pytest.approx(0.2)


def test_coverage_counts_the_band_inclusively():
    y = np.array([0.0, 1.0, 2.0, 3.0, 5.0])
    lo, hi = np.array([0.0, 1.5, 1.0, 3.5, 0.0]), np.array([1.0, 2.0, 2.0, 4.0, 4.0])
    assert fc.coverage(y, lo, hi) == pytest.approx(2 / 5)


def test_scaled_quantile_loss_and_band_coverage_by_hand():
    y = np.array([1.0, 4.0])
    q = np.array([[0.0, 1.0, 2.0], [1.0, 2.0, 3.0]])          # levels 0.1, 0.5, 0.9
    levels = (0.1, 0.5, 0.9)
    # y=1: pinball 0.1*1, 0, 0.1*1 ; y=4: 0.1*3, 0.5*2, 0.9*1 -> doubled, / scale 2, mean of 6
    expect = 2 * (0.1 + 0 + 0.1 + 0.3 + 1.0 + 0.9) / 2 / 6
    assert fc.sql(y, q, levels, np.array([2.0, 2.0])) == pytest.approx(expect)
    assert fc.sql(y, q[:, 1:2], (0.5,), np.ones(2)) == pytest.approx(fc.mase(y, q[:, 1], 1.0))   # median: MASE
    assert fc.band_coverage(y, q, levels) == {"0.80": 0.5}
    assert fc.calibration(y, q) == [0.0, 0.5, 0.5]


def test_naive_baselines_points_and_interval_widths():
    pattern = np.array([3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0])
    y = np.tile(pattern, 10) + 0.5 * np.arange(70)                # trend + season 7
    levels = (0.1, 0.5, 0.9)
    nv = fc.naive(y, 3, levels)
    assert np.array_equal(nv.point, [y[-1]] * 3) and np.array_equal(nv.quantiles[:, 1], nv.point)
    sd1 = np.sqrt(np.mean(np.diff(y) ** 2))
    z = NormalDist().inv_cdf(0.9)
    assert np.allclose(nv.quantiles[:, 2] - nv.point, z * sd1 * np.sqrt([1, 2, 3]))
    sn = fc.seasonal_naive(y, 10, 7, levels)
    assert np.array_equal(sn.point, np.r_[y[-7:], y[-7:-4]])
    assert np.allclose(sn.quantiles[:, 2] - sn.point, z * 3.5 * np.sqrt([1] * 7 + [2] * 3))   # every y_t − y_{t−7} = 3.5
    assert np.array_equal(fc.seasonal_naive(y, 5, 1).point, fc.naive(y, 5).point)


def test_auto_ets_forms_follow_r_restrictions():
    pos, neg = np.linspace(1, 2, 60), np.linspace(-1, 1, 60)
    assert len(fc.ets_forms(pos, 12)) == 15 and len(fc.ets_forms(neg, 12)) == 6
    assert len(fc.ets_forms(pos, 1)) == 6 and len(fc.ets_forms(neg, 1)) == 3
    assert len(fc.ets_forms(pos[:20], 12)) == 6                   # fewer than two seasons + 2 points: no season
    assert not [f for f in fc.ets_forms(pos, 12) if f[0] == "add" and f[3] == "mul"]


def test_auto_ets_recovers_an_additive_season_and_trend():
    pattern = np.array([3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0])
    y = np.tile(pattern, 10) + 0.5 * np.arange(70) + np.random.default_rng(0).normal(0, 0.05, 70)
    truth = np.tile(pattern, 12)[70:80] + 0.5 * np.arange(70, 80)
    fcst, form = fc.ets(y - 20, 10, 7, (0.1, 0.5, 0.9))           # not positive: additive forms only
    assert form[1] == "add" and form[3] == "add"
    assert np.abs(fcst.point + 20 - truth).max() < 0.6
    assert (np.diff(fcst.quantiles, axis=1) > 0).all()


def test_auto_ets_picks_a_multiplicative_season_when_amplitude_grows_with_level():
    t = np.arange(120)
    rng = np.random.default_rng(1)
    y = 100 * np.exp(0.01 * t) * (1 + 0.3 * np.sin(2 * np.pi * t / 12)) * np.exp(rng.normal(0, 0.02, 120))
    fcst, form = fc.ets(y, 12, 12, (0.05, 0.5, 0.95))
    assert form[3] == "mul"
    truth = 100 * np.exp(0.01 * (t[-1] + 1 + np.arange(12))) * (1 + 0.3 * np.sin(2 * np.pi * (t[-1] + 1 + np.arange(12)) / 12))
    assert np.mean(np.abs(fcst.point - truth) / truth) < 0.05
    assert ((fcst.quantiles[:, 0] < truth) & (truth < fcst.quantiles[:, 2])).mean() >= 0.9


def test_theta_adds_half_the_trend_to_ses_and_gives_widening_bands():
    y = 10 + 2.0 * np.arange(80) + np.random.default_rng(2).normal(0, 1, 80)
    f = fc.theta(y, 6, 1, (0.1, 0.5, 0.9))
    assert np.allclose(f.quantiles[:, 1], f.point)
    assert np.allclose(np.diff(f.point), 1.0, atol=0.05)          # the theta = 2 line: half the slope b0 = 2
    assert abs(f.point[0] - y[-1]) < 4
    width = f.quantiles[:, 2] - f.quantiles[:, 0]
    assert (np.diff(width) > 0).all()
