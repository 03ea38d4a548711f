"""Rolling-origin backtest: every method forecasts the same last windows of the data.

With K = ``backtest_windows`` and horizon H, series k of length n has origins
o_j = n − H·(K − j), j = 0..K−1: the last K·H points, cut into K consecutive blocks.
The LSTM is trained once on the points before o_0 (early stopping and interval calibration
inside that part) and then reads the true history up to each o_j; the classical methods are
refitted at every origin (auto-ETS picks its form by AICc at o_0 and re-estimates that form on
y[:o_j]; Theta is refitted whole) — if anything, an advantage to them. MASE's and sQL's
denominator is each series' in-sample seasonal-naive error on y[:o_0], the same for all
methods. Every method gives quantiles at the config's levels, so every method has a
coverage per band and a scaled quantile loss.

"combo" is the forecast combination of the LSTM, auto-ETS and Theta (in the spirit of the
M4 combination benchmark, Makridakis et al. 2020): the mean of their point forecasts and the
mean of their quantiles at each level (Vincentisation, Lichtendahl et al. 2013). It is its own
row, not the LSTM.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from . import baselines, classical, metrics
from .data import SeriesSet
from .fit import Forecaster
from .model import ForecastConfig

CLASSICAL = ("naive", "seasonal_naive", "ets", "theta")
COMBINED = ("lstm", "ets", "theta")
METHODS = ("lstm", *CLASSICAL, "combo")


@dataclass
class BacktestResult:
    """origins: (S, K) indices; actual: (S, K, H); forecasts: method -> (S, K, H) point
    forecasts (the LSTM's median, ETS's and Theta's means); quantiles: method -> (S, K, H, Q);
    levels: the Q levels; scale: (S,) MASE denominators; ets_forms: per series the
    (error, trend, damped, season) form auto-ETS chose (None: it fell back to naive);
    metrics: method -> {"mae", "rmse", "smape", "mase", "sql", "coverage": {band: share}};
    winner: the method with the lowest MASE; calibrated_on: what the LSTM's conformal
    scores came from (fit.py); lstm_mix: per series the weight of the network's correction to
    auto-ETS (transform "ets"; 0 = auto-ETS's point forecast, fit.py)."""

    origins: np.ndarray
    actual: np.ndarray
    forecasts: dict[str, np.ndarray]
    quantiles: dict[str, np.ndarray]
    levels: tuple[float, ...]
    scale: np.ndarray
    ets_forms: list
    metrics: dict[str, dict]
    winner: str
    lstm_steps: int | None
    calibrated_on: str = ""
    lstm_mix: tuple[float, ...] = ()


def origins_for(data: SeriesSet, cfg: ForecastConfig) -> np.ndarray:
    H, K = cfg.horizon, cfg.backtest_windows
    return np.array([[len(v) - H * (K - j) for j in range(K)] for v in data.values])


def check_lengths(data: SeriesSet, cfg: ForecastConfig) -> None:
    """Refuse, before any training, a series too short for the window, horizon and backtest."""
    W, H, K = cfg.window_for(data.season), cfg.horizon, cfg.backtest_windows
    for k, v in enumerate(data.values):
        name = data.ids[k] or data.target
        if len(v) < W + H:
            raise ValueError(f"series {name!r} has {len(v)} points, shorter than --window {W} + --horizon {H}")
        need = W + 2 * H + 1 + K * H
        if len(v) < need:
            raise ValueError(f"series {name!r} has {len(v)} points; a backtest over --backtest-windows {K} "
                             f"needs --window {W} + 2 x --horizon {H} + 1 + {K} x {H} = {need}; "
                             f"pass a smaller --window, --horizon or --backtest-windows")


def classical_backtest(data: SeriesSet, origins: np.ndarray, cfg: ForecastConfig, progress: bool = True):
    """-> (points, quantiles, ets forms): method -> (S, K, H) and (S, K, H, Q) for the four
    classical methods, refitted at every origin."""
    S, K, H, m, levels = len(data), origins.shape[1], cfg.horizon, data.season, cfg.quantiles
    names = CLASSICAL
    point = {n: np.zeros((S, K, H)) for n in names}
    quant = {n: np.zeros((S, K, H, len(levels))) for n in names}
    forms = []
    with tqdm(total=S * K, desc="classical", unit="origin", disable=not progress) as bar:
        for k in range(S):
            form = None                  # auto-ETS's form is chosen at the first origin, refitted later
            for j, o in enumerate(origins[k]):
                hist = data.values[k][:o]
                fcs = {"naive": baselines.naive(hist, H, levels),
                       "seasonal_naive": baselines.seasonal_naive(hist, H, m, levels)}
                fcs["ets"], chosen = classical.ets(hist, H, m, levels, None if j == 0 else [form])
                form = chosen if j == 0 else form
                fcs["theta"] = classical.theta(hist, H, m, levels)
                for n in names:
                    point[n][k, j], quant[n][k, j] = fcs[n].point, fcs[n].quantiles
                bar.update()
            forms.append(form)
    return point, quant, forms


def combine(point: dict, quant: dict) -> tuple[np.ndarray, np.ndarray]:
    """-> "combo"'s point forecasts and quantiles: the means over COMBINED (a mean of sorted
    quantile vectors is sorted)."""
    return np.mean([point[n] for n in COMBINED], axis=0), np.mean([quant[n] for n in COMBINED], axis=0)


def score(actual, point, quant, levels, scale) -> dict:
    den = np.broadcast_to(scale[:, None, None], actual.shape)
    return {**metrics.scores(actual, point, den), "sql": metrics.sql(actual, quant, levels, den),
            "coverage": metrics.band_coverage(actual, quant, levels)}


def backtest(data: SeriesSet, cfg: ForecastConfig, progress: bool = True) -> BacktestResult:
    check_lengths(data, cfg)
    H, K, m, levels = cfg.horizon, cfg.backtest_windows, data.season, cfg.quantiles
    origins = origins_for(data, cfg)
    point, quant, forms = classical_backtest(data, origins, cfg, progress)
    model = Forecaster(cfg).fit(data, end=list(origins[:, 0]), progress=progress, forms=forms)
    S = len(data)
    actual = np.stack([[data.values[k][o:o + H] for o in origins[k]] for k in range(S)])
    lstm_q = np.stack([model.predict(data, end=list(origins[:, j])) for j in range(K)], axis=1)
    point = {"lstm": lstm_q[..., levels.index(0.5)], **point}
    quant = {"lstm": lstm_q, **quant}
    point["combo"], quant["combo"] = combine(point, quant)
    scale = np.array([metrics.mase_scale(data.values[k][:origins[k, 0]], m) for k in range(S)])
    table = {name: score(actual, point[name], quant[name], levels, scale) for name in METHODS}
    winner = min(METHODS, key=lambda name: table[name]["mase"])
    return BacktestResult(origins, actual, point, quant, levels, scale, forms, table, winner, model.stopped_at,
                          model.calibrated_on, tuple(model.mix.tolist()))


def format_table(res: BacktestResult, horizon: int) -> str:
    """The metrics table and one sentence saying who won."""
    bands = list(res.metrics["lstm"]["coverage"])
    lines = [f"rolling-origin backtest: {res.origins.shape[1]} origins x horizon {horizon}"
             f" x {res.origins.shape[0]} series",
             f"{'method':<16}{'MAE':>11}{'RMSE':>11}{'sMAPE %':>10}{'MASE':>9}{'sQL':>8}"
             + "".join(f"{'cov ' + b:>10}" for b in bands)]
    for name, s in res.metrics.items():
        lines.append(f"{name:<16}{s['mae']:>11.4g}{s['rmse']:>11.4g}{s['smape']:>10.2f}{s['mase']:>9.3f}"
                     f"{s['sql']:>8.3f}" + "".join(f"{s['coverage'][b]:>10.2f}" for b in bands))
    lines.append("(sQL: scaled quantile loss over the levels " + ", ".join(f"{q:g}" for q in res.levels)
                 + "; cov B: share of actuals inside the central band of nominal probability B;"
                 " combo: the mean of lstm, ets and theta, not the LSTM)")
    if res.calibrated_on:
        lines.append(f"lstm bands calibrated on {res.calibrated_on}")
    mixes = sorted(set(res.lstm_mix))
    if len(mixes) == 1 and mixes[0] != 1.0:
        lines.append(f"lstm = auto-ETS + {mixes[0]:g} x the network's correction (the mean of the weights "
                     f"that forecast each half of the held-out windows best)")
    elif len(mixes) > 1:
        counts = ", ".join(f"{w:g} on {res.lstm_mix.count(w)}" for w in mixes)
        lines.append(f"lstm = auto-ETS + w x the network's correction, w per series the mean of the weights that "
                     f"forecast each half of its held-out windows best ({counts} series)")
    best, second = sorted(res.metrics, key=lambda n: res.metrics[n]["mase"])[:2]
    lines.append(f"winner by MASE: {best} ({res.metrics[best]['mase']:.3f}; next {second} "
                 f"{res.metrics[second]['mase']:.3f})")
    return "\n".join(lines)
