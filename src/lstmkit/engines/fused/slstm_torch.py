"""The sLSTM's fused time loops in PyTorch: the twin of slstm.cpp (same maths, arguments, saved
tensors and results), used where the C++ loops are not built and for tensors off the CPU.

Symbols as cells/xlstm.py and docs/derivations/slstm.md. a = u + R h with R block-diagonal: one
batched GEMM over the heads per step, h_n R_nᵀ for head n (``heads_in``, ``heads_out``). Slots: Hs, Cs, Ns, Ms (T+1, B, H) hold the states in time order, the initial one
at 0; step t reads slot t and writes slot t + 1.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor
from torch.nn import functional as F


class SLSTMInputs(NamedTuple):
    u: Tensor                   # (T, B, 4H) x W_ihᵀ + b_ih
    h0: Tensor                  # (B, H) each
    c0: Tensor
    n0: Tensor
    m0: Tensor
    w: Tensor                   # (NH, d, 4d): w[n, k, g·d + j] = R_n[g·d + j, k] (``head_weights``)
    mask: Tensor | None         # (T, B, 1) bool, True on valid steps


class SLSTMSaved(NamedTuple):
    A: Tensor                   # (T, B, 4H) pre-activations a = u + R h
    Hs: Tensor                  # (T+1, B, H) states, settled (padding keeps the old one)
    Cs: Tensor
    Ns: Tensor
    Ms: Tensor


class SLSTMLoopGrads(NamedTuple):
    dA: Tensor                  # (T, B, 4H)
    dh0: Tensor                 # (B, H) each
    dc0: Tensor
    dn0: Tensor
    dm0: Tensor


def head_weights(w_hh: Tensor, num_heads: int) -> tuple[Tensor, Tensor]:
    """W_hh (4H, d) -> w (NH, d, 4d) for h_n R_nᵀ and wT (NH, 4d, d) for da_n R_n, contiguous."""
    G, d = w_hh.shape
    wT = w_hh.view(4, num_heads, d, d).transpose(0, 1).reshape(num_heads, 4 * d, d)
    return wT.transpose(1, 2).contiguous(), wT.contiguous()


def heads_in(h: Tensor, w: Tensor) -> Tensor:
    """R h: (B, H) -> (B, 4H) in gate blocks, one batched GEMM over the heads."""
    NH, d = w.shape[:2]
    B = h.shape[0]
    y = torch.bmm(h.view(B, NH, d).transpose(0, 1), w)                          # (NH, B, 4d)
    return y.view(NH, B, 4, d).permute(1, 2, 0, 3).reshape(B, 4 * NH * d)


def heads_out(da: Tensor, wT: Tensor) -> Tensor:
    """Rᵀ da: (B, 4H) -> (B, H), one batched GEMM over the heads."""
    NH, _, d = wT.shape
    B = da.shape[0]
    dh = torch.bmm(da.view(B, 4, NH, d).permute(2, 0, 1, 3).reshape(NH, B, 4 * d), wT)   # (NH, B, d)
    return dh.transpose(0, 1).reshape(B, NH * d)


def cell(a: Tensor, c: Tensor, n: Tensor, m: Tensor, exp_forget: bool):
    """One step's values from a (B, 4H) and the old c, n, m: the gates i', f', z = tanh(g̃),
    o = σ(õ), the new c', n', m', h̃ = c'/n', and the max's choice (1 where log f + m > ĩ,
    ½ on a tie, as torch.maximum's backward) and d log f / d f̃."""
    i_t, f_t, g_t, o_t = a.chunk(4, -1)
    lf = f_t if exp_forget else F.logsigmoid(f_t)
    lfm = lf + m
    m_new = torch.maximum(lfm, i_t)
    i, f = torch.exp(i_t - m_new), torch.exp(lfm - m_new)
    z, o = torch.tanh(g_t), torch.sigmoid(o_t)
    c_new = f * c + i * z
    n_new = f * n + i
    first = (lfm > i_t).to(a.dtype) + 0.5 * (lfm == i_t).to(a.dtype)
    dlf = torch.ones_like(f_t) if exp_forget else torch.sigmoid(-f_t)
    return i, f, z, o, c_new, n_new, m_new, c_new / n_new, first, dlf


def forward(exp_forget: bool, x: SLSTMInputs) -> SLSTMSaved:
    T, B, G = x.u.shape
    H = G // 4
    Hs, Cs, Ns, Ms = (x.u.new_empty(T + 1, B, H) for _ in range(4))
    A = x.u.new_empty(T, B, G)
    Hs[0], Cs[0], Ns[0], Ms[0] = x.h0, x.c0, x.n0, x.m0
    for t in range(T):
        a = torch.add(x.u[t], heads_in(Hs[t], x.w), out=A[t])
        i, f, z, o, c, n, m, ht, _, _ = cell(a, Cs[t], Ns[t], Ms[t], exp_forget)
        h = o * ht
        if x.mask is not None:
            mk = x.mask[t]
            h, c, n, m = (torch.where(mk, new, old[t]) for new, old in ((h, Hs), (c, Cs), (n, Ns), (m, Ms)))
        Hs[t + 1], Cs[t + 1], Ns[t + 1], Ms[t + 1] = h, c, n, m
    return SLSTMSaved(A, Hs, Cs, Ns, Ms)


def backward(exp_forget: bool, s: SLSTMSaved, wT: Tensor, mask: Tensor | None, gY: Tensor | None,
             gfinal: tuple[Tensor | None, ...]) -> SLSTMLoopGrads:
    """The reverse walk (docs/derivations/slstm.md): gY (T, B, H) or None, gfinal the gradients
    of the final h, c, n, m (each (B, H) or None)."""
    T, B, G = s.A.shape
    zero = s.Hs.new_zeros(B, G // 4)
    dh, dc, dn, dm = (zero.clone() if g is None else g.clone() for g in gfinal)
    dA = torch.empty_like(s.A)
    for t in range(T - 1, -1, -1):
        c, n, m = s.Cs[t], s.Ns[t], s.Ms[t]
        i, f, z, o, c_new, n_new, _, ht, first, dlf_df = cell(s.A[t], c, n, m, exp_forget)
        dh_new = dh if gY is None else dh + gY[t]
        if mask is not None:
            mf = mask[t].to(dh.dtype)
            dh_new, dc_new, dn_new, dm_new = dh_new * mf, dc * mf, dn * mf, dm * mf
            keep = (dh * (1 - mf), dc * (1 - mf), dn * (1 - mf), dm * (1 - mf))
        else:
            dc_new, dn_new, dm_new = dc, dn, dm
        do = dh_new * ht
        dht = dh_new * o
        dc_new = dc_new + dht / n_new
        dn_new = dn_new - dht * ht / n_new
        df = dc_new * c + dn_new * n
        di = dc_new * z + dn_new
        dg = dc_new * i * (1 - z * z)
        di_t, dlf = di * i, df * f                       # through i' = e^{ĩ − m'}, f' = e^{log f + m − m'}
        dm_new = dm_new - di_t - dlf
        dm_prev = dlf + dm_new * first                   # m' = max(log f + m, ĩ)
        dlf = dlf + dm_new * first
        di_t = di_t + dm_new * (1 - first)
        da = torch.cat([di_t, dlf * dlf_df, dg, do * o * (1 - o)], -1)
        dA[t] = da
        dh, dc, dn, dm = heads_out(da, wT), dc_new * f, dn_new * f, dm_prev
        if mask is not None:
            dh, dc, dn, dm = dh + keep[0], dc + keep[1], dn + keep[2], dm + keep[3]
    return SLSTMLoopGrads(dA, dh, dc, dn, dm)
