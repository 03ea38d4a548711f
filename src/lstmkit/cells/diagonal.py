"""Diagonal-recurrence cells: the LSTM and GRU of ParaRNN (Danieli et al. 2025, arXiv 2510.21450).

The recurrent matrix W_hh of each gate is diagonal, stored as its diagonal: w_hh (G·H,) holds
a_k (H,) per gate k, so unit j of the new state reads unit j of the old state only. The
Jacobian ∂s_t/∂s_{t−1} is then one K × K block per unit (K = 2 for the LSTM's (h, c), 1 for
the GRU's h), which is what lets the Newton solver (``engines.newton``) solve for the whole
trajectory with a parallel scan per iteration.

u = x W_ihᵀ + b_ih comes from one GEMM over the whole sequence, split per gate.

ParaLSTM (CIFG with peepholes, Greff et al. 2017, arXiv 1503.04069; rows f, g, o):
    f  = σ(u_f + a_f ⊙ h + w_cf ⊙ c)          (peephole on the old c)
    g  = tanh(u_g + a_g ⊙ h)                  (the seeds' C̃)
    c' = f ⊙ c + (1 − f) ⊙ g                  (coupled: i = 1 − f)
    o  = σ(u_o + a_o ⊙ h + w_co ⊙ c')         (peephole on the new c')
    h' = o ⊙ tanh(c')
ParaGRU (rows r, z, n, torch's order and update h' = (1 − z) ⊙ n + z ⊙ h):
    r  = σ(u_r + a_r ⊙ h)      z = σ(u_z + a_z ⊙ h)      n = tanh(u_n + r ⊙ (a_n ⊙ h))
    h' = (1 − z) ⊙ n + z ⊙ h
(with a diagonal recurrence and no recurrent bias, resetting before or after the product is
the same: r ⊙ (a_n ⊙ h) = a_n ⊙ (r ⊙ h)).

A state is a tuple of K tensors (ParaLSTM (h, c), ParaGRU (h,)); ``step`` takes and returns
that tuple and works on any leading shape, so one call evaluates all T steps at once when the
previous states are given (the Newton solver's residual and Jacobian).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from . import common


@dataclass(frozen=True)
class DiagLSTMSpec:
    """hidden_size: H.  bias: b_ih.  Rows of W_ih and entries of w_hh: f, g, o (each H)."""

    hidden_size: int
    bias: bool = True

    family = "paralstm"
    gates = "fgo"
    state_names = ("h", "c")
    peepholes = ("w_cf", "w_co")

    @property
    def out_size(self) -> int:
        return self.hidden_size

    def param_shapes(self, input_size: int) -> dict[str, tuple[int, ...]]:
        """Short symbol -> shape: w_ih (G·H, D), w_hh (G·H,) the diagonals, b_ih, peepholes w_cf, w_co."""
        G, H = len(self.gates) * self.hidden_size, self.hidden_size
        s = {"w_ih": (G, input_size), "w_hh": (G,)}
        if self.bias:
            s["b_ih"] = (G,)
        s.update({name: (H,) for name in self.peepholes})
        return s

    def project(self, x: Tensor, p: dict[str, Tensor]) -> Tensor:
        """u = x W_ihᵀ + b_ih: (T, B, D) -> (T, B, G·H)."""
        return common.project(x, p["w_ih"], p.get("b_ih"), None, 1)

    def step(self, u: Tensor, state: tuple[Tensor, ...], p: dict[str, Tensor]):
        """One step (any leading shape): ((h', c'), gates {i, f, g, o}) — see the module docstring."""
        h, c = state
        u_f, u_g, u_o = u.chunk(3, -1)
        a_f, a_g, a_o = p["w_hh"].chunk(3)
        f = torch.sigmoid(u_f + a_f * h + p["w_cf"] * c)
        g = torch.tanh(u_g + a_g * h)
        c_new = f * c + (1 - f) * g
        o = torch.sigmoid(u_o + a_o * h + p["w_co"] * c_new)
        return (o * torch.tanh(c_new), c_new), {"i": 1 - f, "f": f, "g": g, "o": o}

    def jacobian(self, u: Tensor, state: tuple[Tensor, ...], p: dict[str, Tensor]):
        """``step``'s new state and its per-unit Jacobian J (…, K, K, B, H), J[i, k] = ∂s'_i/∂s_k
        with s = (h, c); σ' = σ(1 − σ), tanh' = 1 − tanh², τ = tanh(c'):
            ∂c'/∂h = σ'_f a_f (c − g) + (1 − f) tanh'_g a_g      ∂c'/∂c = σ'_f w_cf (c − g) + f
            κ = σ'_o w_co τ + o (1 − τ²)
            ∂h'/∂h = σ'_o a_o τ + κ ∂c'/∂h                      ∂h'/∂c = κ ∂c'/∂c"""
        h, c = state
        (h_new, c_new), gates = self.step(u, state, p)
        f, g, o = gates["f"], gates["g"], gates["o"]
        a_f, a_g, a_o = p["w_hh"].chunk(3)
        tau = torch.tanh(c_new)
        df, do_ = f * (1 - f) * (c - g), o * (1 - o)
        dc_h = df * a_f + (1 - f) * (1 - g * g) * a_g
        dc_c = df * p["w_cf"] + f
        kappa = do_ * p["w_co"] * tau + o * (1 - tau * tau)
        J = torch.stack([torch.stack([do_ * a_o * tau + kappa * dc_h, kappa * dc_c], -3),
                         torch.stack([dc_h, dc_c], -3)], -4)
        return (h_new, c_new), J


@dataclass(frozen=True)
class DiagGRUSpec(DiagLSTMSpec):
    """hidden_size: H.  bias: b_ih.  Rows of W_ih and entries of w_hh: r, z, n (each H)."""

    family = "paragru"
    gates = "rzn"
    state_names = ("h",)
    peepholes = ()

    def step(self, u: Tensor, state: tuple[Tensor, ...], p: dict[str, Tensor]):
        """One step (any leading shape): ((h',), gates {r, z, n})."""
        (h,) = state
        u_r, u_z, u_n = u.chunk(3, -1)
        a_r, a_z, a_n = p["w_hh"].chunk(3)
        r = torch.sigmoid(u_r + a_r * h)
        z = torch.sigmoid(u_z + a_z * h)
        n = torch.tanh(u_n + r * (a_n * h))
        return ((1 - z) * n + z * h,), {"r": r, "z": z, "n": n}

    def jacobian(self, u: Tensor, state: tuple[Tensor, ...], p: dict[str, Tensor]):
        """``step``'s new state and its Jacobian (…, 1, 1, B, H):
            ∂h'/∂h = z + σ'_z a_z (h − n) + (1 − z) tanh'_n a_n (r + σ'_r a_r h)"""
        (h,) = state
        new, gates = self.step(u, state, p)
        r, z, n = gates["r"], gates["z"], gates["n"]
        a_r, a_z, a_n = p["w_hh"].chunk(3)
        dh = z + z * (1 - z) * a_z * (h - n) + (1 - z) * (1 - n * n) * a_n * (r + r * (1 - r) * a_r * h)
        return new, dh.unsqueeze(-3).unsqueeze(-4)


__all__ = ["DiagGRUSpec", "DiagLSTMSpec"]
