"""The LSTM family's time loops in PyTorch calls: the fallback of the C++ loops.

Same arguments, saved tensors and results as ``csrc/lstm.cpp`` (``lstm_forward`` and
``lstm_backward``); used when the C++ loops cannot be built or ``LSTMKIT_NO_EXT=1``. Symbols
as in cells/lstm.py and docs/derivations/lstm.md. The vanilla case goes through
``_fused_lstm_fast`` (fewest torch calls per step).
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..cells.common import LN_EPS
from . import _fused_lstm_fast as _fast
from .fused import at, ln_backward, ln_forward, settle, slots, tanh, tanh_, unsettle


def forward(cfg, u, xd, c_low, h0, c0, w_hh, g_hh, w_ci, w_cf, w_co, g_c, b_c, w_hr, w_cd, w_ld,
            mask, keep_c, keep_h, drop):
    """-> (A, Hs, Cs, Cn, M, D, Yr, Mu, Rs), the absent ones None."""
    T, B, GH = u.shape
    H, R, G = c0.shape[-1], h0.shape[-1], len(cfg.gates)
    if _fast.is_vanilla(cfg, xd, w_hr, g_hh, mask, keep_c, keep_h, drop):
        return _fast.forward(u, h0, c0, w_hh, cfg.reverse) + (None,) * 6
    sl = {k: slice(j * H, (j + 1) * H) for j, k in enumerate(cfg.gates)}
    order, prev, new, first = slots(T, cfg.reverse)
    A = torch.empty_like(u)
    Hs, Cs = u.new_empty(T + 1, B, R), u.new_empty(T + 1, B, H)
    Hs[first], Cs[first] = h0, c0
    Cn = u.new_empty(T, B, H) if keep_c is not None else None
    M = u.new_empty(T, B, H) if w_hr is not None else None
    D = u.new_empty(T, B, H) if xd is not None else None
    Yr = torch.empty_like(u) if g_hh is not None else None     # raw h̃ W_hhᵀ (layer norm)
    Mu = u.new_empty(T, B, G, 1) if g_hh is not None else None
    Rs = torch.empty_like(Mu) if g_hh is not None else None
    WT, pe = w_hh.t(), cfg.peepholes
    zone = keep_c is not None or keep_h is not None or mask is not None
    for t in order:
        hp, cp = Hs[prev(t)], Cs[prev(t)]
        hin = hp if drop is None else hp * drop
        a = A[t]
        if g_hh is None:
            torch.addmm(u[t], hin, WT, out=a)
        else:
            torch.mm(hin, WT, out=Yr[t])
            yh, Mu[t], Rs[t] = ln_forward(Yr[t], G, LN_EPS)
            torch.addcmul(u[t], yh, g_hh, out=a)
        f = i = o = None                      # None: the gate is 1 (ablated)
        if "f" in sl:
            f = (a[:, sl["f"]].addcmul_(w_cf, cp) if "f" in pe else a[:, sl["f"]]).sigmoid_()
        if "i" in sl:
            i = (a[:, sl["i"]].addcmul_(w_ci, cp) if "i" in pe else a[:, sl["i"]]).sigmoid_()
        elif cfg.coupled:
            i = 1 - f
        g = a[:, sl["g"]] if cfg.niaf else tanh_(a[:, sl["g"]])
        cn = Cs[new(t)] if Cn is None else Cn[t]
        torch.mul(cp, f, out=cn) if f is not None else cn.copy_(cp)
        cn.addcmul_(i, g) if i is not None else cn.add_(g)
        if D is not None:                     # depth gate (Yao et al. 2015, arXiv 1508.03790)
            d = torch.sigmoid(xd[t] + w_cd * cp + w_ld * c_low[t])
            D[t] = d
            cn.addcmul_(d, c_low[t])
        if "o" in sl:
            o = (a[:, sl["o"]].addcmul_(w_co, cn) if "o" in pe else a[:, sl["o"]]).sigmoid_()
        th = _squash(cn, g_c, b_c, cfg.noaf)[1]
        m = th if o is None else o * th
        if w_hr is not None:              # projection (LSTMP): h' = m W_hrᵀ
            M[t] = m
            hn = m @ w_hr.t()
        else:
            hn = m
        mt = None if mask is None else mask[t]
        if zone:
            settle(hp, hn, at(keep_h, t), mt, Hs[new(t)])
            if Cn is not None or mt is not None:
                settle(cp, cn, at(keep_c, t), mt, Cs[new(t)])
        else:
            Hs[new(t)] = hn
    return A, Hs, Cs, Cn, M, D, Yr, Mu, Rs


def backward(cfg, A, Hs, Cs, Cn, M, D, Yr, Mu, Rs, c_low, w_hh, g_hh, w_ci, w_cf, w_co, g_c, b_c,
             w_hr, w_cd, w_ld, mask, keep_c, keep_h, drop, gY, ghT, gcT, gC, want_dcl):
    """-> (dA, dY, dHn, dXD, dCl, dh0, dc0, dg_c, db_c), the absent ones None."""
    if _fast.is_vanilla(cfg, D, w_hr, g_hh, mask, keep_c, keep_h, drop):
        dA, dh, dc = _fast.backward(A, Hs, Cs, w_hh, cfg.reverse, gY, ghT, gcT, gC)
        return dA, dA, None, None, None, dh, dc, None, None
    T, B, GH = A.shape
    H, R, G = Cs.shape[-1], Hs.shape[-1], len(cfg.gates)
    sl = {k: slice(j * H, (j + 1) * H) for j, k in enumerate(cfg.gates)}
    order, prev, new, first = slots(T, cfg.reverse)
    pe = cfg.peepholes
    mf = None if mask is None else mask.to(A.dtype)
    dA = torch.empty_like(A)                  # du: gate pre-activations
    dY = torch.empty_like(A) if g_hh is not None else dA   # pre-LN recurrent terms
    dHn = A.new_empty(T, B, R) if w_hr is not None else None
    dXD = A.new_empty(T, B, H) if D is not None else None
    dCl = A.new_empty(T, B, H) if D is not None and want_dcl else None
    dg_c = torch.zeros_like(g_c) if g_c is not None else None
    db_c = torch.zeros_like(b_c) if b_c is not None else None
    dh = ghT if ghT is not None else Hs.new_zeros(B, R)
    dc = gcT if gcT is not None else Cs.new_zeros(B, H)
    for t in reversed(order):
        if gY is not None:
            dh = dh + (gY[t] if mf is None else gY[t] * mf[t])
        if gC is not None:
            dc = dc + gC[t]
        mt = None if mf is None else mf[t]
        dhn, dh_prev = unsettle(dh, at(keep_h, t), mt)
        dcn, dc_prev = unsettle(dc, at(keep_c, t), mt)
        cp = Cs[prev(t)]
        cn = Cs[new(t)] if Cn is None else Cn[t]
        a = A[t]
        da = dA[t]
        if w_hr is not None:                  # h' = m W_hrᵀ
            dHn[t] = dhn
            dm = dhn @ w_hr
        else:
            dm = dhn
        s, th, stats = _squash(cn, g_c, b_c, cfg.noaf)
        if "o" in sl:
            o = a[:, sl["o"]]
            do_ = dm * th
            dth = dm * o
            da_o = torch.mul(do_, o * (1 - o), out=da[:, sl["o"]])
            if "o" in pe:
                dcn = dcn + da_o * w_co
        else:
            dth = dm
        ds = dth if cfg.noaf else dth * (1 - th * th)
        if g_c is not None:
            dsc, dgc_t, dbc_t = torch.ops.aten.native_layer_norm_backward(
                ds, cn, [H], stats[0], stats[1], g_c, b_c, [True, True, True])
            dg_c += dgc_t
            db_c += dbc_t
            dcn = dcn + dsc
        else:
            dcn = dcn + ds
        f = a[:, sl["f"]] if "f" in sl else None
        g = a[:, sl["g"]]
        i = a[:, sl["i"]] if "i" in sl else (1 - f if cfg.coupled else None)
        dg = dcn if i is None else dcn * i
        dcp = dcn if f is None else dcn * f
        if D is not None:
            d, cl = D[t], c_low[t]
            da_d = torch.mul(dcn * cl, d * (1 - d), out=dXD[t])
            dcp = dcp + da_d * w_cd
            if dCl is not None:
                torch.addcmul(dcn * d, da_d, w_ld, out=dCl[t])
        if cfg.niaf:
            da[:, sl["g"]] = dg
        else:
            torch.mul(dg, 1 - g * g, out=da[:, sl["g"]])
        di = dcn * g if i is not None else None
        if "f" in sl:
            df = dcn * cp
            if cfg.coupled:
                df = df - di                  # i = 1 − f
            da_f = torch.mul(df, f * (1 - f), out=da[:, sl["f"]])
            if "f" in pe:
                dcp = dcp + da_f * w_cf
        if "i" in sl:
            da_i = torch.mul(di, i * (1 - i), out=da[:, sl["i"]])
            if "i" in pe:
                dcp = dcp + da_i * w_ci
        dy = da
        if g_hh is not None:
            dy = ln_backward(da * g_hh, Yr[t], Mu[t], Rs[t], G)
            dY[t] = dy
        dhin = dy @ w_hh
        dh = dhin if drop is None else dhin * drop
        if dh_prev is not None:
            dh = dh + dh_prev
        dc = dcp if dc_prev is None else dcp + dc_prev
    return dA, dY, dHn, dXD, dCl, dh, dc, dg_c, db_c


def _squash(cn: Tensor, g_c, b_c, noaf: bool):
    """s = LN(c')·γ_c + β_c (or c'), th = tanh(s) (or s); returns (s, th, LN stats)."""
    stats = None
    s = cn
    if g_c is not None:
        s, mean, rstd = torch.native_layer_norm(cn, cn.shape[-1:], g_c, b_c, LN_EPS)
        stats = (mean, rstd)
    return s, (s if noaf else tanh(s)), stats
