"""The GRU's time loops in PyTorch calls: the twin of gru.cpp, and the device-generic path.

``forward`` and ``backward`` take the same arguments and return the same saved tensors and
gradients as ``gru_forward`` and ``gru_backward`` in gru.cpp; the named tuples below are that
contract (the C++ ops take their arguments by these names). ``gru.py`` runs these loops
wherever the C++ ones do not: tensors off the CPU (CUDA: this is their only path), no C++
compiler, or ``LSTMKIT_NO_EXT=1``. The tests run every case on both, and compare both to the
reference engine. Symbols as in cells/gru.py and docs/derivations/gru.md; h̃ = h ⊙ drop.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from ...cells.common import LN_EPS
from .common import at, ln_backward, ln_forward, settle, slots, tanh_, unsettle


class GRUInputs(NamedTuple):
    """The tensor arguments (None where absent)."""

    u: Tensor                   # (T, B, 3H) input terms LN(x W_ihᵀ)·γ_ih + b_ih, blocks r, z, n
    h0: Tensor                  # (B, H)
    w_hh: Tensor                # (3H, H) = W_rz over W_n
    b_hh: Tensor | None         # (3H,)
    g_hh: Tensor | None         # (3H,) γ_hh of the per-gate LN of the recurrent terms
    mask: Tensor | None         # (T, B, 1) bool, False on padding
    keep_h: Tensor | float | None   # zoneout: (T, B, H) masks or the rate
    drop: Tensor | None         # (B, H) recurrent dropout, scaled


class GRUSaved(NamedTuple):
    """What the forward saves for the backward (gru.py's docstring says why)."""

    A: Tensor                   # (T, B, 3H) r, z, n
    Hs: Tensor                  # (T+1, B, H) states in time order, the initial one included
    Vn: Tensor                  # (T, B, H) v_n (reset_after) or q = r ⊙ h̃ (reset_before)
    Yr: Tensor | None           # (T, B, 3H) raw recurrent terms (layer norm)
    Mu: Tensor | None           # (T, B, 3, 1) their LN mean and rstd
    Rs: Tensor | None


class GRULoopGrads(NamedTuple):
    dA: Tensor                  # (T, B, 3H) = du
    dVn: Tensor | None          # dv_n (reset_after; else dv = du)
    dY: Tensor | None           # pre-LN recurrent terms (layer norm; else dY = dv)
    dh0: Tensor


def forward(reset_after: bool, reverse: bool, x: GRUInputs) -> GRUSaved:
    """One step per iteration, then zoneout and padding (``settle``):

        reset_after:  v = LN(h̃ W_hhᵀ)·γ + b;  r,z = σ(u_rz + v_rz);  n = tanh(u_n + r ⊙ v_n)
        reset_before: v_rz as above;  q = r ⊙ h̃;  v_n = LN(q W_nᵀ)·γ_n + b_n;  n = tanh(u_n + v_n)
        h' = (1 − z) ⊙ n + z ⊙ h
    """
    u, w_hh, b_hh, g_hh, mask, keep_h, drop = x.u, x.w_hh, x.b_hh, x.g_hh, x.mask, x.keep_h, x.drop
    T, B, H3 = u.shape
    H = H3 // 3
    order, prev, new, first = slots(T, reverse)
    A = torch.empty_like(u)                   # r, z, n
    Hs = u.new_empty(T + 1, B, H)
    Hs[first] = x.h0
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
    return GRUSaved(A, Hs, Vn, Yr, Mu, Rs)


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


def backward(reset_after: bool, reverse: bool, s: GRUSaved, x: GRUInputs, gY, ghT) -> GRULoopGrads:
    """Time reversed, with dhn the gradient of h' (after ``unsettle``):

        dn = dhn ⊙ (1 − z),  dz = dhn ⊙ (h − n),  da_n = dn ⊙ (1 − n²)
        reset_after:  dr = da_n ⊙ v_n, dv_n = da_n ⊙ r;  dh̃ = dy W_hh
        reset_before: dy_n = LN_backward(da_n ⊙ γ_n);  dq = dy_n W_n;  dr = dq ⊙ h̃;
                      dh̃ = dy_rz W_rz + dq ⊙ r
        da_r = dr ⊙ r(1 − r),  da_z = dz ⊙ z(1 − z);  dh = dhn ⊙ z + dh̃ ⊙ drop (+ dh_prev)

    x needs only w_hh, g_hh and the noise; gY, ghT the gradients of the output and the final
    state (None where unused).
    """
    A, Hs, Vn, Yr, Mu, Rs = s.A, s.Hs, s.Vn, s.Yr, s.Mu, s.Rs
    w_hh, g_hh, mask, keep_h, drop = x.w_hh, x.g_hh, x.mask, x.keep_h, x.drop
    T, B, H3 = A.shape
    H = H3 // 3
    order, prev, _, _ = slots(T, reverse)
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
    return GRULoopGrads(dA, dVn, dY, dh)
