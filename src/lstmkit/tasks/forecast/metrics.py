"""Point and interval accuracy, pooled over every (series, origin, step) of a backtest.

y: actuals, f: forecasts, same shape; ``scale``: per element, the series' MASE denominator.
  MAE   = mean |y − f|
  RMSE  = sqrt(mean (y − f)²)
  sMAPE = mean 200·|y − f| / (|y| + |f|)  in percent, 0 where y = f = 0 (Makridakis 1993)
  MASE  = mean |y − f| / scale, scale = mean |y_t − y_{t−m}| over the series' history before
          the backtest: the in-sample seasonal-naive error (Hyndman & Koehler 2006)
  coverage = share of y inside [lo, hi], a band between two quantiles, for each symmetric pair
          (q, 1 − q) of levels: nominal 1 − 2q
  pinball_q(y, f) = max(q·(y − f), (q − 1)·(y − f))  (Koenker & Bassett 1978)
  sQL   = mean over levels q and elements of 2·pinball_q(y, q̂_q) / scale: the scaled quantile
          loss (the M5 uncertainty track's SPL, doubled so that the median alone gives MASE;
          averaged over many levels it approximates CRPS / scale)
  calibration: for each level q, the share of y at or below q̂_q (nominal q; a PIT summary)
"""
from __future__ import annotations

import numpy as np


def mae(y, f) -> float:
    return float(np.mean(np.abs(np.asarray(y) - np.asarray(f))))


def rmse(y, f) -> float:
    return float(np.sqrt(np.mean((np.asarray(y) - np.asarray(f)) ** 2)))


def smape(y, f) -> float:
    y, f = np.asarray(y, dtype=np.float64), np.asarray(f, dtype=np.float64)
    den = np.abs(y) + np.abs(f)
    return float(np.mean(np.where(den > 0, 200.0 * np.abs(y - f) / np.where(den > 0, den, 1.0), 0.0)))


def mase(y, f, scale) -> float:
    return float(np.mean(np.abs(np.asarray(y) - np.asarray(f)) / np.asarray(scale)))


def mase_scale(history: np.ndarray, season: int) -> float:
    """mean |y_t − y_{t−m}| over the history (m = 1 if the history is shorter than two seasons)."""
    m = season if len(history) > season else 1
    d = np.abs(history[m:] - history[:-m])
    s = float(d.mean()) if len(d) else 0.0
    if not s > 0:
        raise ValueError(f"MASE: the history is constant (in-sample naive error 0), cannot scale; "
                         f"got {len(history)} points")
    return s


def coverage(y, lo, hi) -> float:
    y = np.asarray(y)
    return float(np.mean((y >= np.asarray(lo)) & (y <= np.asarray(hi))))


def pinball(y, f, q) -> float:
    e = np.asarray(y) - np.asarray(f)
    return float(np.mean(np.maximum(q * e, (q - 1) * e)))


def scores(y, f, scale) -> dict[str, float]:
    """The four point metrics, in the table's order."""
    return {"mae": mae(y, f), "rmse": rmse(y, f), "smape": smape(y, f), "mase": mase(y, f, scale)}


def sql(y, quantiles, levels, scale) -> float:
    """y (...,), quantiles (..., Q), levels (Q,), scale (...,) -> the scaled quantile loss."""
    e = np.asarray(y)[..., None] - np.asarray(quantiles)
    q = np.asarray(levels, dtype=np.float64)
    return float(np.mean(2 * np.maximum(q * e, (q - 1) * e) / np.asarray(scale)[..., None]))


def bands(levels) -> list[tuple[int, int]]:
    """Index pairs (i, j) of the symmetric levels q_i = 1 − q_j < 0.5, widest first."""
    levels = list(levels)
    return [(i, j) for i, q in enumerate(levels) if q < 0.5
            for j, p in enumerate(levels) if abs(p - (1 - q)) < 1e-9]


def band_coverage(y, quantiles, levels) -> dict[str, float]:
    """{"0.8": share of y inside [q̂_0.1, q̂_0.9], ...} for every symmetric pair of levels."""
    return {f"{levels[j] - levels[i]:.2f}": coverage(y, quantiles[..., i], quantiles[..., j])
            for i, j in bands(levels)}


def calibration(y, quantiles) -> list[float]:
    """For each level, the share of y at or below its quantile."""
    return [float(np.mean(np.asarray(y) <= quantiles[..., i])) for i in range(quantiles.shape[-1])]
