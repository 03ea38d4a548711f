"""The classical forecasts the LSTM must beat: naive, seasonal naive and ETS.

history: (T,) float64 up to the forecast origin; each returns (horizon,).
  naive:          ŷ_{T+h} = y_T
  seasonal naive: ŷ_{T+h} = y_{T+h−m·⌈h/m⌉}  (the same season one cycle back)
  ETS:            statsmodels' ETSModel (Hyndman et al. 2008), additive errors, with and
                  without a damped additive trend and, when m > 1 and two cycles are seen,
                  an additive season; the form with the lowest AICc is used (naive if no
                  fit converges to a finite forecast).
"""
from __future__ import annotations

import warnings

import numpy as np


def naive(history: np.ndarray, horizon: int) -> np.ndarray:
    return np.full(horizon, float(history[-1]))


def seasonal_naive(history: np.ndarray, horizon: int, season: int) -> np.ndarray:
    if season <= 1 or len(history) < season:
        return naive(history, horizon)
    h = np.arange(1, horizon + 1)
    return history[len(history) - 1 + h - season * ((h - 1) // season + 1)].astype(np.float64)


def ets_forms(history: np.ndarray, season: int) -> list[tuple[str | None, str | None]]:
    """The (trend, season) forms ETS chooses from on this history."""
    seasonal = season > 1 and len(history) >= 2 * season + 2
    return [(t, s) for t in (None, "add") for s in ((None, "add") if seasonal else (None,))]


def ets(history: np.ndarray, horizon: int, season: int, forms=None) -> tuple[np.ndarray, tuple]:
    """-> (forecast, the chosen (trend, season) form). ``forms``: the candidates (default all
    of ``ets_forms``); the backtest chooses at its first origin and refits that form later."""
    from statsmodels.tools.sm_exceptions import ConvergenceWarning
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    best, best_ic, best_form = None, np.inf, (None, None)
    for trend, seas in forms or ets_forms(history, season):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            warnings.simplefilter("ignore", UserWarning)
            model = ETSModel(np.asarray(history, dtype=np.float64), error="add", trend=trend,
                             damped_trend=trend is not None, seasonal=seas,
                             seasonal_periods=season if seas else None)
            try:
                res = model.fit(disp=False, maxiter=200)
            except (ValueError, np.linalg.LinAlgError):
                continue
        if np.isfinite(res.aicc) and res.aicc < best_ic:
            best, best_ic, best_form = res, res.aicc, (trend, seas)
    out = np.asarray(best.forecast(horizon), dtype=np.float64) if best is not None else None
    if out is None or not np.isfinite(out).all():
        out = naive(history, horizon)
    return out, best_form
