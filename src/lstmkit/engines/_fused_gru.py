"""Fused GRU (both ``reset_after``) and Elman RNN: forward and hand-written backward.

Symbols as in cells/gru.py, cells/rnn.py and docs/derivations/gru.md, rnn.md. Saved by
the forward: see ``engines.fused``. u = LN(x W_ihᵀ)·γ_ih + b_ih (GRU) or x W_ihᵀ + b_ih + b_hh
(RNN) comes from one GEMM over the sequence (autograd turns du into dW_ih, db, dx). The
time loops run in C++ (csrc/gru.cpp) or, as a fallback, in PyTorch (_fused_gru_py.py); the
weight-gradient GEMMs after the loop are here.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..cells.common import LN_EPS
from . import EngineResult, Noise
from . import _ext
from . import _fused_gru_py as _py
from ._fused_lstm import _c, _keep, _some
from .fused import input_terms, ln_normalised, new_view, prev_view


class GRUFunction(torch.autograd.Function):
    """(u, h0, W_hh, b_hh, γ_hh; mask, keep_h, drop) -> (Y, h_T, A)."""

    @staticmethod
    def forward(ctx, reset_after: bool, reverse: bool, keep: bool, u, h0, w_hh, b_hh, g_hh, mask,
                keep_h, drop):
        ops = _ext.ops(u.device)
        ctx.ops, ctx.reset_after, ctx.reverse, ctx.keep_h = ops, reset_after, reverse, keep_h
        ctx.set_materialize_grads(False)      # no (T, B, 3H) zeros for the unused A (page faults)
        if ops is not None:
            B, H = h0.shape
            w_a = w_hh if reset_after else w_hh[:2 * H]          # the first GEMM's weight
            w_n = None if reset_after else w_hh[2 * H:]
            saved = ops.gru_forward(*_c(u, h0, w_hh, b_hh, g_hh, mask, _keep(keep_h, u), drop),
                                    _ext.packed(w_a, B), _ext.packed(w_n, B),
                                    reset_after, reverse, keep, LN_EPS)
            saved = saved[:3] + [_some(s) for s in saved[3:]]
        else:
            saved = _py.gru_forward(reset_after, reverse, u, h0, w_hh, b_hh, g_hh, mask, keep_h, drop)
        A, Hs, Vn, Yr, Mu, Rs = saved
        ctx.save_for_backward(A, Hs, Vn, Yr, Mu, Rs, w_hh, b_hh, g_hh, mask, drop)
        ctx.mark_non_differentiable(A)
        Y = new_view(Hs, reverse)
        if mask is not None:
            Y = Y * mask
        return Y, Hs[0 if reverse else u.shape[0]], A

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, gY, ghT, _gA):
        A, Hs, Vn, Yr, Mu, Rs, w_hh, b_hh, g_hh, mask, drop = ctx.saved_tensors
        reset_after, reverse, keep_h = ctx.reset_after, ctx.reverse, ctx.keep_h
        T, B, H3 = A.shape
        H = H3 // 3
        if ctx.ops is not None:
            w_aT = (w_hh if reset_after else w_hh[:2 * H]).t().contiguous()
            w_nT = None if reset_after else w_hh[2 * H:].t().contiguous()
            dA, dVn, dY, dh = ctx.ops.gru_backward(
                *_c(A, Hs, Vn, Yr, Mu, Rs, g_hh, mask, _keep(keep_h, A), drop, gY, ghT),
                w_aT, _ext.packed(w_aT, B), w_nT, _ext.packed(w_nT, B), reset_after, reverse)
            dVn, dY = _some(dVn), _some(dY)
        else:
            dA, dVn, dY, dh = _py.gru_backward(reset_after, reverse, A, Hs, Vn, Yr, Mu, Rs, w_hh,
                                               g_hh, mask, keep_h, drop, gY, ghT)
        # dv = (da_r, da_z, dv_n), dv_n = da_n without reset_after; dY = dv without layer norm
        dV = (dA[..., :2 * H], dVn if reset_after else dA[..., 2 * H:])
        dY = dV if dY is None else (dY[..., :2 * H], dY[..., 2 * H:])
        hin = prev_view(Hs, reverse)
        if drop is not None:
            hin = hin * drop
        TB = T * B                            # dW_rz = dY_rzᵀ H̃;  dW_n = dY_nᵀ H̃ (after) or dY_nᵀ Q
        hin_n = hin if reset_after else Vn
        dW = torch.cat([dY[0].reshape(TB, 2 * H).t() @ hin.reshape(TB, H),
                        dY[1].reshape(TB, H).t() @ hin_n.reshape(TB, H)])
        db = torch.cat([d.sum((0, 1)) for d in dV]) if b_hh is not None else None
        dg = None
        if g_hh is not None:                  # dγ_hh = Σ dv ⊙ Ŷ
            Yh = ln_normalised(Yr, Mu, Rs)
            dg = torch.cat([(dV[0] * Yh[..., :2 * H]).sum((0, 1)), (dV[1] * Yh[..., 2 * H:]).sum((0, 1))])
        return None, None, None, dA, dh, dW, db, dg, None, None, None


class RNNFunction(torch.autograd.Function):
    """(u, h0, W_hh; mask) -> (Y, h_T): h' = act(u + h W_hhᵀ), b_hh folded into u."""

    @staticmethod
    def forward(ctx, relu: bool, reverse: bool, u, h0, w_hh, mask):
        ops = _ext.ops(u.device)
        ctx.ops, ctx.relu, ctx.reverse = ops, relu, reverse
        ctx.set_materialize_grads(False)      # gY, ghT None when unused
        if ops is not None:
            Hs, An = ops.rnn_forward(*_c(u, h0, w_hh, mask), _ext.packed(w_hh, u.shape[1]),
                                     relu, reverse)
            An = _some(An)
        else:
            Hs, An = _py.rnn_forward(relu, reverse, u, h0, w_hh, mask)
        ctx.save_for_backward(Hs, An, w_hh, mask)
        Y = new_view(Hs, reverse)
        if mask is not None:
            Y = Y * mask
        return Y, Hs[0 if reverse else u.shape[0]]

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, gY, ghT):
        Hs, An, w_hh, mask = ctx.saved_tensors
        T1, B, H = Hs.shape
        if ctx.ops is not None:
            w_hhT = w_hh.t().contiguous()
            dA, dh = ctx.ops.rnn_backward(*_c(Hs, An, mask, gY, ghT), w_hhT, _ext.packed(w_hhT, B),
                                          ctx.relu, ctx.reverse)
        else:
            dA, dh = _py.rnn_backward(ctx.relu, ctx.reverse, Hs, An, w_hh, mask, gY, ghT)
        hin = prev_view(Hs, ctx.reverse)      # dW_hh = dAᵀ H
        dW = dA.reshape((T1 - 1) * B, H).t() @ hin.reshape((T1 - 1) * B, H)
        return None, None, dA, dh, dW, None


def run_gru(spec, x: Tensor, state, p, *, mask=None, reverse=False, noise: Noise = Noise(),
            record=False, **_) -> EngineResult:
    u = input_terms(x, p["w_ih"], p.get("b_ih"), p.get("g_ih"), 3)
    # keep: A, Vn over all steps, for the backward or the trace; else only the last step's
    keep = record or (torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (u, state[0], p["w_hh"], p.get("b_hh"), p.get("g_hh"))))
    Y, hT, A = GRUFunction.apply(spec.reset_after, bool(reverse), keep, u, state[0], p["w_hh"],
                                 p.get("b_hh"), p.get("g_hh"), mask, noise.keep_h, noise.drop)
    rec = None
    if record:
        H = spec.hidden_size
        A = A.detach()
        rec = {k: A[..., j * H:(j + 1) * H] for j, k in enumerate("rzn")}
        rec["h"] = Y.detach()
        rec = {k: v.clone() if mask is None else v * mask for k, v in rec.items()}
    return EngineResult(Y, (hT,), None, rec)


def run_rnn(spec, x: Tensor, state, p, *, mask=None, reverse=False, record=False,
            **_) -> EngineResult:
    u = input_terms(x, p["w_ih"], p.get("b_ih"), None, 1, p.get("b_hh"))
    Y, hT = RNNFunction.apply(spec.nonlinearity == "relu", bool(reverse), u, state[0], p["w_hh"], mask)
    rec = None
    if record:
        rec = {"h": Y.detach().clone() if mask is None else Y.detach() * mask}
    return EngineResult(Y, (hT,), None, rec)
