"""The forecasting network: an lstmkit.LSTM encoder and a multi-quantile, multi-step head.

Shapes: B windows, W window length, E extra input channels, H horizon, Q quantiles.
x: (B, W, 1 + E), channel 0 the scaled target z, the rest standardised level and covariates.

  a     = 1, or 0 with transform "ets"   (there z is already relative to auto-ETS's forecast,
                                           ets_norm.py, and q̂ = 0 reproduces it)
  d_t   = z_t − a·z_W                     (level removed: the net sees changes; arXiv:1704.04110
                                           scales per series for one global model, we shift too)
  h_W   = LSTM([d_t, extra_t])_{t=W}      (the encoder's last hidden state)
  q̂     = a·z_W + A h_W + V d             (A: the head, V: a linear autoregressive highway on
                                           the window, as in LSTNet, arXiv:1703.07015)
  q̂: (B, H, Q), one value per step ahead and quantile, fitted with the pinball loss
  Σ_q max(q·e, (q−1)·e), e = z − q̂ (Koenker & Bassett 1978; MQ-RNN, arXiv:1711.11053).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ...layers import LSTM
from .conformal import CALIBRATIONS
from .transform import MODES

SAMPLINGS = ("window", "series")
TRANSFORMS = (*MODES, "ets")


@dataclass
class ForecastConfig:
    """What the forecaster is and how it is trained.

    horizon: steps forecast at once.  window: input length (None: 3 seasons or 2 horizons,
    at least 12, whichever is larger; 3 seasons beat 2 on sunspots and co2, docs/forecast.md).  quantiles: the levels fitted; 0.5 is the point
    forecast and is added if missing.  hidden / layers: LSTM size.  highway: add the linear
    autoregressive term V d.  steps: training budget; batch: windows per step; lr: peak
    AdamW rate.  val_fraction: the latest share of training windows kept for early
    stopping, evaluated every ``eval_every`` steps; training stops after ``patience``
    evaluations without improvement and the best weights are restored.  backtest_windows:
    rolling origins.  calibration: how the non-median quantiles are shifted to cover the
    validation windows at their nominal rates ("scaled", "plain", "none"; conformal.py).
    transform: the network corrects each series' auto-ETS forecast ("ets"; ets_norm.py; on the
    52-series benchmark geo-mean MASE / auto-ETS 0.971 per series, three seeds, against 1.234
    for "auto"), or sees the series less a per-series Box-Cox power and season ("auto";
    transform.py) or as it is ("none").  shrink: with "ets", the network's median correction
    is multiplied by a weight chosen on the held-out windows (the mean of the weights in MIXES
    that forecast each half of them best; 0: auto-ETS alone; fit.py).  envelope: with "ets",
    each conformal band is widened to hold auto-ETS's own model-based band of the same level
    around the same median (the envelope of two interval forecasts; fit.py).  sampling:
    training windows drawn uniformly ("window": a long series weighs more in a global model)
    or each series with the same chance ("series"; on the 52-series benchmark's global models:
    geo-mean MASE / auto-ETS 1.424 vs 1.431, coverage 0.47 / 0.76 / 0.87 vs 0.46 / 0.72 / 0.83;
    docs/forecast.md).  ensemble: members trained with seeds seed, seed + 1000, ... whose
    quantiles are averaged (3: on the 52-series benchmark 0.971 against 1.010 for one).
    window_fractions: member j reads the last round(f · window) of its input window (at least
    2), f = window_fractions[j mod len]: an ensemble over input lengths as well as seeds
    (N-BEATS's ensembles mix look-backs; (1, ⅔, ½) on the 52-series benchmark: 0.970 against
    0.971 per series, 0.994 against 0.986 global, so not the default).  threads: torch threads
    while fitting (the GEMMs are small: a second thread barely helps on an idle machine and
    costs 10x on a busy one).
    seed: weights and batches.
    """

    horizon: int
    window: int | None = None
    quantiles: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95)
    hidden: int = 32
    layers: int = 1
    highway: bool = True
    steps: int = 300
    batch: int = 64
    lr: float = 3e-3
    val_fraction: float = 0.15
    eval_every: int = 25
    patience: int = 8
    backtest_windows: int = 5
    calibration: str = "scaled"
    transform: str = "ets"
    shrink: bool = True
    envelope: bool = True
    sampling: str = "series"
    ensemble: int = 3
    window_fractions: tuple[float, ...] = (1.0,)
    threads: int = 1
    seed: int = 0

    def __post_init__(self):
        for name in ("horizon", "hidden", "layers", "steps", "batch", "eval_every", "patience", "backtest_windows",
                     "threads", "ensemble"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"--{name.replace('_', '-')}: expected an int >= 1, got {v!r}")
        if self.window is not None and (not isinstance(self.window, int) or self.window < 2):
            raise ValueError(f"--window: expected an int >= 2, got {self.window!r}")
        if self.calibration not in CALIBRATIONS:
            raise ValueError(f"--calibration: expected one of {', '.join(CALIBRATIONS)}, got {self.calibration!r}")
        if self.sampling not in SAMPLINGS:
            raise ValueError(f"--sampling: expected one of {', '.join(SAMPLINGS)}, got {self.sampling!r}")
        if self.transform not in TRANSFORMS:
            raise ValueError(f"--transform: expected one of {', '.join(TRANSFORMS)}, got {self.transform!r}")
        fr = tuple(self.window_fractions)
        if not fr or not all(isinstance(f, (int, float)) and not isinstance(f, bool) and 0 < f <= 1 for f in fr):
            raise ValueError(f"window_fractions: expected numbers in (0, 1], got {self.window_fractions!r}")
        self.window_fractions = tuple(float(f) for f in fr)
        qs = tuple(float(q) for q in self.quantiles)
        if not qs or not all(0 < q < 1 for q in qs):
            raise ValueError(f"--quantiles: expected levels strictly between 0 and 1, got {self.quantiles!r}")
        self.quantiles = tuple(sorted(set(qs) | {0.5}))
        if not 0 < self.val_fraction < 1 or not self.lr > 0:
            raise ValueError(f"val_fraction/lr: expected 0 < val_fraction < 1 and lr > 0, "
                             f"got {self.val_fraction}/{self.lr}")

    def window_for(self, season: int) -> int:
        return self.window if self.window is not None else max(12, 3 * season, 2 * self.horizon)


class ForecastNet(nn.Module):
    def __init__(self, n_extra: int, window: int, cfg: ForecastConfig):
        super().__init__()
        self.horizon, self.n_q, self.window = cfg.horizon, len(cfg.quantiles), window
        self.anchor = cfg.transform != "ets"
        self.encoder = LSTM(1 + n_extra, cfg.hidden, num_layers=cfg.layers, batch_first=True, forget_bias=1.0)
        self.head = nn.Linear(cfg.hidden, cfg.horizon * self.n_q)
        self.highway = nn.Linear(window, cfg.horizon * self.n_q, bias=False) if cfg.highway else None
        nn.init.zeros_(self.head.bias)

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, W, 1 + E) -> quantiles of z: (B, H, Q)."""
        last = x[:, -1:, 0] * float(self.anchor)                   # (B, 1)
        d = x[:, :, 0] - last                                       # (B, W)
        y, _ = self.encoder(torch.cat([d.unsqueeze(-1), x[:, :, 1:]], dim=-1))
        out = self.head(y[:, -1])
        if self.highway is not None:
            out = out + self.highway(d)
        return last.unsqueeze(-1) + out.view(-1, self.horizon, self.n_q)


def pinball_loss(pred: Tensor, target: Tensor, quantiles: Tensor) -> Tensor:
    """pred (B, H, Q), target (B, H), quantiles (Q,) -> mean pinball loss over B, H, Q."""
    e = target.unsqueeze(-1) - pred
    return torch.maximum(quantiles * e, (quantiles - 1) * e).mean()
