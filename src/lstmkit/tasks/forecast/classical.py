"""The classical yardsticks: auto-ETS (chosen by AICc, as R's ``forecast::ets``) and Theta.

ETS (Hyndman et al. 2008, *Forecasting with Exponential Smoothing*), statsmodels' ETSModel.
A form is (error, trend, season):
  error  ∈ {add, mul}      y_t = μ_t + ε_t            or  y_t = μ_t (1 + ε_t)
  trend  ∈ {none, add, add damped}
                           ℓ_t = ℓ_{t−1} + φ b_{t−1} + α·e,  b_t = φ b_{t−1} + β·e,  ŷ adds (φ + … + φ^h) b_T
  season ∈ {none, add, mul}  with period m, only when 2 ≤ m ≤ 24 and two seasons and two more points are seen
As in ``forecast::ets`` (restrict = TRUE, no multiplicative trend): multiplicative errors and
seasons only for strictly positive series, and no additive error with a multiplicative season,
so at most 15 forms; the one with the lowest AICc = AIC + 2k(k+1)/(n − k − 1) is kept.
Quantiles: Gaussian with the exact forecast variance for the linear forms, from 500 seeded
simulated paths for the others (statsmodels' ``get_prediction``).

Theta (Assimakopoulos & Nikolopoulos 2000; the M3/M4 benchmark): statsmodels' ThetaModel,
which tests for a season (90% ACF test at lag m), divides it out multiplicatively (additively
for a series that is not positive), forecasts by SES plus half the OLS trend (the classic two-step fit; Hyndman & Billah 2003).
Gaussian intervals with SES's variance σ_h² = σ²(1 + (h − 1)α²) (Hyndman et al. 2008,
Table 6.1), σ² the mean squared one-step SES error on the deseasonalised series, times the
season's factor when it is multiplicative. statsmodels' own ``prediction_intervals`` uses
(1 + (h − 1)(1 + (α − 1)²)), which grows the band at α → 0, with a σ² from an ARIMA fitted to
the raw, still seasonal series (nottem: its 50% band covered every actual).
"""
from __future__ import annotations

import warnings
from contextlib import contextmanager

import numpy as np
import pandas as pd

from .baselines import Forecast, naive, normal_quantiles

EtsForm = tuple[str, str | None, bool, str | None]      # (error, trend, damped, season)
SIMULATIONS = 500
EXACT = ("ANN", "AAN", "AAdN", "ANA", "AAA", "AAdA")      # forms with a closed-form variance


@contextmanager
def _quiet():
    from statsmodels.tools.sm_exceptions import ConvergenceWarning

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        for cat in (ConvergenceWarning, RuntimeWarning, UserWarning, FutureWarning):
            warnings.simplefilter("ignore", cat)
        yield


def ets_forms(history: np.ndarray, season: int) -> list[EtsForm]:
    """The forms auto-ETS chooses from on this history (see the module docstring)."""
    positive = bool(np.all(history > 0))
    seasonal = 2 <= season <= 24 and len(history) >= 2 * season + 2
    trends = [(None, False), ("add", False), ("add", True)]
    forms = []
    for error in ("add", "mul") if positive else ("add",):
        for seas in (None, "add", "mul") if seasonal else (None,):
            if seas == "mul" and (error == "add" or not positive):
                continue
            forms += [(error, trend, damped, seas) for trend, damped in trends]
    return forms


def _fit(history: np.ndarray, form: EtsForm, season: int):
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    error, trend, damped, seas = form
    model = ETSModel(pd.Series(history), error=error, trend=trend, damped_trend=damped, seasonal=seas,
                     seasonal_periods=season if seas else None)
    try:
        res = model.fit(disp=False, maxiter=200)
    except (ValueError, np.linalg.LinAlgError, ZeroDivisionError):
        return None
    return res if np.isfinite(res.aicc) and np.isfinite(res.params).all() else None


def _ets_quantiles(res, horizon: int, levels) -> tuple[np.ndarray, np.ndarray]:
    """-> (point forecast (H,), quantiles (H, Q))."""
    mean = np.asarray(res.forecast(horizon), dtype=np.float64)
    if res.model.short_name in EXACT:
        pred = res.get_prediction(start=res.nobs, end=res.nobs + horizon - 1)
        return mean, normal_quantiles(mean, np.sqrt(np.asarray(pred.var_pred_mean, dtype=np.float64)), levels)
    sims = np.asarray(res.simulate(horizon, anchor="end", repetitions=SIMULATIONS, rng=np.random.default_rng(0)),
                      dtype=np.float64).reshape(horizon, SIMULATIONS)
    return mean, np.quantile(sims, levels, axis=1).T


def fit_auto(history: np.ndarray, season: int, forms=None):
    """-> (statsmodels' results, form) of the lowest-AICc form among ``forms`` (default all of
    ``ets_forms``) that fits, or (None, None)."""
    history = np.asarray(history, dtype=np.float64)
    allowed = ets_forms(history, season)
    best, best_form = None, None
    with _quiet():
        for form in [tuple(f) for f in forms or allowed if tuple(f) in allowed]:
            res = _fit(history, form, season)
            if res is not None and (best is None or res.aicc < best.aicc):
                best, best_form = res, form
    return best, best_form


def ets(history: np.ndarray, horizon: int, season: int, levels=(0.5,), forms=None) -> tuple[Forecast, EtsForm | None]:
    """-> (forecast, the chosen form). ``forms``: the candidates (default all of ``ets_forms``);
    the backtest chooses at its first origin and refits that one form at the later origins.
    Naive (form None) when no candidate fits to a finite forecast."""
    history = np.asarray(history, dtype=np.float64)
    best, best_form = fit_auto(history, season, forms)
    with _quiet():
        if best is not None:
            mean, q = _ets_quantiles(best, horizon, levels)
            if np.isfinite(mean).all() and np.isfinite(q).all():
                return Forecast(mean, np.sort(q, axis=1)), best_form
    return naive(history, horizon, levels), None


def ses_mse(y: np.ndarray, alpha: float) -> float:
    """Mean squared one-step error of SES, ℓ_t = ℓ_{t−1} + α(y_t − ℓ_{t−1}), ℓ_0 = y_0."""
    level, sq = y[0], 0.0
    for v in y[1:]:
        e = v - level
        sq += e * e
        level += alpha * e
    return sq / max(len(y) - 1, 1)


def theta(history: np.ndarray, horizon: int, season: int, levels=(0.5,)) -> Forecast:
    """Theta with statsmodels' own seasonality test and deseasonalising (naive if it fails)."""
    from statsmodels.tsa.forecasting.theta import ThetaModel

    history = np.asarray(history, dtype=np.float64)
    seasonal = season > 1 and len(history) >= 2 * season
    try:
        with _quiet():
            model = ThetaModel(history, period=season if seasonal else 1, deseasonalize=seasonal)
            res = model.fit()
            point = np.asarray(res.forecast(horizon), dtype=np.float64)
            factor = np.ones(horizon)
            if model.deseasonalize and model.method.startswith("mul"):
                factor = np.asarray(res.forecast_components(horizon)["seasonal"], dtype=np.float64)
            alpha = float(res.params["alpha"])
            flat, _ = model._deseasonalize_data()                 # the series SES was fitted to
            sd = np.sqrt(ses_mse(np.asarray(flat, dtype=np.float64), alpha) * (1 + np.arange(horizon) * alpha ** 2))
            sd = sd * factor
    except (ValueError, np.linalg.LinAlgError, ZeroDivisionError):
        return naive(history, horizon, levels)
    if not (np.isfinite(point).all() and np.isfinite(sd).all()):
        return naive(history, horizon, levels)
    return Forecast(point, normal_quantiles(point, sd, levels))
