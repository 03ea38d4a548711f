"""Scaling per series and sliding windows, both exactly invertible.

The scale is a power of two, so ``z = y / s`` and ``y = z · s`` only move the binary
exponent: the round trip is exact to the last bit for every finite float64 whose scaled
value stays a normal number (checked on creation). The level (what an affine scaler would
subtract) is not part of the transform: the network removes the last observed value of each
window itself, and ``center``/``spread`` only standardise an input feature, never an output.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Scaler:
    """z = y / scale with scale = 2**k.

    scale: the power of two nearest the mean absolute one-step change of the series (so a
    typical step is about 1 in z).  center, spread: mean and standard deviation of z, used
    to standardise the level input of the network.
    """

    scale: float
    center: float
    spread: float

    @classmethod
    def fit(cls, y: np.ndarray) -> "Scaler":
        y = np.asarray(y, dtype=np.float64)
        step = float(np.mean(np.abs(np.diff(y)))) if len(y) > 1 else 0.0
        typical = step if step > 0 else float(np.max(np.abs(y), initial=0.0))
        scale = 2.0 ** round(math.log2(typical)) if typical > 0 else 1.0
        z = y / scale
        if not np.isfinite(z).all() or not np.array_equal(z * scale, y):   # overflow or subnormal
            raise ValueError(f"values: expected finite numbers within float64's normal range after scaling "
                             f"by {scale:g}, got min {y.min():g} max {y.max():g}")
        return cls(scale, float(z.mean()), float(z.std()) or 1.0)

    def transform(self, y: np.ndarray) -> np.ndarray:
        return np.asarray(y, dtype=np.float64) / self.scale

    def inverse(self, z: np.ndarray) -> np.ndarray:
        return np.asarray(z, dtype=np.float64) * self.scale


def make_windows(z: np.ndarray, window: int, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """All windows of a series, one step apart.

    z: (T, ...) -> inputs (N, window, ...) = z[n : n+window], targets (N, horizon, ...) =
    z[n+window : n+window+horizon], for n = 0 .. N-1 with N = T - window - horizon + 1.
    """
    n = len(z) - window - horizon + 1
    if window < 1 or horizon < 1:
        raise ValueError(f"window/horizon: expected ints >= 1, got {window}/{horizon}")
    if n < 1:
        raise ValueError(f"series of {len(z)} points is shorter than window {window} + horizon {horizon}")
    idx = np.arange(n)[:, None]
    return z[idx + np.arange(window)], z[idx + window + np.arange(horizon)]


def series_from_windows(inputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """The inverse of ``make_windows``: the series the windows were cut from."""
    return np.concatenate([inputs[:, 0], inputs[-1, 1:], targets[-1]], axis=0)
