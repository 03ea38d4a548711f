"""Split-conformal intervals around the LSTM's median, per horizon step.

On N held-out forecasts i (origins no model trained or early-stopped on; fit.py) with targets
y_{i,h} and medians ŷ_{i,h} (h = 1..H), the scores are the scaled residuals

  r_{i,h} = (y_{i,h} − ŷ_{i,h}) / σ_i

with σ_i the spread of forecast i's input window ("scaled": mean |Δz| over the window, at
least SPREAD_FLOOR; z is scaled so that a typical step of the series is about 1, windows.py;
σ_i = 1 for "plain"). Each step gets its scale s_h = mean_i |r_{i,h}|, made non-decreasing in h
(an error does not shrink with the lead time), and the standardised scores r_{i,h} / s_h of all
steps are pooled, N·H of them: with only a few held-out origins per series, the extreme
order statistics of one step alone are too noisy to set a 90% band. The level-q offset is
the conformal quantile c_q of the pooled scores — for q > 1/2 the ⌈(n + 1) q⌉-th smallest of
n, for q < 1/2 the ⌊(n + 1) q⌋-th (clipped to 1..n) — and the level-q forecast at step h is

  q̂_{h,q} = ŷ_h + c_q · s_h · σ

so a new y falls below it with probability about q when the held-out forecasts and the new
one are exchangeable (split conformal prediction: Vovk et al. 2005; Lei et al. 2018,
arXiv:1604.04173, locally weighted scores; statsforecast's ConformalIntervals and
neuralforecast's n_windows use the same residual scores per step). c_{1/2} = 0: the median is
the point forecast, and c_q is clipped to ≤ 0 below the median and ≥ 0 above it, so that the
band always holds it: when the held-out residuals all lean one way (a trend the forecast
missed), an unclipped c_{0.25} > 0 would, after sorting, have moved the forecast itself (seen
on fertility_AUS: the "median" of a forecast equal to auto-ETS's read MASE 2.22, auto-ETS 0.54).
"""
from __future__ import annotations

import math

import numpy as np

CALIBRATIONS = ("scaled", "plain", "none")
SPREAD_FLOOR = 0.1


def window_spread(z: np.ndarray) -> np.ndarray:
    """z (N, W) -> (N,): mean |z_t − z_{t−1}| per window, at least SPREAD_FLOOR."""
    return np.maximum(np.mean(np.abs(np.diff(z, axis=1)), axis=1), SPREAD_FLOOR)


def conformal_rank(n: int, q: float) -> int:
    """The 1-based rank of the conformal quantile of level q among n scores."""
    k = math.ceil((n + 1) * q) if q > 0.5 else math.floor((n + 1) * q)
    return min(max(k, 1), n)


def conformal_offsets(scores: np.ndarray, levels) -> np.ndarray:
    """scores (N, H) -> offsets (H, Q) = c_q · s_h (see the module docstring); 0 for the median."""
    s = np.maximum.accumulate(np.maximum(np.mean(np.abs(scores), axis=0), 1e-12))     # (H,)
    pooled = np.sort((scores / s).ravel())
    c = np.array([0.0 if q == 0.5 else pooled[conformal_rank(len(pooled), q) - 1] for q in levels])
    c = np.where(np.asarray(levels) < 0.5, np.minimum(c, 0.0), np.maximum(c, 0.0))   # the band holds the median
    return s[:, None] * c[None, :]
