"""transform "ets" (ets_norm.py): the network sees and predicts the series relative to its own
auto-ETS fit, so that a network output of 0 (or a shrink weight of 0) is auto-ETS's point
forecast, damped trend and season included, and the windows map back to the data exactly."""
import numpy as np
import pytest

from lstmkit.tasks import forecast as fc
from lstmkit.tasks.forecast.ets_norm import EtsNormal
from lstmkit.tasks.forecast.fit import MIXES, best_mix, cross_mix

TINY = dict(hidden=4, steps=4, eval_every=2, transform="ets")


def _set(values, season):
    return fc.SeriesSet("y", ["s0"], [np.arange(len(values))], [values], [np.zeros((len(values), 0))], season=season)


def _seasonal(n, m=12, seed=0):
    """Positive, trending, with a season that grows with the level (multiplicative)."""
    t = np.arange(n)
    rng = np.random.default_rng(seed)
    return (100 + 2 * t) * (1 + 0.2 * np.sin(2 * np.pi * t / m)) * np.exp(rng.normal(0, 0.02, n))


@pytest.mark.parametrize("form, shift", [(("mul", "add", True, "mul"), 0.0), (("add", "add", True, "add"), -300.0),
                                         (("add", None, False, None), -300.0)])
def test_the_reference_after_an_origin_is_the_ets_point_forecast(form, shift):
    """r_{o,h} from the states at o − 1 equals statsmodels' forecast of the same fit (log form
    for the multiplicative one, differences for the additive ones on a series below zero)."""
    y = _seasonal(96) + shift
    e, H = 84, 14                           # H > m: the season wraps
    tf = EtsNormal.fit(y[:e], 12, [form])
    assert tf.form == form and tf.log == (form[0] == "mul")
    point = fc.ets(y[:e], H, 12, forms=[form])[0].point
    past, future = tf.references(y[:e], np.array([e]), 36, H)
    np.testing.assert_allclose(tf.inverse(future[0]), point, rtol=1e-10)
    assert past.shape == (1, 36)


def test_a_network_that_outputs_zero_forecasts_auto_ets_and_windows_map_back_exactly():
    y = _seasonal(120)
    data, H = _set(y, 12), 6
    form = ("mul", "add", True, "mul")
    model = fc.Forecaster(fc.ForecastConfig(horizon=H, **TINY)).fit(data, progress=False, forms=[form])
    assert model.transforms[0].form == form and model.mix.shape == (1,)
    assert model.mix[0] in {(a + b) / 2 for a in MIXES for b in MIXES}     # the mean of the halves' choices
    net = model.nets[0]
    for p in (net.head.weight, net.head.bias, net.highway.weight):
        p.data.zero_()
    point = fc.ets(y, H, 12, forms=[form])[0].point
    q = model.predict(data)[0]
    np.testing.assert_allclose(q[:, model.cfg.quantiles.index(0.5)], point, rtol=1e-9)
    assert (np.diff(q, axis=1) >= 0).all() and (q[:, 0] < q[:, -1]).all()      # a band around it
    _, targets = model._windows(data, 0, 120, [110])                           # the training target's round trip
    np.testing.assert_allclose(model._to_data(data, 0, targets[0][:, None], 110)[:, 0], y[110:116], rtol=1e-12)


def test_mix_zero_is_auto_ets_whatever_the_network_says():
    y = _seasonal(120, seed=1)
    data, form = _set(y, 12), ("mul", "add", True, "mul")
    model = fc.Forecaster(fc.ForecastConfig(horizon=6, **TINY)).fit(data, progress=False, forms=[form])
    model.set_mix(0.0)
    mid = model.cfg.quantiles.index(0.5)
    np.testing.assert_allclose(model.predict(data)[0, :, mid], fc.ets(y, 6, 12, forms=[form])[0].point, rtol=1e-9)
    y_held, median, unit, _ = model.held
    assert np.array_equal(model.scores, y_held / unit[:, None])               # residuals of the ETS forecast itself
    model.set_mix(1.0)
    assert not np.allclose(model.predict(data)[0, :, mid], fc.ets(y, 6, 12, forms=[form])[0].point, rtol=1e-9)


def test_the_other_transforms_refuse_a_mix_and_the_config_names_ets():
    model = fc.Forecaster(fc.ForecastConfig(horizon=6, hidden=4, steps=2, eval_every=1, transform="auto"))
    model.transforms = [None]
    model.held = (np.zeros((2, 6)), np.zeros((2, 6)), np.ones(2), np.zeros(2, dtype=int))
    with pytest.raises(ValueError, match=r"mix: expected 1.0 unless transform is 'ets', got \[0.5\]"):
        model.set_mix(0.5)
    with pytest.raises(ValueError, match=r"--transform: expected one of auto, none, ets, got 'holt'"):
        fc.ForecastConfig(horizon=6, transform="holt")


def test_best_mix_takes_the_weight_with_the_lowest_held_out_error_and_the_larger_on_a_tie():
    median = np.ones((3, 4))
    assert best_mix(0.5 * median, median) == 0.5
    assert best_mix(np.zeros((3, 4)), median) == 0.0
    assert best_mix(2.0 * median, median) == 1.0
    assert best_mix(np.zeros((3, 4)), np.zeros((3, 4))) == 1.0          # every weight ties: the network's own


def test_the_weight_is_the_mean_of_the_halves_choices_and_each_half_is_scored_under_the_other_s():
    median = np.ones((6, 2))
    y = np.concatenate([np.zeros((3, 2)), np.ones((3, 2))])             # the early half says 0, the late half 1
    whole, row = cross_mix(y, median)
    assert best_mix(y[:3], median[:3]) == 0.0 and best_mix(y[3:], median[3:]) == 1.0
    assert whole == 0.5
    np.testing.assert_array_equal(row, [1, 1, 1, 0, 0, 0])
    whole, row = cross_mix(np.concatenate([y[3:], y[3:]]), median)      # both halves agree: their weight
    assert whole == 1.0 and row.tolist() == [1.0] * 6
    whole, row = cross_mix(y[:1], median[:1])                          # one forecast: its own weight
    assert whole == 0.0 and row.tolist() == [0.0]


def test_a_global_model_chooses_each_series_weight_on_its_own_held_out_forecasts():
    """Two series in one model: mix_k is cross_mix over series k's held-out rows, the scores are
    each row's residual under its own series' weight, and predict applies mix_k to series k."""
    ys = [_seasonal(120, seed=2), _seasonal(120, seed=3)[::-1].copy()]
    data = fc.SeriesSet("y", ["a", "b"], [np.arange(120)] * 2, ys, [np.zeros((120, 0))] * 2, season=12)
    forms = [("mul", "add", True, "mul")] * 2
    model = fc.Forecaster(fc.ForecastConfig(horizon=6, **TINY)).fit(data, progress=False, forms=forms)
    y, median, unit, series = model.held
    assert set(series) == {0, 1} and model.mix.shape == (2,)
    row = np.zeros(len(y))
    for k in (0, 1):
        assert model.mix[k] == cross_mix(y[series == k], median[series == k])[0]
        row[series == k] = cross_mix(y[series == k], median[series == k])[1]
    np.testing.assert_array_equal(model.scores, (y - row[:, None] * median) / unit[:, None])
    model.set_mix([0.0, 1.0])
    np.testing.assert_array_equal(model.scores, (y - (series == 1)[:, None] * median) / unit[:, None])
    mid = model.cfg.quantiles.index(0.5)
    q = model.predict(data)
    np.testing.assert_allclose(q[0, :, mid], fc.ets(ys[0], 6, 12, forms=[forms[0]])[0].point, rtol=1e-9)
    assert not np.allclose(q[1, :, mid], fc.ets(ys[1], 6, 12, forms=[forms[1]])[0].point, rtol=1e-9)
    with pytest.raises(ValueError, match=r"mix: expected a number or one weight per series \(2\), got \[0.0, 0.5, 1.0\]"):
        model.set_mix([0.0, 0.5, 1.0])


@pytest.mark.parametrize("form", [("add", "add", True, "add"), ("mul", "add", False, "mul")])
def test_ets_normal_quantiles_are_auto_ets_s_own_band_with_the_parameters_kept(form):
    """Fitted on the same history, EtsNormal's model-based quantiles (its parameters fixed,
    statsmodels' smooth) are the yardstick's (its parameters just estimated): exact Gaussian for
    the linear form, the same seeded simulated paths for the multiplicative one."""
    y, H, levels = _seasonal(96), 8, (0.05, 0.25, 0.5, 0.75, 0.95)
    tf = EtsNormal.fit(y, 12, [form])
    q = tf.quantiles(y, H, levels)
    np.testing.assert_allclose(q, fc.ets(y, H, 12, levels, forms=[form])[0].quantiles, rtol=1e-6)
    assert q.shape == (H, len(levels)) and (np.diff(q, axis=1) >= 0).all()
    assert EtsNormal(None, None, False, 12, 1.0, 0.0).quantiles(y, H, levels) is None


def test_the_envelope_widens_each_band_to_hold_auto_ets_s_band_around_the_same_median():
    y = _seasonal(120, seed=4)
    data, form = _set(y, 12), ("mul", "add", True, "mul")
    model = fc.Forecaster(fc.ForecastConfig(horizon=6, envelope=False, **TINY)).fit(data, progress=False, forms=[form])
    conf = model.predict(data)[0]
    model.cfg = fc.ForecastConfig(horizon=6, envelope=True, **TINY)
    env = model.predict(data)[0]
    levels = np.array(model.cfg.quantiles)
    mid = list(levels).index(0.5)
    e = model.transforms[0].quantiles(y, 6, model.cfg.quantiles)
    moved = e - e[:, mid:mid + 1] + conf[:, mid:mid + 1]
    np.testing.assert_array_equal(env[:, mid], conf[:, mid])                   # the point forecast is untouched
    np.testing.assert_allclose(env[:, levels < 0.5], np.minimum(conf, moved)[:, levels < 0.5], rtol=1e-12)
    np.testing.assert_allclose(env[:, levels > 0.5], np.maximum(conf, moved)[:, levels > 0.5], rtol=1e-12)
    assert (env[:, 0] <= conf[:, 0]).all() and (env[:, -1] >= conf[:, -1]).all()
    assert (env != conf).any()                                                 # it did widen a band here


def test_without_an_ets_fit_the_envelope_leaves_the_conformal_band():
    y = _seasonal(120, seed=5)
    cfg = dict(horizon=6, hidden=4, steps=4, eval_every=2, transform="auto")
    model = fc.Forecaster(fc.ForecastConfig(envelope=False, **cfg)).fit(_set(y, 12), progress=False)
    conf = model.predict(_set(y, 12))
    model.cfg = fc.ForecastConfig(envelope=True, **cfg)
    np.testing.assert_array_equal(model.predict(_set(y, 12)), conf)
