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
    """g(k) = k + 0.5 for k ≥ 0, σ(k) otherwise: continuous, positive, linear for large k.
    Written relu(k) + σ(min(k, 0)), the same values without a branch (torch.where is slow on
    the CPU: 4× a sigmoid)."""
    return _act_parts(k)[0]


def _act_parts(k: Tensor) -> tuple[Tensor, Tensor]:
    """(g(k), s = σ(min(k, 0))): g' = 1 for k > 0, s(1 − s) for k < 0 (``act_backward``)."""
    s = torch.sigmoid(k.clamp(max=0))
    return torch.relu(k) + s, s


def act_backward(v: Tensor, k: Tensor, s: Tensor, out: Tensor) -> Tensor:
    """out ← v ⊙ g'(k), with s from ``_act_parts``: v where k > 0, v ⊙ s(1 − s) where k < 0."""
    thr = torch.ops.aten.threshold_backward                 # v ⊙ [x > 0], vectorised
    return torch.add(thr(v, k, 0.0), thr(v * s * (1 - s), -k, 0.0), out=out)


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
        parts = self.coefficient_parts(u)
        return parts["a"], parts["b"]

    def coefficient_parts(self, u: Tensor) -> dict[str, Tensor]:
        """a, b and what their backward reads (z, g, s, k_g)."""
        k_z, k_g = u.chunk(2, -1)
        z = torch.sigmoid(k_z)
        g, s = _act_parts(k_g)
        return {"a": 1 - z, "b": z * g, "z": z, "g": g, "s": s, "k_g": k_g}

    def coefficients_backward(self, parts: dict[str, Tensor], da: Tensor, db: Tensor, du: Tensor) -> None:
        """du (T, B, G·H) ← ∂L/∂u from ∂L/∂a, ∂L/∂b (a = 1 − z, b = z ⊙ g):
        ∂L/∂k_z = (db ⊙ g − da) ⊙ z(1 − z),   ∂L/∂k_g = db ⊙ z ⊙ g'(k_g)."""
        H, z, g = self.hidden_size, parts["z"], parts["g"]
        torch.mul(db * g - da, z * (1 - z), out=du[..., :H])
        act_backward(db * z, parts["k_g"], parts["s"], out=du[..., H:])

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

    def coefficient_parts(self, u: Tensor) -> dict[str, Tensor]:
        """a = f / (f + i), b = i ⊙ g / (f + i) for every step, and what their backward reads."""
        k_i, k_f, k_g = u.chunk(3, -1)
        i, f = torch.sigmoid(k_i), torch.sigmoid(k_f)
        g, s = _act_parts(k_g)
        inv = torch.reciprocal(f + i)
        return {"a": f * inv, "b": i * g * inv, "i": i, "f": f, "g": g, "s": s, "inv": inv, "k_g": k_g}

    def coefficients_backward(self, parts: dict[str, Tensor], da: Tensor, db: Tensor, du: Tensor) -> None:
        """du ← ∂L/∂u from ∂L/∂a, ∂L/∂b. With r = 1/(f + i) and p = f ⊙ i ⊙ (da − db ⊙ g) ⊙ r²:
        ∂L/∂k_i = −p ⊙ (1 − i),   ∂L/∂k_f = p ⊙ (1 − f),   ∂L/∂k_g = db ⊙ i ⊙ r ⊙ g'(k_g)."""
        H = self.hidden_size
        i, f, g, inv = parts["i"], parts["f"], parts["g"], parts["inv"]
        p = (da - db * g) * (f * i * inv * inv)
        torch.mul(p, i - 1, out=du[..., :H])
        torch.mul(p, 1 - f, out=du[..., H:2 * H])
        act_backward(db * i * inv, parts["k_g"], parts["s"], out=du[..., 2 * H:])

    def log_coefficients(self, u: Tensor) -> tuple[Tensor, Tensor]:
        """(log a, log b): log f', log i' + log g (see the module docstring)."""
        k_i, k_f, k_g = u.chunk(3, -1)
        delta = softplus(-k_f) - softplus(-k_i)
        return -softplus(delta), -softplus(-delta) + log_act(k_g)
