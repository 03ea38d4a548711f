"""Conformal shifts cover at their nominal rates; the per-series transform inverts exactly and
finds the power and the season; the forecaster's quantiles come back in data units."""
from statistics import NormalDist

import numpy as np
import pytest
import torch

from lstmkit.tasks import forecast as fc
from lstmkit.tasks.forecast.conformal import conformal_rank
from lstmkit.tasks.forecast.transform import guerrero, has_season, seasonal_indices


def test_conformal_rank_is_the_finite_sample_one():
    assert conformal_rank(9, 0.9) == 9 and conformal_rank(9, 0.1) == 1
    assert conformal_rank(19, 0.75) == 15 and conformal_rank(19, 0.25) == 5
    assert conformal_rank(5, 0.95) == 5 and conformal_rank(5, 0.05) == 1     # clipped to the data


def test_conformal_offsets_cover_at_the_nominal_rate_on_average():
    """Over many calibration sets of 19 exchangeable residuals per step, the chance that a fresh
    residual falls below the median + offset is q (up to the step scales being estimated)."""
    rng = np.random.default_rng(0)
    levels = (0.05, 0.25, 0.5, 0.75, 0.95)
    truth = [NormalDist(0, 1), NormalDist(0.5, 3)]          # step 1, step 2: the second wider and biased
    below = np.zeros((2, len(levels)))
    reps = 2000
    for _ in range(reps):
        cal = np.stack([rng.normal(d.mean, d.stdev, 19) for d in truth], 1)
        off = fc.conformal_offsets(cal, levels)
        assert off.shape == (2, 5) and (off[:, 2] == 0).all()
        below += [[d.cdf(c) for c in row] for d, row in zip(truth, off)]
    pooled = below.mean(0) / reps
    for i, q in enumerate(levels):
        if q != 0.5:
            assert abs(pooled[i] - q) < 0.03, (q, pooled)          # the issue asks for 5 points


def test_conformal_offsets_grow_with_the_step_and_keep_an_asymmetry():
    scores = np.array([[1.0, 2.0, 1.0], [-1.0, -2.0, -1.0], [3.0, 6.0, 3.0]])
    off = fc.conformal_offsets(scores, (0.1, 0.5, 0.9))
    assert np.allclose(off[:, 1], 0)
    s = np.array([5 / 3, 10 / 3, 10 / 3])                   # step 3's mean |r| 5/3 is raised to step 2's
    pooled = np.sort((scores / s).ravel())                 # n = 9: ranks 1 and 9
    assert np.allclose(off[:, 0], s * pooled[0]) and np.allclose(off[:, 2], s * pooled[8])


def test_conformal_band_always_holds_the_median_when_the_residuals_lean_one_way():
    """Held-out residuals all positive (a trend the forecast missed): the lower offsets are
    clipped to 0 rather than rising above the median, which the sort would then have moved."""
    scores = np.random.default_rng(0).uniform(1.0, 3.0, (40, 4))
    off = fc.conformal_offsets(scores, (0.1, 0.25, 0.5, 0.75, 0.9))
    assert (off[:, :3] == 0).all() and (off[:, 3] > 0).all() and (off[:, 4] >= off[:, 3]).all()
    off = fc.conformal_offsets(-scores, (0.1, 0.5, 0.9))
    assert (off[:, 0] < 0).all() and (off[:, 1:] == 0).all()


def test_window_spread_is_the_mean_absolute_step_with_a_floor():
    z = np.array([[0.0, 1.0, 3.0], [5.0, 5.0, 5.0], [0.0, 2.0, 0.0]])
    assert np.allclose(fc.window_spread(z), [1.5, 0.1, 2.0])


@pytest.mark.parametrize("lam", [0.0, 0.5, 1.0])
def test_transform_inverts_exactly_with_the_season(lam):
    y = 50 + 20 * np.sin(np.arange(40)) + np.arange(40)
    tf = fc.SeriesTransform(lam, np.array([0.3, -0.1, -0.2]))
    u = tf.forward(y, start=5)
    assert np.allclose(tf.inverse(u, 5), y, rtol=1e-12)
    assert np.allclose(tf.inverse(np.stack([u, u + 0.1], 1), 5)[:, 0], y, rtol=1e-12)   # (H, Q) at once


def test_transform_chooses_log_for_a_growing_seasonal_amplitude_and_none_for_a_steady_one():
    t = np.arange(144)
    rng = np.random.default_rng(3)
    growing = 100 * np.exp(0.01 * t) * (1 + 0.25 * np.sin(2 * np.pi * t / 12)) * np.exp(rng.normal(0, 0.02, 144))
    steady = 50 + 8 * np.sin(2 * np.pi * t / 12) + 0.1 * t + rng.normal(0, 0.5, 144)
    assert guerrero(growing, 12) < 0.25 and guerrero(steady, 12) > 0.75
    g, s = fc.SeriesTransform.fit(growing, 12), fc.SeriesTransform.fit(steady, 12)
    assert g.lam == 0.0 and s.lam == 1.0
    assert np.allclose(s.season, 8 * np.sin(2 * np.pi * np.arange(12) / 12), atol=0.5)
    assert fc.SeriesTransform.fit(steady - 100, 12).lam == 1.0               # not positive: no power
    none = fc.SeriesTransform.fit(growing, 12, mode="none")
    assert none.lam == 1.0 and not none.season.any()
    with pytest.raises(ValueError, match="--transform"):
        fc.SeriesTransform.fit(growing, 12, mode="log")


def test_season_test_and_indices():
    rng = np.random.default_rng(4)
    pattern = np.array([2.0, -1.0, 0.5, -1.5])
    y = np.tile(pattern, 15) + 0.2 * np.arange(60)
    assert has_season(y + rng.normal(0, 0.3, 60), 4)
    assert not has_season(rng.normal(0, 1, 200), 4)
    assert np.allclose(seasonal_indices(y, 4), pattern - pattern.mean(), atol=1e-9)


def test_forecaster_quantiles_are_in_data_units_and_ordered():
    t = np.arange(120)
    y = 100 * np.exp(0.01 * t) * (1 + 0.25 * np.sin(2 * np.pi * t / 12))
    data = fc.SeriesSet("y", ["a"], [np.arange(120)], [y], [np.zeros((120, 0))], season=12)
    cfg = fc.ForecastConfig(horizon=6, window=24, hidden=8, steps=30, backtest_windows=1, ensemble=2,
                            transform="auto")
    model = fc.Forecaster(cfg).fit(data, progress=False)
    assert model.transforms[0].lam == 0.0 and model.transforms[0].season.any() and len(model.nets) == 2
    q = model.predict(data)
    assert q.shape == (1, 6, len(cfg.quantiles)) and (np.diff(q, axis=-1) >= 0).all()
    assert (q > 0).all() and np.all(np.abs(q[0, :, 3] / y[-12:-6] - 1) < 0.5)    # the median near last season
    with pytest.raises(ValueError, match="--ensemble"):
        fc.ForecastConfig(horizon=6, ensemble=0)


def test_each_member_reads_the_last_fraction_of_the_window_and_sees_nothing_before_it():
    """window_fractions (1, 0.5): member 1 reads the last 12 of 24 steps, so changing the
    first 12 steps of its input moves member 0's forecast and not member 1's."""
    y = 10 + np.sin(np.arange(120) / 3.0)
    data = fc.SeriesSet("y", ["a"], [np.arange(120)], [y], [np.zeros((120, 0))], season=1)
    cfg = fc.ForecastConfig(horizon=6, window=24, hidden=8, steps=10, eval_every=5, ensemble=2,
                            window_fractions=(1.0, 0.5), transform="none")
    model = fc.Forecaster(cfg).fit(data, progress=False)
    assert [net.window for net in model.nets] == [24, 12]
    x = torch.tensor(model._windows(data, 0, 120, [120])[0], dtype=torch.float32)
    far = x.clone()
    far[:, :12, 0] += 5.0
    both, nets = model._net_quantiles(x), model.nets
    model.nets = [nets[1]]
    np.testing.assert_array_equal(model._net_quantiles(x), model._net_quantiles(far))
    model.nets = [nets[0]]
    assert not np.allclose(model._net_quantiles(x), model._net_quantiles(far))
    model.nets = nets
    alone = [np.sort(net(x[:, 24 - net.window:]).detach().double().numpy(), axis=-1) for net in model.nets]
    np.testing.assert_allclose(both, np.mean(alone, axis=0), rtol=1e-12)
    with pytest.raises(ValueError, match=r"window_fractions: expected numbers in \(0, 1\], got \(1.0, 0.0\)"):
        fc.ForecastConfig(horizon=6, window_fractions=(1.0, 0.0))
