"""minGRU and minLSTM (Feng et al. 2024, arXiv 2410.01201, "Were RNNs All We Needed?").

The gates read x_t only, never h_{t−1}, so every step is h' = a ⊙ h + b with a, b known
for the whole sequence from one GEMM: a linear recurrence, run in parallel over time by a
scan (``engines.scan``, Heinsen 2023, arXiv 2311.06281) or step by step (``step``, the oracle).

u = x W_ihᵀ + b_ih (one GEMM over the sequence), split per gate into k_z, k_g (minGRU) or k_i, k_f, k_g (minLSTM);
act(k) = k + 0.5 for k ≥ 0, σ(k) otherwise (keeps g > 0, so that the scan stays in log space).

minGRU (gate order z, g):
    z = σ(k_z)      g = act(k_g)  (the paper's h̃)
    h' = (1 − z) ⊙ h + z ⊙ g                          a = 1 − z,  b = z ⊙ g
minLSTM (gate order i, f, g, as torch's LSTM):
    f = σ(k_f)      i = σ(k_i)      g = act(k_g)  (h̃)
    f' = f / (f + i)      i' = i / (f + i)            (normalised: length-independent scale)
    h' = f' ⊙ h + i' ⊙ g                               a = f',     b = i' ⊙ g

Log space (``log_coefficients``), so that products over many steps neither under- nor overflow:
    log z = −softplus(−k_z)      log(1 − z) = −softplus(k_z)
    log act(k) = log(k + 0.5) for k ≥ 0, −softplus(−k) otherwise
    log f' = −softplus(δ), log i' = −softplus(−δ) with δ = softplus(−k_f) − softplus(−k_i)
      (log f − log i = −δ, and f' = 1 / (1 + i/f)).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from . import common


def softplus(k: Tensor) -> Tensor:
    """log(1 + e^k). torch's softplus is linear past k = 20, an error of e^−20 ≈ 2e−9: below
    float32's resolution there, but visible in float64 against the step loop, so float64 moves
    the switch to k = 40 (error e^−40 ≈ 4e−18)."""
    return torch.nn.functional.softplus(k, threshold=40.0 if k.dtype == torch.float64 else 20.0)


def act(k: Tensor) -> Tensor:
    """g(k) = k + 0.5 for k ≥ 0, σ(k) otherwise: continuous, positive, linear for large k."""
    return torch.where(k >= 0, k.clamp(min=0) + 0.5, torch.sigmoid(k.clamp(max=0)))


def log_act(k: Tensor) -> Tensor:
    """log g(k), without forming g (the clamps keep the unused branch's gradient finite)."""
    return torch.where(k >= 0, torch.log(k.clamp(min=0) + 0.5), -softplus(-k.clamp(max=0)))


@dataclass(frozen=True)
class MinGRUSpec:
    """hidden_size: H.  bias: b_ih.  Rows of W_ih: z, g (each H)."""

    hidden_size: int
    bias: bool = True

    family = "mingru"
    gates = "zg"

    @property
    def out_size(self) -> int:
        return self.hidden_size

    def param_shapes(self, input_size: int) -> dict[str, tuple[int, ...]]:
        G = len(self.gates) * self.hidden_size
        return {"w_ih": (G, input_size), **({"b_ih": (G,)} if self.bias else {})}

    def project(self, x: Tensor, p: dict[str, Tensor]) -> Tensor:
        """u = x W_ihᵀ + b_ih: (T, B, D) -> (T, B, G·H)."""
        return common.project(x, p["w_ih"], p.get("b_ih"), None, 1)

    def gate_values(self, u: Tensor) -> dict[str, Tensor]:
        """The gates themselves (trace letters): z, g."""
        k_z, k_g = u.chunk(2, -1)
        return {"z": torch.sigmoid(k_z), "g": act(k_g)}

    def step(self, u: Tensor, h: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """One step in plain arithmetic (the oracle): h' = (1 − z) ⊙ h + z ⊙ g."""
        gv = self.gate_values(u)
        z, g = gv["z"], gv["g"]
        return (1 - z) * h + z * g, gv

    def coefficients(self, u: Tensor) -> tuple[Tensor, Tensor]:
        """(a, b) of h' = a ⊙ h + b for every step at once: 1 − z, z ⊙ g."""
        gv = self.gate_values(u)
        return 1 - gv["z"], gv["z"] * gv["g"]

    def log_coefficients(self, u: Tensor) -> tuple[Tensor, Tensor]:
        """(log a, log b) of h' = a ⊙ h + b: log(1 − z), log z + log g."""
        k_z, k_g = u.chunk(2, -1)
        return -softplus(k_z), -softplus(-k_z) + log_act(k_g)


@dataclass(frozen=True)
class MinLSTMSpec(MinGRUSpec):
    """hidden_size: H.  bias: b_ih.  Rows of W_ih: i, f, g (each H), in torch's gate order."""

    family = "minlstm"
    gates = "ifg"

    def gate_values(self, u: Tensor) -> dict[str, Tensor]:
        """The gates themselves (trace letters): i, f (before normalising) and g."""
        k_i, k_f, k_g = u.chunk(3, -1)
        return {"i": torch.sigmoid(k_i), "f": torch.sigmoid(k_f), "g": act(k_g)}

    def step(self, u: Tensor, h: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """One step in plain arithmetic (the oracle): h' = f/(f+i) ⊙ h + i/(f+i) ⊙ g."""
        gv = self.gate_values(u)
        i, f, g = gv["i"], gv["f"], gv["g"]
        return (f * h + i * g) / (f + i), gv

    def coefficients(self, u: Tensor) -> tuple[Tensor, Tensor]:
        """(a, b) for every step at once: f / (f + i), i ⊙ g / (f + i)."""
        gv = self.gate_values(u)
        s = gv["f"] + gv["i"]
        return gv["f"] / s, gv["i"] * gv["g"] / s

    def log_coefficients(self, u: Tensor) -> tuple[Tensor, Tensor]:
        """(log a, log b): log f', log i' + log g (see the module docstring)."""
        k_i, k_f, k_g = u.chunk(3, -1)
        delta = softplus(-k_f) - softplus(-k_i)
        return -softplus(delta), -softplus(-delta) + log_act(k_g)
