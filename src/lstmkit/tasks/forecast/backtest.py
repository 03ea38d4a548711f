"""Rolling-origin backtest: every method forecasts the same last windows of the data.

With K = ``backtest_windows`` and horizon H, series k of length n has origins
o_j = n − H·(K − j), j = 0..K−1: the last K·H points, cut into K consecutive blocks.
The LSTM is trained once on the points before o_0 (early stopping inside that part) and
then reads the true history up to each o_j; the baselines are refitted at every origin
(ETS picks its form by AICc at o_0 and re-estimates it on y[:o_j]) — if anything, an
advantage to the baselines. MASE's
denominator is each series' in-sample seasonal-naive error on y[:o_0], the same for all
methods.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from . import baselines, metrics
from .data import SeriesSet
from .fit import Forecaster
from .model import ForecastConfig

METHODS = ("lstm", "naive", "seasonal_naive", "ets")


@dataclass
class BacktestResult:
    """origins: (S, K) indices; actual: (S, K, H); forecasts: method -> (S, K, H) point
    forecasts (the LSTM's median); quantiles: (S, K, H, Q) of the LSTM; levels: the Q
    levels; scale: (S,) MASE denominators; metrics: method -> scores (+ the LSTM's
    coverage of its outermost band); winner: the method with the lowest MASE."""

    origins: np.ndarray
    actual: np.ndarray
    forecasts: dict[str, np.ndarray]
    quantiles: np.ndarray
    levels: tuple[float, ...]
    scale: np.ndarray
    metrics: dict[str, dict[str, float | None]]
    winner: str
    lstm_steps: int | None


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


def backtest(data: SeriesSet, cfg: ForecastConfig, progress: bool = True) -> BacktestResult:
    check_lengths(data, cfg)
    H, K, m = cfg.horizon, cfg.backtest_windows, data.season
    origins = origins_for(data, cfg)
    model = Forecaster(cfg).fit(data, end=list(origins[:, 0]), progress=progress)
    S, levels = len(data), cfg.quantiles
    actual = np.stack([[data.values[k][o:o + H] for o in origins[k]] for k in range(S)])
    quant = np.stack([model.predict(data, end=list(origins[:, j])) for j in range(K)], axis=1)
    fc = {"lstm": quant[..., levels.index(0.5)], **{name: np.zeros((S, K, H)) for name in METHODS[1:]}}
    scale = np.array([metrics.mase_scale(data.values[k][:origins[k, 0]], m) for k in range(S)])
    with tqdm(total=S * K, desc="baselines", unit="origin", disable=not progress) as bar:
        for k in range(S):
            forms = None                    # ETS's form is chosen at the first origin, refitted later
            for j, o in enumerate(origins[k]):
                hist = data.values[k][:o]
                fc["naive"][k, j] = baselines.naive(hist, H)
                fc["seasonal_naive"][k, j] = baselines.seasonal_naive(hist, H, m)
                fc["ets"][k, j], form = baselines.ets(hist, H, m, forms)
                forms = [form]
                bar.update()
    den = np.broadcast_to(scale[:, None, None], actual.shape)
    table: dict[str, dict[str, float | None]] = {}
    for name in METHODS:
        table[name] = {**metrics.scores(actual, fc[name], den), "coverage": None}
    table["lstm"]["coverage"] = metrics.coverage(actual, quant[..., 0], quant[..., -1])
    winner = min(METHODS, key=lambda name: table[name]["mase"])
    return BacktestResult(origins, actual, fc, quant, levels, scale, table, winner, model.stopped_at)


def format_table(res: BacktestResult, horizon: int) -> str:
    """The metrics table and one sentence saying who won."""
    band = f"{res.levels[0]:g}-{res.levels[-1]:g}"
    lines = [f"rolling-origin backtest: {res.origins.shape[1]} origins x horizon {horizon}"
             f" x {res.origins.shape[0]} series",
             f"{'method':<16}{'MAE':>11}{'RMSE':>11}{'sMAPE %':>10}{'MASE':>9}{'coverage':>11}"]
    for name, s in res.metrics.items():
        cov = f"{s['coverage']:.2f}" if s["coverage"] is not None else "-"
        lines.append(f"{name:<16}{s['mae']:>11.4g}{s['rmse']:>11.4g}{s['smape']:>10.2f}{s['mase']:>9.3f}{cov:>11}")
    lines.append(f"(coverage: share of actuals inside the LSTM's {band} quantile band, nominal "
                 f"{res.levels[-1] - res.levels[0]:.2f})")
    best, second = sorted(res.metrics, key=lambda n: res.metrics[n]["mase"])[:2]
    lines.append(f"winner by MASE: {best} ({res.metrics[best]['mase']:.3f}; next {second} "
                 f"{res.metrics[second]['mase']:.3f})")
    return "\n".join(lines)
