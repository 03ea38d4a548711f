"""Per-series normalisation before the network: a variance-stabilising power and a season.

Fitted on the history the network trains on, applied to its inputs, inverted on its quantiles
(both maps are monotone in y at a fixed time, so a quantile maps to the same quantile):

  u_t = B_λ(y_t) − s_{t mod m}
  B_λ(y) = log y  (λ = 0),   (y^λ − 1)/λ  (0 < λ < 1),   y  (λ = 1)        (Box & Cox 1964)

λ: Guerrero's (1993) choice over blocks of m points (at least 4): the λ in [0, 1] that makes
σ_i / μ_i^(1−λ) most nearly constant (smallest coefficient of variation), rounded to
{0, 1/2, 1}; only for a strictly positive series, else λ = 1. A seasonal amplitude that grows
with the level (AirPassengers) gives λ ≈ 0; a steady one (nottem) λ = 1.

s: classical decomposition (additive, of B_λ(y)): the seasonal means of B_λ(y) minus its
centred moving average of order m (2×m for an even m), centred to sum to zero; only when m > 1,
three seasons are seen and the 90% ACF test at lag m (as in the Theta method and the M4
benchmarks) finds a season in B_λ(y) minus that moving average: |r_m| > 1.645 √((1 + 2 Σ_{k<m} r_k²) / n).
(On the raw series a trend alone passes the test: r_m ≈ 1 for any smooth trend, and the
seasonally adjusted macro series of statsmodels would all be "seasonal".) ES-RNN (Smyl 2020)
normalises by a per-series level and season in the same spirit.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MODES = ("auto", "none")
LAMBDAS = (0.0, 0.5, 1.0)


def guerrero(y: np.ndarray, block: int) -> float:
    """Guerrero's λ in [0, 1] for a positive series (1 when there are fewer than 2 blocks)."""
    n = len(y) // block
    if n < 2:
        return 1.0
    blocks = y[len(y) - n * block:].reshape(n, block)
    mu, sd = blocks.mean(1), blocks.std(1, ddof=1)
    if not (sd > 0).all():
        return 1.0
    grid = np.linspace(0.0, 1.0, 101)
    cv = [np.std(r := sd / mu ** (1 - lam), ddof=1) / np.mean(r) for lam in grid]
    return float(grid[int(np.argmin(cv))])


def has_season(y: np.ndarray, m: int) -> bool:
    """The 90% ACF test at lag m (see the module docstring)."""
    if m <= 1 or len(y) < 2 * m + 1:
        return False
    d = y - y.mean()
    den = float(d @ d)
    if den == 0:
        return False
    r = np.array([d[k:] @ d[:-k] / den for k in range(1, m + 1)])
    return bool(abs(r[-1]) > 1.645 * np.sqrt((1 + 2 * np.sum(r[:-1] ** 2)) / len(y)))


def detrended(u: np.ndarray, m: int) -> np.ndarray:
    """u minus its centred moving average of order m (2×m for an even m), at t = m//2, m//2 + 1, ..."""
    w = np.ones(m) / m if m % 2 else np.r_[0.5, np.ones(m - 1), 0.5] / m
    trend = np.convolve(u, w, mode="valid")
    return u[m // 2:m // 2 + len(trend)] - trend


def seasonal_indices(u: np.ndarray, m: int) -> np.ndarray:
    """(m,) additive indices by position t mod m, summing to zero (classical decomposition)."""
    detr = detrended(u, m)
    pos = (np.arange(len(detr)) + m // 2) % m
    s = np.array([detr[pos == j].mean() for j in range(m)])
    return s - s.mean()


@dataclass(frozen=True)
class SeriesTransform:
    """u_t = B_λ(y_t) − season[t mod m]; ``season`` is all zeros when none was found."""

    lam: float
    season: np.ndarray

    @classmethod
    def fit(cls, y: np.ndarray, m: int, mode: str = "auto") -> "SeriesTransform":
        if mode not in MODES:
            raise ValueError(f"--transform: expected one of {', '.join(MODES)}, got {mode!r}")
        y = np.asarray(y, dtype=np.float64)
        zero = np.zeros(max(m, 1))
        if mode == "none":
            return cls(1.0, zero)
        lam = 1.0
        if np.all(y > 0):
            g = guerrero(y, max(m, 4))
            lam = min(LAMBDAS, key=lambda c: abs(c - g))
        b = cls(lam, zero).power(y)
        seasonal = m > 1 and len(b) >= 3 * m and has_season(detrended(b, m), m)
        return cls(lam, seasonal_indices(b, m) if seasonal else zero)

    def power(self, y: np.ndarray) -> np.ndarray:
        y = np.asarray(y, dtype=np.float64)
        if self.lam == 1.0:
            return y
        if self.lam == 0.0:
            return np.log(y)
        return (y ** self.lam - 1) / self.lam

    def forward(self, y: np.ndarray, start: int = 0) -> np.ndarray:
        """y at times start, start + 1, ... -> u."""
        t = start + np.arange(len(y))
        return self.power(y) - self.season[t % len(self.season)]

    def inverse(self, u: np.ndarray, start: int) -> np.ndarray:
        """u (H, ...) at times start, start + 1, ... -> y (the power's inverse, clipped to its range)."""
        u = np.asarray(u, dtype=np.float64)
        t = start + np.arange(u.shape[0])
        b = u + self.season[t % len(self.season)].reshape((-1,) + (1,) * (u.ndim - 1))
        if self.lam == 1.0:
            return b
        if self.lam == 0.0:
            return np.exp(np.minimum(b, 700.0))
        return np.maximum(self.lam * b + 1, 0.0) ** (1 / self.lam)
