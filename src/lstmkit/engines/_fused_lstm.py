"""Fused LSTM (every variant of ``cells.lstm``): forward and hand-written backward.

Symbols as in cells/lstm.py and docs/derivations/lstm.md. Saved by the forward: see
``engines.fused``. The input terms u = x W_ihᵀ (b = b_ih + b_hh is added in the loop) or,
with layer norm, u = LN(x W_ihᵀ)·γ_ih + b_ih + b_hh, and the depth-gate input
xd = x W_xdᵀ + b_d come from one GEMM each (autograd); this Function returns du, db and
dxd, and autograd turns them into dW_ih, db_ih, db_hh, dγ_ih, dW_xd, db_d and dx with
three large GEMMs. The time loops run in C++ (csrc/lstm.cpp) or, where that cannot be
built, in PyTorch calls (_fused_lstm_py.py); after the loop the weight gradients are large
GEMMs and sums here:

    dW_hh = Σ_t dY_tᵀ h̃_t     dγ_hh = Σ dA ⊙ Ŷ     dw_c· = Σ dA_· ⊙ c (c' for o)
    dW_hr = Σ_t dH'_tᵀ m_t    dw_cd = Σ dXD ⊙ c    dw_ld = Σ dXD ⊙ c_low
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..cells.common import LN_EPS
from . import EngineResult, Noise
from . import _ext
from . import _fused_lstm_py as _py
from .fused import input_terms, ln_normalised, new_view, prev_view


@dataclass(frozen=True)
class _Cfg:
    """The non-tensor arguments of one call."""

    gates: str           # letters with weight rows, in i, f, g, o order
    peepholes: str
    coupled: bool
    niaf: bool           # no input activation: g = a_g
    noaf: bool           # no output activation: m = o ⊙ c'
    reverse: bool


def _keep(k, like: Tensor):
    """A zoneout keep as the C++ loop takes it: a tensor (a rate becomes a 0-dim one)."""
    return k if k is None or isinstance(k, Tensor) else like.new_tensor(float(k))


def _c(*ts):
    """The C++ loops read raw memory: every tensor contiguous (a no-op for most)."""
    return [t.contiguous() if isinstance(t, Tensor) else t for t in ts]


def _some(t: Tensor | None) -> Tensor | None:
    """The C++ loops return empty tensors for the absent ones."""
    return t if t is not None and t.numel() else None


class LSTMFunction(torch.autograd.Function):
    """(u, b, xd, c_low, h0, c0, W_hh, γ_hh, w_ci, w_cf, w_co, γ_c, β_c, W_hr, w_cd, w_ld;
    mask, keep_c, keep_h, drop) -> (Y, h_T, c_T, Cseq, A, D). The gate inputs are
    u + b + recurrent terms: b (b_ih + b_hh, or None) is added inside the loop, which spares
    the input GEMM a pass that broadcasts it over all T·B rows; db = Σ dA."""

    @staticmethod
    def forward(ctx, cfg: _Cfg, keep: bool, u, b, xd, c_low, h0, c0, w_hh, g_hh, w_ci, w_cf, w_co, g_c, b_c,
                w_hr, w_cd, w_ld, mask, keep_c, keep_h, drop):
        T = u.shape[0]
        ctx.has_b = b is not None
        params = (w_hh, g_hh, w_ci, w_cf, w_co, g_c, b_c, w_hr, w_cd, w_ld)
        ops = _ext.ops(u.device)
        ctx.ops, ctx.cfg, ctx.keep_c, ctx.keep_h = ops, cfg, keep_c, keep_h
        if ops is not None:
            B = u.shape[1]
            dirty = u.is_contiguous()             # else the loop overwrites a contiguous copy
            saved = ops.lstm_forward(*_c(u, b, xd, c_low, h0, c0, *params, mask, _keep(keep_c, u),
                                         _keep(keep_h, u), drop), _ext.packed(w_hh, B),
                                     _ext.packed(w_hr, B), cfg.gates,
                                     cfg.coupled, cfg.niaf, cfg.noaf, cfg.reverse, keep, LN_EPS)
            saved = [saved[0], saved[1], saved[2]] + [_some(s) for s in saved[3:]]
            if dirty:
                ctx.mark_dirty(u)                 # A is u, overwritten with the gates
        else:
            u = u if b is None else u + b
            saved = _py.forward(cfg, u, xd, c_low, h0, c0, *params, mask, keep_c, keep_h, drop)
        A, Hs, Cs, Cn, M, D, Yr, Mu, Rs = saved
        ctx.save_for_backward(*saved, c_low, *params, mask, drop)
        Y = new_view(Hs, cfg.reverse)
        if mask is not None:
            Y = Y * mask
        last = 0 if cfg.reverse else T
        out_D = D if D is not None else u.new_empty(0)
        ctx.mark_non_differentiable(A, out_D)
        return Y, Hs[last], Cs[last], new_view(Cs, cfg.reverse), A, out_D

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, gY, ghT, gcT, gC, _gA, _gD):
        sv = ctx.saved_tensors
        (A, Hs, Cs, Cn, M, D, Yr, Mu, Rs, c_low, w_hh, g_hh, w_ci, w_cf, w_co, g_c, b_c, w_hr,
         w_cd, w_ld, mask, drop) = sv
        cfg, keep_c, keep_h = ctx.cfg, ctx.keep_c, ctx.keep_h
        want_dcl = D is not None and ctx.needs_input_grad[5]
        if ctx.ops is not None:
            B = A.shape[1]
            w_hhT = w_hh.t().contiguous()
            w_hrT = w_hr.t().contiguous() if w_hr is not None else None
            grads = ctx.ops.lstm_backward(*_c(*sv[:20], mask, _keep(keep_c, A), _keep(keep_h, A),
                                              drop, gY, ghT, gcT, gC), w_hhT, _ext.packed(w_hhT, B),
                                          w_hrT, _ext.packed(w_hrT, B), want_dcl, cfg.gates, cfg.coupled,
                                          cfg.niaf, cfg.noaf, cfg.reverse, LN_EPS)
            dA, dY, dHn, dXD, dCl, dh, dc, dg_c, db_c, dg_hh = [_some(g) for g in grads]
        else:
            dA, dY, dHn, dXD, dCl, dh, dc, dg_c, db_c = _py.backward(
                cfg, *sv[:20], mask, keep_c, keep_h, drop, gY, ghT, gcT, gC, want_dcl)
            dg_hh = (dA * ln_normalised(Yr, Mu, Rs)).sum((0, 1)) if g_hh is not None else None
        if dY is None:
            dY = dA
        T, B, GH = A.shape
        H, R = Cs.shape[-1], Hs.shape[-1]
        sl = {k: slice(j * H, (j + 1) * H) for j, k in enumerate(cfg.gates)}
        hin = prev_view(Hs, cfg.reverse)
        if drop is not None:
            hin = hin * drop
        dW_hh = dY.reshape(T * B, GH).t() @ hin.reshape(T * B, R)
        Cp = prev_view(Cs, cfg.reverse)
        Cnew = Cn if Cn is not None else new_view(Cs, cfg.reverse)
        dpe = {k: (dA[..., sl[k]] * (Cnew if k == "o" else Cp)).sum((0, 1)) for k in cfg.peepholes}
        dW_hr = dHn.reshape(T * B, R).t() @ M.reshape(T * B, H) if w_hr is not None else None
        dw_cd = (dXD * Cp).sum((0, 1)) if D is not None else None
        dw_ld = (dXD * c_low).sum((0, 1)) if D is not None else None
        db = dA.sum((0, 1)) if ctx.has_b else None
        return (None, None, dA, db, dXD, dCl, dh, dc, dW_hh, dg_hh, dpe.get("i"), dpe.get("f"), dpe.get("o"),
                dg_c, db_c, dW_hr, dw_cd, dw_ld, None, None, None, None)


def run_lstm(spec, x: Tensor, state, p, *, mask=None, reverse=False, noise: Noise = Noise(),
             c_low=None, want_cells=False, record=False) -> EngineResult:
    ab = spec.ablate
    cfg = _Cfg(spec.gates, spec.peepholes, spec.coupled, "input_activation" in ab,
               "output_activation" in ab, bool(reverse))
    b = None
    if spec.layer_norm:
        u = input_terms(x, p["w_ih"], p.get("b_ih"), p.get("g_ih"), len(spec.gates), p.get("b_hh"))
    else:
        u = input_terms(x, p["w_ih"], None, None, len(spec.gates))
        if spec.bias:
            b = p["b_ih"] + p["b_hh"]
    xd = None
    if spec.depth_gate:
        T, B, D = x.shape
        xd = torch.addmm(p["b_d"], x.reshape(T * B, D), p["w_xd"].t()).view(T, B, -1)
    h0, c0 = state
    ins = (u, b, xd, c_low, h0, c0) + tuple(p.values())
    # keep: the per-step buffers over all steps, for a backward or the trace; else one step
    keep = record or (torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in ins))
    Y, hT, cT, Cseq, A, Dg = LSTMFunction.apply(
        cfg, keep, u, b, xd, c_low if spec.depth_gate else None, h0, c0, p["w_hh"], p.get("g_hh"),
        p.get("w_ci"), p.get("w_cf"), p.get("w_co"), p.get("g_c"), p.get("b_c"), p.get("w_hr"),
        p.get("w_cd"), p.get("w_ld"), mask, noise.keep_c, noise.keep_h, noise.drop)
    rec = _record(spec, A, Dg, Cseq, Y, mask) if record else None
    return EngineResult(Y, (hT, cT), Cseq if want_cells else None, rec)


def _record(spec, A: Tensor, Dg: Tensor, Cseq: Tensor, Y: Tensor, mask) -> dict[str, Tensor]:
    """The trace record: i, f, g, [d,] o, c, h at their effective values, zero on padding."""
    H = spec.hidden_size
    A = A.detach()
    got = {k: A[..., j * H:(j + 1) * H] for j, k in enumerate(spec.gates)}
    ones = A.new_ones(A.shape[:-1] + (H,))
    f = got.get("f", ones)
    out = {"i": got.get("i", (1 - f) if spec.coupled else ones), "f": f, "g": got["g"]}
    if spec.depth_gate:
        out["d"] = Dg.detach()
    out["o"] = got.get("o", ones)
    out["c"] = Cseq.detach()
    out["h"] = Y.detach()
    # copies, so that a kept trace does not pin the buffers saved for the backward
    return {k: v.clone() if mask is None else v * mask for k, v in out.items()}
