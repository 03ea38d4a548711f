"""The vanilla LSTM's inner loops with the fewest possible torch calls per step.

Same maths, saved tensors and results as the general loops of ``_fused_lstm_py`` (which the
tests compare to the reference engine); used when the layer has no variant option, no
noise and no padding. Per step the forward makes one GEMM (u_t + h W_hhᵀ straight into the
gate buffer) and in-place pointwise calls (tanh as 2σ(2x) − 1, see ``fused.tanh_``); the
backward one GEMM and pointwise calls with torch's own sigmoid/tanh backward kernels
(da = dσ ⊙ σ ⊙ (1 − σ), dth ⊙ (1 − th²)).
Per-step views are made once per call (``unbind``) because at size S the Python cost of a
call, not the arithmetic, sets the speed (see docs/fused.md).
"""
from __future__ import annotations

import torch
from torch import Tensor

from .fused import tanh, tanh_

_sig_bwd = torch.ops.aten.sigmoid_backward.grad_input
_tanh_bwd = torch.ops.aten.tanh_backward.grad_input


def is_vanilla(cfg, xd, w_hr, g_hh, mask, keep_c, keep_h, drop) -> bool:
    return (cfg.gates == "ifgo" and not cfg.peepholes and not cfg.niaf and not cfg.noaf
            and g_hh is None and w_hr is None and xd is None and mask is None
            and keep_c is None and keep_h is None and drop is None)


def _seq(S: Tensor, reverse: bool):
    """Per-step views (prev state, new state) of a (T+1, B, ·) state buffer, in time order."""
    steps = S.unbind(0)
    return (steps[1:], steps[:-1]) if reverse else (steps[:-1], steps[1:])


def _gates(A: Tensor, H: int):
    return tuple(A[..., k * H:(k + 1) * H].unbind(0) for k in range(4))


def forward(u: Tensor, h0: Tensor, c0: Tensor, w_hh: Tensor, reverse: bool):
    """-> (A, Hs, Cs) exactly as the general loop saves them."""
    T, B, GH = u.shape
    H = GH // 4
    A = torch.empty_like(u)
    Hs, Cs = u.new_empty(T + 1, B, h0.shape[-1]), u.new_empty(T + 1, B, H)
    first = T if reverse else 0
    Hs[first], Cs[first] = h0, c0
    Hp, Hn = _seq(Hs, reverse)
    Cp, Cn = _seq(Cs, reverse)
    As, Us = A.unbind(0), u.unbind(0)
    IF = A[..., :2 * H].unbind(0)
    I, F, G, O = _gates(A, H)
    WT = w_hh.t()
    th = u.new_empty(B, H)
    for t in (range(T - 1, -1, -1) if reverse else range(T)):
        torch.addmm(Us[t], Hp[t], WT, out=As[t])
        IF[t].sigmoid_()
        tanh_(G[t])
        O[t].sigmoid_()
        c = torch.mul(F[t], Cp[t], out=Cn[t]).addcmul_(I[t], G[t])
        torch.mul(O[t], tanh(c, out=th), out=Hn[t])
    return A, Hs, Cs


def backward(A: Tensor, Hs: Tensor, Cs: Tensor, w_hh: Tensor, reverse: bool, gY, ghT, gcT, gC):
    """-> (du, dh0, dc0); see docs/derivations/lstm.md (the vanilla case)."""
    T, B, GH = A.shape
    H = GH // 4
    I, F, G, O = _gates(A, H)
    dA = torch.empty_like(A)
    dI, dF, dG, dO = _gates(dA, H)
    dAs = dA.unbind(0)
    Cp, Cn = _seq(Cs, reverse)
    dh = ghT if ghT is not None else Hs.new_zeros(B, Hs.shape[-1])
    dc = gcT if gcT is not None else Cs.new_zeros(B, H)
    for t in (range(T) if reverse else range(T - 1, -1, -1)):
        if gY is not None:
            dh = dh + gY[t]
        if gC is not None:
            dc = dc + gC[t]
        th = tanh(Cn[t])
        _sig_bwd(dh * th, O[t], grad_input=dO[t])                       # do_ -> da_o
        dcn = torch.ops.aten.tanh_backward(dh * O[t], th).add_(dc)       # dc' = dc + dth ⊙ (1 − th²)
        _tanh_bwd(dcn * I[t], G[t], grad_input=dG[t])                   # dg -> da_g
        _sig_bwd(dcn * G[t], I[t], grad_input=dI[t])                    # di -> da_i
        _sig_bwd(dcn * Cp[t], F[t], grad_input=dF[t])                   # df -> da_f
        dc = dcn * F[t]
        dh = dAs[t] @ w_hh
    return dA, dh, dc
