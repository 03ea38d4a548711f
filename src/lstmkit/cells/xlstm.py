"""sLSTM and mLSTM (Beck et al. 2024, arXiv 2405.04517, "xLSTM: Extended Long Short-Term Memory").

Both keep the LSTM's cell but gate it with an exponential input gate, carry a normaliser n and
a stabiliser m (the running log-scale of the gates, so that exp never overflows). Heads: the
H units are cut into NH heads of d = H / NH units.

sLSTM (scalar memory, memory mixing through block-diagonal recurrent heads), gate order
i, f, g, o as torch's LSTM (g is the paper's z); a = u + R h (u = W_ih x + b from one GEMM,
R block-diagonal: head j's rows read head j's units of h only):
    ĩ, f̃, g̃, õ = a                      (each H)
    log f = log σ(f̃)  (forget="sigmoid")  or  f̃  (forget="exp")
    m' = max(log f + m, ĩ)                                           (paper eq. 15)
    i' = exp(ĩ − m'),   f' = exp(log f + m − m')                     (eqs. 16, 17)
    c' = f' ⊙ c + i' ⊙ tanh(g̃)
    n' = f' ⊙ n + i'
    h' = σ(õ) ⊙ c' / n'
The unstabilised cell (c̄' = f c̄ + exp(ĩ) g, n̄' = f n̄ + exp(ĩ)) is the same one scaled:
c = c̄ e^{−m}, n = n̄ e^{−m}, so h' is the same and m only keeps the numbers finite.

mLSTM (matrix memory, no memory mixing: the gates read x only, so it runs in parallel over
time), per head, with q, k, v, õ (each H) and ĩ, f̃ (one per head) from u = W_ih x + b:
    k ← k / √d
    log f = log σ(f̃),   m' = max(log f + m, ĩ)
    i' = exp(ĩ − m'),   f' = exp(log f + m − m')
    C' = f' C + i' v kᵀ        (d × d per head)
    n' = f' n + i' k
    h̃ = C' q / max(|n'ᵀ q|, e^{−m'})                                  (eqs. 19–27)
    h' = σ(õ) ⊙ h̃
Unstabilised: C̄ = C e^{m}, n̄ = n e^{m}, h̃ = C̄ q / max(|n̄ᵀ q|, 1); ``normalise`` evaluates it
without forming e^{±m} beyond 1 (no inf, hence no 0·inf in the backward).

A fresh state is h = c = n = C = 0 and m = ``M_FRESH`` (−10⁴, "minus infinity" kept finite):
the first step's m' is then its ĩ, so n' = 1 (sLSTM) instead of an underflowed 0 and 0/0.
Masked steps (``lengths``) use log f = 0 and ĩ = ``M_FRESH``: the state stays as it was.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor
from torch.nn import functional as F

from . import common

M_FRESH = -1e4          # a fresh stabiliser: exp(M_FRESH − anything sane) is exactly 0
FORGET = ("sigmoid", "exp")


class SLSTMState(NamedTuple):
    """sLSTM state, each (L, B, H) (one layer: (B, H)): hidden h, cell c, normaliser n, stabiliser m."""

    h: Tensor
    c: Tensor
    n: Tensor
    m: Tensor


class MLSTMState(NamedTuple):
    """mLSTM state: C (L, B, NH, d, d) matrix memory (rows: value units, columns: key units),
    n (L, B, NH, d) normaliser, m (L, B, NH) stabiliser; one layer drops the L."""

    C: Tensor
    n: Tensor
    m: Tensor


def log_forget(f_tilde: Tensor, forget: str = "sigmoid") -> Tensor:
    """log f: log σ(f̃) (exact for every f̃: torch's logsigmoid) or f̃ itself (exponential gate)."""
    return F.logsigmoid(f_tilde) if forget == "sigmoid" else f_tilde


def stabilise(i_tilde: Tensor, log_f: Tensor, m: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """m' = max(log f + m, ĩ), i' = exp(ĩ − m'), f' = exp(log f + m − m') -> (i', f', m')."""
    m_new = torch.maximum(log_f + m, i_tilde)
    return torch.exp(i_tilde - m_new), torch.exp(log_f + m - m_new), m_new


def normalise(num: Tensor, den: Tensor, m: Tensor) -> Tensor:
    """num / max(|den|, e^{−m}) for num (…, d), den (…), m (…), as num·s / max(|den|·s, r)
    with s = e^{min(m, 0)}, r = e^{−max(m, 0)}: both ≤ 1, so no exp overflows at any m."""
    s, r = torch.exp(m.clamp(max=0)), torch.exp(-m.clamp(min=0))
    return num * s.unsqueeze(-1) / torch.maximum(den.abs() * s, r).unsqueeze(-1)


def _heads(hidden_size: int, num_heads: int) -> int:
    if hidden_size % num_heads:
        raise ValueError(f"num_heads: expected a divisor of hidden_size {hidden_size}, got {num_heads}")
    return hidden_size // num_heads


@dataclass(frozen=True)
class _HeadsSpec:
    """What the sLSTM and mLSTM specs share: H split over NH heads of d = H / NH units, and the
    input terms u = x W_ihᵀ + b_ih for the whole sequence (one GEMM: ``common.project``)."""

    hidden_size: int
    num_heads: int = 4
    bias: bool = True

    def __post_init__(self):
        _heads(self.hidden_size, self.num_heads)

    @property
    def head_size(self) -> int:
        return self.hidden_size // self.num_heads

    def project(self, x: Tensor, p: dict[str, Tensor]) -> Tensor:
        """u = x W_ihᵀ + b_ih: (T, B, D) -> (T, B, rows of W_ih)."""
        return common.project(x, p["w_ih"], p.get("b_ih"), None, 1)


@dataclass(frozen=True)
class SLSTMSpec(_HeadsSpec):
    """hidden_size: H.  num_heads: NH, heads of the block-diagonal R.  bias: b_ih.  forget:
    "sigmoid" or "exp".  Rows of W_ih (4H, D) and b_ih (4H,): i, f, g, o; W_hh (4H, d): row r
    belongs to head (r mod H) // d and reads that head's d units of h."""

    forget: str = "sigmoid"

    family = "slstm"
    gates = "ifgo"

    def param_shapes(self, input_size: int) -> dict[str, tuple[int, ...]]:
        H = self.hidden_size
        return {"w_ih": (4 * H, input_size), "w_hh": (4 * H, self.head_size), **({"b_ih": (4 * H,)} if self.bias else {})}

    def recurrent(self, h: Tensor, w_hh: Tensor) -> Tensor:
        """R h, block-diagonal: (B, H) -> (B, 4H); head j: h_j (B, d) R_jᵀ with R_j (4d, d)."""
        B, H, NH, d = h.shape[0], self.hidden_size, self.num_heads, self.head_size
        R = w_hh.view(4, NH, d, d)                                # gate, head, out unit, in unit
        return torch.einsum("bnk,gnjk->bgnj", h.view(B, NH, d), R).reshape(B, 4 * H)

    def gates_of(self, a: Tensor, m: Tensor) -> dict[str, Tensor]:
        """The gates from a = u + R h and the old m: i', f', g = tanh(g̃), o = σ(õ), m', log f."""
        i_t, f_t, g_t, o_t = a.chunk(4, -1)
        log_f = log_forget(f_t, self.forget)
        i, f, m_new = stabilise(i_t, log_f, m)
        return {"i": i, "f": f, "g": torch.tanh(g_t), "o": torch.sigmoid(o_t), "m": m_new, "log_f": log_f}

    def step(self, a: Tensor, state: SLSTMState) -> tuple[SLSTMState, dict[str, Tensor]]:
        """One step from the pre-activations a = u_t + R h (B, 4H): the equations above."""
        gv = self.gates_of(a, state.m)
        c = gv["f"] * state.c + gv["i"] * gv["g"]
        n = gv["f"] * state.n + gv["i"]
        return SLSTMState(gv["o"] * c / n, c, n, gv["m"]), gv


@dataclass(frozen=True)
class MLSTMSpec(_HeadsSpec):
    """hidden_size: H.  num_heads: NH.  bias: b_ih.  Rows of W_ih (4H + 2NH, D) and b_ih: q, k, v, o
    (each H, head-major: unit r is head r // d), then ĩ, f̃ (each NH)."""

    family = "mlstm"
    gates = "qkvoif"

    def param_shapes(self, input_size: int) -> dict[str, tuple[int, ...]]:
        G = 4 * self.hidden_size + 2 * self.num_heads
        return {"w_ih": (G, input_size), **({"b_ih": (G,)} if self.bias else {})}

    def split(self, u: Tensor) -> dict[str, Tensor]:
        """u (…, 4H + 2NH) -> q, k (scaled by 1/√d), v (…, NH, d); õ (…, H); ĩ, log f (…, NH)."""
        H, NH, d = self.hidden_size, self.num_heads, self.head_size
        q, k, v, o_t, i_t, f_t = u.split([H, H, H, H, NH, NH], -1)
        heads = u.shape[:-1] + (NH, d)
        return {"q": q.reshape(heads), "k": k.reshape(heads) / math.sqrt(d), "v": v.reshape(heads),
                "o_tilde": o_t, "i_tilde": i_t, "log_f": log_forget(f_t)}

    def step(self, s: dict[str, Tensor], state: MLSTMState) -> tuple[Tensor, MLSTMState, dict[str, Tensor]]:
        """One step (the oracle) from ``split`` of u_t: -> h̃ (B, NH, d), the new state, gates i', f'."""
        q, k, v = s["q"], s["k"], s["v"]
        i, f, m = stabilise(s["i_tilde"], s["log_f"], state.m)              # (B, NH)
        C = f[..., None, None] * state.C + i[..., None, None] * (v.unsqueeze(-1) * k.unsqueeze(-2))
        n = f[..., None] * state.n + i[..., None] * k
        num = (C @ q.unsqueeze(-1)).squeeze(-1)                            # C q
        h_tilde = normalise(num, (n * q).sum(-1), m)
        return h_tilde, MLSTMState(C, n, m), {"i": i, "f": f}
