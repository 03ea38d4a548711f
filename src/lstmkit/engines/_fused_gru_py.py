"""The GRU and Elman RNN time loops in PyTorch calls: the fallback of the C++ loops.

Same arguments, saved tensors and results as ``csrc/gru.cpp`` (``gru_forward``,
``gru_backward``, ``rnn_forward``, ``rnn_backward``); used when the C++ loops cannot be
built or ``LSTMKIT_NO_EXT=1``. Symbols as in cells/gru.py, cells/rnn.py and
docs/derivations/gru.md, rnn.md; h̃ = h ⊙ drop.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..cells.common import LN_EPS
from .fused import at, ln_backward, ln_forward, settle, slots, tanh_, unsettle


def gru_forward(reset_after: bool, reverse: bool, u, h0, w_hh, b_hh, g_hh, mask, keep_h, drop):
    """One step per iteration, then zoneout and padding (``settle``):

        reset_after:  v = LN(h̃ W_hhᵀ)·γ + b;  r,z = σ(u_rz + v_rz);  n = tanh(u_n + r ⊙ v_n)
        reset_before: v_rz as above;  q = r ⊙ h̃;  v_n = LN(q W_nᵀ)·γ_n + b_n;  n = tanh(u_n + v_n)
        h' = (1 − z) ⊙ n + z ⊙ h

    -> (A, Hs, Vn, Yr, Mu, Rs): A (T, B, 3H) r, z, n; Vn = v_n (reset_after) or q
    (reset_before); Yr the raw recurrent terms and Mu, Rs their statistics (layer norm; else None).
    """
    T, B, H3 = u.shape
    H = H3 // 3
    order, prev, new, first = slots(T, reverse)
    A = torch.empty_like(u)                   # r, z, n
    Hs = u.new_empty(T + 1, B, H)
    Hs[first] = h0
    Vn = u.new_empty(T, B, H)
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
    return A, Hs, Vn, Yr, Mu, Rs


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


def gru_backward(reset_after: bool, reverse: bool, A, Hs, Vn, Yr, Mu, Rs, w_hh, g_hh, mask,
                 keep_h, drop, gY, ghT):
    """Time reversed, with dhn the gradient of h' (after ``unsettle``):

        dn = dhn ⊙ (1 − z),  dz = dhn ⊙ (h − n),  da_n = dn ⊙ (1 − n²)
        reset_after:  dr = da_n ⊙ v_n, dv_n = da_n ⊙ r;  dh̃ = dy W_hh
        reset_before: dy_n = LN_backward(da_n ⊙ γ_n);  dq = dy_n W_n;  dr = dq ⊙ h̃;
                      dh̃ = dy_rz W_rz + dq ⊙ r
        da_r = dr ⊙ r(1 − r),  da_z = dz ⊙ z(1 − z);  dh = dhn ⊙ z + dh̃ ⊙ drop (+ dh_prev)

    -> (dA, dVn, dY, dh0): dA = du; dVn = dv_n (reset_after; else None: dv = du); dY the
    pre-LN recurrent terms (layer norm; else None: dY = dv = (da_r, da_z, dv_n)).
    """
    T, B, H3 = A.shape
    H = H3 // 3
    order, prev, new, first = slots(T, reverse)
    W_rz, W_n = w_hh[:2 * H], w_hh[2 * H:]
    mf = None if mask is None else mask.to(A.dtype)
    dA = torch.empty_like(A)                  # du: pre-activations of r, z, n
    dVn = A.new_empty(T, B, H) if reset_after else None     # dv_n (reset_after)
    dY = torch.empty_like(A) if g_hh is not None else None  # pre-LN recurrent terms
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
            torch.mul(da_n, r, out=dVn[t])
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
            dy = torch.cat([da[:, :2 * H], dVn[t]], 1)     # dv
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
    return dA, dVn, dY, dh


def rnn_forward(relu: bool, reverse: bool, u, h0, w_hh, mask):
    """h' = act(u + h W_hhᵀ) (b_hh folded into u), then padding h⁺ = where(mask, h', h).
    -> (Hs, An): An (T, B, H) h' before padding (mask only; else None)."""
    T, B, H = u.shape
    order, prev, new, first = slots(T, reverse)
    Hs = u.new_empty(T + 1, B, H)
    Hs[first] = h0
    WT = w_hh.t()
    An = u.new_empty(T, B, H) if mask is not None else None
    for t in order:
        hp = Hs[prev(t)]
        hn = Hs[new(t)] if An is None else An[t]
        torch.addmm(u[t], hp, WT, out=hn)
        hn.relu_() if relu else tanh_(hn)
        if An is not None:
            torch.where(mask[t], hn, hp, out=Hs[new(t)])
    return Hs, An


def rnn_backward(relu: bool, reverse: bool, Hs, An, w_hh, mask, gY, ghT):
    """dhn = mf ⊙ dh;  da = dhn ⊙ (1 − h'²) (tanh) or dhn ⊙ [h' > 0] (relu);
    dh = da W_hh + (1 − mf) ⊙ dh.  -> (dA, dh0), dA = du."""
    T1, B, H = Hs.shape
    T = T1 - 1
    order, prev, new, first = slots(T, reverse)
    mf = None if mask is None else mask.to(Hs.dtype)
    dA = Hs.new_empty(T, B, H)
    dh = ghT if ghT is not None else Hs.new_zeros(B, H)
    for t in reversed(order):
        if gY is not None:
            dh = dh + (gY[t] if mf is None else gY[t] * mf[t])
        dhn, dh_prev = unsettle(dh, None, None if mf is None else mf[t])
        hn = Hs[new(t)] if An is None else An[t]
        da = torch.mul(dhn, hn > 0, out=dA[t]) if relu else torch.mul(dhn, 1 - hn * hn, out=dA[t])
        dh = da @ w_hh
        if dh_prev is not None:
            dh = dh + dh_prev
    return dA, dh
