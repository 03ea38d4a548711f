"""Fused GRU (both ``reset_after``) and Elman RNN: forward and hand-written backward.

Symbols as in cells/gru.py, cells/rnn.py and docs/derivations/gru.md, rnn.md. Saved by
the forward: see ``engines.fused``. u = LN(x W_ihᵀ)·γ_ih + b_ih (GRU) or x W_ihᵀ + b_ih + b_hh
(RNN) comes from one GEMM over the sequence (autograd turns du into dW_ih, db, dx).
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..cells.common import LN_EPS
from . import EngineResult, Noise
from .fused import (at, input_terms, ln_backward, ln_forward, ln_normalised,
                    new_view, prev_view, settle, slots, tanh_, unsettle)


class GRUFunction(torch.autograd.Function):
    """(u, h0, W_hh, b_hh, γ_hh; mask, keep_h, drop) -> (Y, h_T, A)."""

    @staticmethod
    def forward(ctx, reset_after: bool, reverse: bool, u, h0, w_hh, b_hh, g_hh, mask, keep_h, drop):
        T, B, H3 = u.shape
        H = H3 // 3
        order, prev, new, first = slots(T, reverse)
        A = torch.empty_like(u)                   # r, z, n
        Hs = u.new_empty(T + 1, B, H)
        Hs[first] = h0
        Vn = u.new_empty(T, B, H)                 # W_hn h̃ + b_hn (after) or Q = r ⊙ h̃ (before)
        Yr = torch.empty_like(u) if g_hh is not None else None     # raw h̃ W_hhᵀ (layer norm)
        Mu = u.new_empty(T, B, 3, 1) if g_hh is not None else None
        Rs = torch.empty_like(Mu) if g_hh is not None else None
        ln = (Yr, Mu, Rs)
        W_rz, W_n = w_hh[:2 * H], w_hh[2 * H:]
        for t in order:
            hp = Hs[prev(t)]
            hin = hp if drop is None else hp * drop
            a = A[t]
            if reset_after:
                v = _recurrent(hin, w_hh, b_hh, g_hh, ln, t, 0, 3)
                rz = torch.add(u[t, :, :2 * H], v[:, :2 * H], out=a[:, :2 * H]).sigmoid_()
                Vn[t] = v[:, 2 * H:]
                n = tanh_(torch.addcmul(u[t, :, 2 * H:], rz[:, :H], Vn[t], out=a[:, 2 * H:]))
            else:
                v = _recurrent(hin, W_rz, b_hh, g_hh, ln, t, 0, 2)
                rz = torch.add(u[t, :, :2 * H], v, out=a[:, :2 * H]).sigmoid_()
                q = torch.mul(rz[:, :H], hin, out=Vn[t])
                vn = _recurrent(q, W_n, b_hh, g_hh, ln, t, 2, 1)
                n = tanh_(torch.add(u[t, :, 2 * H:], vn, out=a[:, 2 * H:]))
            z = rz[:, H:]
            hn = torch.addcmul(n, z, hp - n)      # h' = (1 − z) ⊙ n + z ⊙ h
            mt = None if mask is None else mask[t]
            if keep_h is not None or mt is not None:
                settle(hp, hn, at(keep_h, t), mt, Hs[new(t)])
            else:
                Hs[new(t)] = hn
        ctx.reset_after, ctx.reverse, ctx.keep_h = reset_after, reverse, keep_h
        ctx.save_for_backward(A, Hs, Vn, Yr, Mu, Rs, w_hh, b_hh, g_hh, mask, drop)
        ctx.mark_non_differentiable(A)
        Y = new_view(Hs, reverse)
        if mask is not None:
            Y = Y * mask
        return Y, Hs[new(order[-1])], A

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, gY, ghT, _gA):
        A, Hs, Vn, Yr, Mu, Rs, w_hh, b_hh, g_hh, mask, drop = ctx.saved_tensors
        reset_after, reverse, keep_h = ctx.reset_after, ctx.reverse, ctx.keep_h
        T, B, H3 = A.shape
        H = H3 // 3
        order, prev, new, first = slots(T, reverse)
        W_rz, W_n = w_hh[:2 * H], w_hh[2 * H:]
        mf = None if mask is None else mask.to(A.dtype)
        dA = torch.empty_like(A)                  # du: pre-activations of r, z, n
        dV = torch.empty_like(A) if reset_after else dA   # d(recurrent term v) = d(b_hh)
        dY = torch.empty_like(A) if g_hh is not None else dV   # pre-LN recurrent terms
        dh = ghT if ghT is not None else Hs.new_zeros(B, H)
        for t in reversed(order):
            if gY is not None:
                dh = dh + (gY[t] if mf is None else gY[t] * mf[t])
            dhn, dh_prev = unsettle(dh, at(keep_h, t), None if mf is None else mf[t])
            hp = Hs[prev(t)]
            a, da = A[t], dA[t]
            r, z, n = a[:, :H], a[:, H:2 * H], a[:, 2 * H:]
            dn = dhn * (1 - z)
            dz = dhn * (hp - n)
            dhp = dhn * z
            da_n = torch.mul(dn, 1 - n * n, out=da[:, 2 * H:])
            if reset_after:
                dr = da_n * Vn[t]
                torch.mul(da_n, r, out=dV[t, :, 2 * H:])
            else:
                dy_n = da_n
                if g_hh is not None:
                    dy_n = ln_backward(da_n * g_hh[2 * H:], Yr[t, :, 2 * H:], Mu[t, :, 2:], Rs[t, :, 2:], 1)
                    dY[t, :, 2 * H:] = dy_n
                dq = dy_n @ W_n
                hin = hp if drop is None else hp * drop
                dr = dq * hin
            torch.mul(dr, r * (1 - r), out=da[:, :H])
            torch.mul(dz, z * (1 - z), out=da[:, H:2 * H])
            if reset_after:
                dV[t, :, :2 * H] = da[:, :2 * H]
                dy = dV[t]
                if g_hh is not None:
                    dy = ln_backward(dy * g_hh, Yr[t], Mu[t], Rs[t], 3)
                    dY[t] = dy
                dhin = dy @ w_hh
            else:
                dy_rz = da[:, :2 * H]
                if g_hh is not None:
                    dy_rz = ln_backward(dy_rz * g_hh[:2 * H], Yr[t, :, :2 * H], Mu[t, :, :2], Rs[t, :, :2], 2)
                    dY[t, :, :2 * H] = dy_rz
                dhin = torch.addcmul(dy_rz @ W_rz, dq, r)
            dh = dhp + (dhin if drop is None else dhin * drop)
            if dh_prev is not None:
                dh = dh + dh_prev
        hin = prev_view(Hs, reverse)
        if drop is not None:
            hin = hin * drop
        TB = T * B
        if reset_after:
            dW = dY.reshape(TB, H3).t() @ hin.reshape(TB, H)
        else:
            dW = torch.cat([dY[..., :2 * H].reshape(TB, 2 * H).t() @ hin.reshape(TB, H),
                            dY[..., 2 * H:].reshape(TB, H).t() @ Vn.reshape(TB, H)])
        db = dV.sum((0, 1)) if b_hh is not None else None
        dg = (dV * ln_normalised(Yr, Mu, Rs)).sum((0, 1)) if g_hh is not None else None
        return None, None, dA, dh, dW, db, dg, None, None, None


def _recurrent(h: Tensor, w: Tensor, b_hh, g_hh, ln, t: int, g0: int, n_gates: int) -> Tensor:
    """v = LN(h Wᵀ)·γ + b (per-gate LN) or h Wᵀ + b, for gates g0 .. g0 + n_gates − 1;
    with LN, saves the raw terms and their statistics into ln = (Yr, Mu, Rs) at step t."""
    H = h.shape[-1]
    rows = slice(g0 * H, (g0 + n_gates) * H)
    b = None if b_hh is None else b_hh[rows]
    if g_hh is None:
        return h @ w.t() if b is None else torch.addmm(b, h, w.t())
    Yr, Mu, Rs = ln
    y = h @ w.t()
    Yr[t, :, rows] = y
    yh, Mu[t, :, g0:g0 + n_gates], Rs[t, :, g0:g0 + n_gates] = ln_forward(y, n_gates, LN_EPS)
    v = yh * g_hh[rows]
    return v if b is None else v + b


class RNNFunction(torch.autograd.Function):
    """(u, h0, W_hh; mask) -> (Y, h_T): h' = act(u + h W_hhᵀ), b_hh folded into u."""

    @staticmethod
    def forward(ctx, relu: bool, reverse: bool, u, h0, w_hh, mask):
        T, B, H = u.shape
        order, prev, new, first = slots(T, reverse)
        Hs = u.new_empty(T + 1, B, H)
        Hs[first] = h0
        WT = w_hh.t()
        An = u.new_empty(T, B, H) if mask is not None else None   # h' before padding
        for t in order:
            hp = Hs[prev(t)]
            hn = Hs[new(t)] if An is None else An[t]
            torch.addmm(u[t], hp, WT, out=hn)
            hn.relu_() if relu else tanh_(hn)
            if An is not None:
                torch.where(mask[t], hn, hp, out=Hs[new(t)])
        ctx.relu, ctx.reverse = relu, reverse
        ctx.save_for_backward(Hs, An, w_hh, mask)
        Y = new_view(Hs, reverse)
        if mask is not None:
            Y = Y * mask
        return Y, Hs[new(order[-1])]

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, gY, ghT):
        Hs, An, w_hh, mask = ctx.saved_tensors
        T1, B, H = Hs.shape
        T = T1 - 1
        order, prev, new, first = slots(T, ctx.reverse)
        mf = None if mask is None else mask.to(Hs.dtype)
        dA = Hs.new_empty(T, B, H)
        dh = ghT if ghT is not None else Hs.new_zeros(B, H)
        for t in reversed(order):
            if gY is not None:
                dh = dh + (gY[t] if mf is None else gY[t] * mf[t])
            dhn, dh_prev = unsettle(dh, None, None if mf is None else mf[t])
            hn = Hs[new(t)] if An is None else An[t]
            da = torch.mul(dhn, hn > 0, out=dA[t]) if ctx.relu else torch.mul(dhn, 1 - hn * hn, out=dA[t])
            dh = da @ w_hh
            if dh_prev is not None:
                dh = dh + dh_prev
        hin = prev_view(Hs, ctx.reverse)
        dW = dA.reshape(T * B, H).t() @ hin.reshape(T * B, H)
        return None, None, dA, dh, dW, None


def run_gru(spec, x: Tensor, state, p, *, mask=None, reverse=False, noise: Noise = Noise(),
            record=False, **_) -> EngineResult:
    u = input_terms(x, p["w_ih"], p.get("b_ih"), p.get("g_ih"), 3)
    Y, hT, A = GRUFunction.apply(spec.reset_after, bool(reverse), u, state[0], p["w_hh"],
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
