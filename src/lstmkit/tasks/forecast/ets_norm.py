"""ES-RNN-style normalisation (``transform="ets"``): the network learns a correction to the
series' own auto-ETS forecast.

Smyl (2020, the M4 winner) divides each input window by the level and seasonal indices of a
per-series exponential-smoothing fit and multiplies the network's output back. Here the fit is
auto-ETS (classical.py, chosen by AICc on the training history, its parameters then fixed), whose
filtered states after y_t are ℓ_t (level), b_t (trend, 0 without one) and s_t (season: 1 for
a multiplicative season, 0 for an additive one or none), for every t of the history the network
reads (statsmodels' ``smooth`` with the fitted parameters). For an origin o (y_0 … y_{o−1} seen)
the reference values are

  r_{o,τ} = ℓ_{o−1} ∘ s_τ                                  τ = o − W … o − 1  (the input window)
  r_{o,h} = (ℓ_{o−1} + φ_h b_{o−1}) ∘ s_{o−1+h−m⌈h/m⌉},  φ_h = φ + φ² + … + φ^h   (h = 1 … H)

with ∘ = × for a multiplicative season, + for an additive one, and φ = 1 for an undamped
trend: r_{o,h} is auto-ETS's point forecast from o (a seasonal index earlier than the first
fitted one, for an origin less than a season in, is taken from the first fitted season).
The network sees and predicts, with g = log for a form with a multiplicative error or season
on a positive series (a log ratio) and g = identity otherwise (a difference),

  n_{o,τ} = (g(y_τ) − g(r_{o,τ})) / c,      n_{o,h} = (g(y_{o−1+h}) − g(r_{o,h})) / c

with c the power of two nearest the mean |Δ g(y)| (windows.Scaler), and a forecast n̂ maps back
as ŷ_{o,h} = g⁻¹(g(r_{o,h}) + c·n̂_h): n̂ = 0 reproduces auto-ETS's point forecast, and g⁻¹ is
monotone, so quantiles of n map to quantiles of y. In log form a reference is floored at
FLOOR · min y (a trend extrapolated below zero). When no ETS form fits, ℓ_t = y_t, b = 0 and
no season: the reference is the last value (the other transforms' anchor).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .classical import EtsForm, _ets_quantiles, _quiet, fit_auto

FLOOR = 1e-3


@dataclass(frozen=True)
class EtsNormal:
    """form: the auto-ETS form (None: none fitted); params: its fitted parameters (statsmodels'
    order, initial states included); log: g = log; season: m; phi: the damping (1 undamped);
    floor: the least reference in log form. The last smoothing is kept (one slot): a forecast
    reads the states for its inputs, its reference and its envelope from the same history."""

    form: EtsForm | None
    params: np.ndarray | None
    log: bool
    season: int
    phi: float
    floor: float
    _last: list = field(default_factory=list, init=False, repr=False, compare=False)

    @classmethod
    def fit(cls, y: np.ndarray, season: int, forms: list | None = None) -> "EtsNormal":
        """auto-ETS on y (or the best of ``forms``), its parameters kept for later data."""
        y = np.asarray(y, dtype=np.float64)
        res, form = fit_auto(y, season, forms)
        if res is None:
            return cls(None, None, False, season, 1.0, 0.0)
        positive = bool(np.all(y > 0))
        log = positive and (form[0] == "mul" or form[3] == "mul")
        phi = float(res.damping_trend) if form[2] else 1.0
        return cls(form, np.asarray(res.params, dtype=np.float64), log, season, phi,
                   FLOOR * float(y.min()) if positive else 0.0)

    def forward(self, y: np.ndarray, start: int = 0) -> np.ndarray:
        """g(y) (the origin-free part: the scaler and the level input read it)."""
        y = np.asarray(y, dtype=np.float64)
        return np.log(y) if self.log else y

    def g(self, r: np.ndarray) -> np.ndarray:
        return np.log(np.maximum(r, self.floor)) if self.log else r

    def _smooth(self, y: np.ndarray):
        """statsmodels' results of the form on y (float64) with the fitted parameters (not
        re-estimated); the same y again returns the kept results."""
        from statsmodels.tsa.exponential_smoothing.ets import ETSModel

        key = y.tobytes()
        if self._last and self._last[0] == key:
            return self._last[1]
        error, trend, damped, seas = self.form
        model = ETSModel(pd.Series(y), error=error, trend=trend, damped_trend=damped, seasonal=seas,
                         seasonal_periods=self.season if seas else None)
        with _quiet():
            res = model.smooth(self.params)
        self._last[:] = [key, res]
        return res

    def states(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """-> ℓ, b, s (T,) each: the states after y_t, with the fitted parameters."""
        y = np.asarray(y, dtype=np.float64)
        if self.form is None:
            return y, np.zeros_like(y), np.zeros_like(y)
        error, trend, damped, seas = self.form
        st = np.asarray(self._smooth(y).states, dtype=np.float64)
        level = st[:, 0]
        slope = st[:, 1] if trend else np.zeros_like(level)
        neutral = 1.0 if seas == "mul" else 0.0
        return level, slope, st[:, -1] if seas else np.full_like(level, neutral)

    def references(self, y: np.ndarray, origins: np.ndarray, window: int, horizon: int):
        """-> g(r) for the input windows (N, W) and the H steps after each origin (N, H)."""
        level, slope, s = self.states(y)
        o = np.asarray(origins)[:, None]
        mul = self.form is not None and self.form[3] == "mul"
        m = max(self.season, 1)
        h = np.arange(1, horizon + 1)
        phi_h = np.cumsum(self.phi ** h) if self.phi != 1.0 else h.astype(np.float64)
        idx = o - 1 + h - m * np.ceil(h / m).astype(int)
        idx = np.where(idx < 0, idx + m * np.ceil(-idx / m).astype(int), idx)
        base = level[o - 1] + phi_h * slope[o - 1]
        future = base * s[idx] if mul else base + s[idx]
        past_s = s[o - window + np.arange(window)]
        past = level[o - 1] * past_s if mul else level[o - 1] + past_s
        return self.g(past), self.g(future)

    def quantiles(self, y: np.ndarray, horizon: int, levels) -> np.ndarray | None:
        """auto-ETS's own model-based quantiles (H, Q) of the ``horizon`` values after y, with the
        fitted parameters (classical.py: exact Gaussian for the linear forms, simulated paths for
        the others); None when no form was fitted or they are not finite."""
        if self.form is None:
            return None
        res = self._smooth(np.asarray(y, dtype=np.float64))
        with _quiet():
            _, q = _ets_quantiles(res, horizon, levels)
        return np.sort(q, axis=1) if np.isfinite(q).all() else None

    def inverse(self, gy: np.ndarray) -> np.ndarray:
        """g⁻¹ (exp clipped at e^700 in log form)."""
        return np.exp(np.minimum(gy, 700.0)) if self.log else np.asarray(gy, dtype=np.float64)
