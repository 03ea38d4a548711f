"""The GRU (Cho et al. 2014, arXiv 1406.1078), gate order r, z, n as in torch.

reset_after=True (torch, cuDNN):
    r = σ(u_r + v_r)      z = σ(u_z + v_z)      with v = LN(h̃ W_hhᵀ)·γ_hh + b_hh
    n = tanh(u_n + r ⊙ v_n)
reset_after=False (Cho 2014, the seeds' formula):
    n = tanh(u_n + LN((r ⊙ h̃) W_hnᵀ)·γ_hn + b_hn)
both:
    h' = (1 − z) ⊙ n + z ⊙ h

u = LN(x W_ihᵀ)·γ_ih + b_ih comes from one GEMM over the whole sequence; h̃ = h ⊙ mask is
recurrent dropout (Gal & Ghahramani 2016); zoneout (Krueger et al. 2016) acts on h'.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .common import project, zoneout


@dataclass(frozen=True)
class GRUSpec:
    """hidden_size: H.  reset_after: where r acts (see module docstring).  layer_norm: per-gate LN."""

    hidden_size: int
    bias: bool = True
    reset_after: bool = True
    layer_norm: bool = False

    family = "gru"
    gates = "rzn"

    @property
    def out_size(self) -> int:
        return self.hidden_size

    @property
    def state_sizes(self) -> tuple[int]:
        return (self.hidden_size,)

    def param_shapes(self, input_size: int) -> dict[str, tuple[int, ...]]:
        H = self.hidden_size
        s = {"w_ih": (3 * H, input_size), "w_hh": (3 * H, H)}
        if self.bias:
            s.update(b_ih=(3 * H,), b_hh=(3 * H,))
        if self.layer_norm:
            s.update(g_ih=(3 * H,), g_hh=(3 * H,))
        return s

    def project(self, x: Tensor, p: dict[str, Tensor]) -> tuple[Tensor]:
        return (project(x, p["w_ih"], p.get("b_ih"), p.get("g_ih"), 3),)

    def step(self, u: tuple[Tensor], state: tuple[Tensor], p: dict[str, Tensor], *,
             keep_h=None, drop: Tensor | None = None, **_):
        """One step. Returns ((h',), {r, z, n})."""
        (h,) = state
        H = self.hidden_size
        h_in = h if drop is None else h * drop
        u_r, u_z, u_n = u[0].chunk(3, -1)
        b_hh, g_hh = p.get("b_hh"), p.get("g_hh")
        if self.reset_after:
            v_r, v_z, v_n = project(h_in, p["w_hh"], b_hh, g_hh, 3).chunk(3, -1)
            r, z = torch.sigmoid(u_r + v_r), torch.sigmoid(u_z + v_z)
            n = torch.tanh(u_n + r * v_n)
        else:
            rows = slice(0, 2 * H), slice(2 * H, 3 * H)
            v_r, v_z = project(h_in, p["w_hh"][rows[0]], _rows(b_hh, rows[0]),
                               _rows(g_hh, rows[0]), 2).chunk(2, -1)
            r, z = torch.sigmoid(u_r + v_r), torch.sigmoid(u_z + v_z)
            n = torch.tanh(u_n + project(r * h_in, p["w_hh"][rows[1]], _rows(b_hh, rows[1]),
                                         _rows(g_hh, rows[1]), 1))
        h_new = (1 - z) * n + z * h
        return (zoneout(h, h_new, keep_h),), {"r": r, "z": z, "n": n}


def _rows(t: Tensor | None, rows: slice) -> Tensor | None:
    return None if t is None else t[rows]
