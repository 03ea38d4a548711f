"""The simple forecasts the LSTM must beat: naive and seasonal naive, with their intervals.

history: (T,) float64 up to the forecast origin; ``levels``: quantile levels (Q,).
Each returns a ``Forecast``: point (H,) and quantiles (H, Q).

  naive:          ŷ_{T+h} = y_T,                    σ_h = σ̂₁ √h
  seasonal naive: ŷ_{T+h} = y_{T+h−m(k+1)},         σ_h = σ̂_m √(k+1),  k = ⌊(h−1)/m⌋
  quantile q:     ŷ_{T+h} + Φ⁻¹(q) σ_h

σ̂₁, σ̂_m: the root mean square of the in-sample one-step (y_t − y_{t−1}) and one-season
(y_t − y_{t−m}) changes, the random-walk forms of Hyndman & Athanasopoulos, *Forecasting:
Principles and Practice* (3rd ed.), §5.5.
"""
from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist

import numpy as np


@dataclass(frozen=True)
class Forecast:
    """point: (H,) the point forecast (a mean or a median); quantiles: (H, Q), sorted along Q."""

    point: np.ndarray
    quantiles: np.ndarray


def normal_quantiles(point: np.ndarray, sd: np.ndarray, levels) -> np.ndarray:
    """(H,), (H,), (Q,) -> (H, Q): point + Φ⁻¹(q)·sd."""
    z = np.array([NormalDist().inv_cdf(q) for q in levels])
    return np.asarray(point, dtype=np.float64)[:, None] + np.asarray(sd, dtype=np.float64)[:, None] * z


def _rms_change(history: np.ndarray, lag: int) -> float:
    d = history[lag:] - history[:-lag]
    return float(np.sqrt(np.mean(d ** 2))) if len(d) else 0.0


def naive(history: np.ndarray, horizon: int, levels=(0.5,)) -> Forecast:
    point = np.full(horizon, float(history[-1]))
    sd = _rms_change(history, 1) * np.sqrt(np.arange(1, horizon + 1))
    return Forecast(point, normal_quantiles(point, sd, levels))


def seasonal_naive(history: np.ndarray, horizon: int, season: int, levels=(0.5,)) -> Forecast:
    if season <= 1 or len(history) < season + 1:
        return naive(history, horizon, levels)
    h = np.arange(1, horizon + 1)
    k = (h - 1) // season
    point = history[len(history) - 1 + h - season * (k + 1)].astype(np.float64)
    sd = _rms_change(history, season) * np.sqrt(k + 1)
    return Forecast(point, normal_quantiles(point, sd, levels))
