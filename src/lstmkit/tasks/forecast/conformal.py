"""Split-conformal calibration of quantile forecasts, per horizon step and level.

On N held-out windows i (the network never trained on them) with targets y_{i,h} and fitted
quantiles q̂_{i,h,q}, the score of level q at step h is

  r_{i,h,q} = (y_{i,h} − q̂_{i,h,q}) / σ_i

with σ_i the window's spread ("scaled": mean |Δz| over the input window, at least 0.1; z is
scaled so that a typical step of the series is about 1, windows.py; σ_i = 1 for "plain"). The shift c_{h,q} is the conformal quantile of
the scores: for q > 1/2 the ⌈(N + 1) q⌉-th smallest, for q < 1/2 the ⌊(N + 1) q⌋-th
(clipped to 1..N), so that a new y falls below q̂ + c·σ with probability at least q (at most q
below 1/2) when the windows are exchangeable (one-sided conformalized quantile regression,
Romano et al. 2019, arXiv:1905.03222; locally weighted scores, Lei et al. 2018,
arXiv:1604.04173). The median is not shifted: it is the point forecast.
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


def conformal_shift(scores: np.ndarray, levels) -> np.ndarray:
    """scores (N, H, Q), levels (Q,) -> shifts (H, Q); 0 for the median."""
    n = scores.shape[0]
    ordered = np.sort(scores, axis=0)
    shift = np.stack([ordered[conformal_rank(n, q) - 1, :, i] for i, q in enumerate(levels)], axis=-1)
    shift[:, np.asarray(levels) == 0.5] = 0.0
    return shift
