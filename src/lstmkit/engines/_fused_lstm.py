"""Fused LSTM (every variant of ``cells.lstm``): forward and hand-written backward.

Symbols as in cells/lstm.py and docs/derivations/lstm.md. Saved by the forward: see
``engines.fused``. The input terms u = LN(x W_ihᵀ)·γ_ih + b_ih + b_hh and the depth-gate
input xd = x W_xdᵀ + b_d come from one GEMM each (autograd); this Function returns du and
dxd, and autograd turns them into dW_ih, db_ih, db_hh, dγ_ih, dW_xd, db_d and dx with
three large GEMMs.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..cells.common import LN_EPS
from . import EngineResult, Noise
from . import _fused_lstm_fast as _fast
from .fused import (at, input_terms, ln_backward, ln_forward, ln_normalised,
                    new_view, prev_view, settle, slots, tanh, tanh_, unsettle)


@dataclass(frozen=True)
class _Cfg:
    """The non-tensor arguments of one call."""

    gates: str           # letters with weight rows, in i, f, g, o order
    peepholes: str
    coupled: bool
    niaf: bool           # no input activation: g = a_g
    noaf: bool           # no output activation: m = o ⊙ c'
    reverse: bool


class LSTMFunction(torch.autograd.Function):
    """(u, xd, c_low, h0, c0, W_hh, γ_hh, w_ci, w_cf, w_co, γ_c, β_c, W_hr, w_cd, w_ld;
    mask, keep_c, keep_h, drop) -> (Y, h_T, c_T, Cseq, A, D)."""

    @staticmethod
    def forward(ctx, cfg: _Cfg, u, xd, c_low, h0, c0, w_hh, g_hh, w_ci, w_cf, w_co, g_c, b_c,
                w_hr, w_cd, w_ld, mask, keep_c, keep_h, drop):
        T, B, GH = u.shape
        H, R, G = c0.shape[-1], h0.shape[-1], len(cfg.gates)
        ctx.cfg, ctx.keep_c, ctx.keep_h = cfg, keep_c, keep_h
        ctx.fast = _fast.is_vanilla(cfg, xd, w_hr, g_hh, mask, keep_c, keep_h, drop)
        if ctx.fast:
            A, Hs, Cs = _fast.forward(u, h0, c0, w_hh, cfg.reverse)
            ctx.save_for_backward(A, Hs, Cs, w_hh)
            ctx.mark_non_differentiable(A)
            last = 0 if cfg.reverse else T
            return (new_view(Hs, cfg.reverse), Hs[last], Cs[last], new_view(Cs, cfg.reverse), A,
                    u.new_empty(0))
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
        ctx.save_for_backward(A, Hs, Cs, Cn, M, D, Yr, Mu, Rs, c_low, w_hh, g_hh, w_ci, w_cf, w_co,
                              g_c, b_c, w_hr, w_cd, w_ld, mask, drop)
        ctx.mark_non_differentiable(A)
        Y = new_view(Hs, cfg.reverse)
        if mask is not None:
            Y = Y * mask
        last = new(order[-1])
        out_D = D if D is not None else u.new_empty(0)
        ctx.mark_non_differentiable(out_D)
        return Y, Hs[last], Cs[last], new_view(Cs, cfg.reverse), A, out_D

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, gY, ghT, gcT, gC, _gA, _gD):
        if ctx.fast:
            A, Hs, Cs, w_hh = ctx.saved_tensors
            dA, dh, dc, dW_hh = _fast.backward(A, Hs, Cs, w_hh, ctx.cfg.reverse, gY, ghT, gcT, gC)
            return (None, dA, None, None, dh, dc, dW_hh) + (None,) * 13
        (A, Hs, Cs, Cn, M, D, Yr, Mu, Rs, c_low, w_hh, g_hh, w_ci, w_cf, w_co, g_c, b_c, w_hr,
         w_cd, w_ld, mask, drop) = ctx.saved_tensors
        cfg, keep_c, keep_h = ctx.cfg, ctx.keep_c, ctx.keep_h
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
        dCl = A.new_empty(T, B, H) if D is not None and ctx.needs_input_grad[3] else None
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
        hin = prev_view(Hs, cfg.reverse)
        if drop is not None:
            hin = hin * drop
        dW_hh = dY.reshape(T * B, GH).t() @ hin.reshape(T * B, R)
        dg_hh = (dA * ln_normalised(Yr, Mu, Rs)).sum((0, 1)) if g_hh is not None else None
        Cp = prev_view(Cs, cfg.reverse)
        Cnew = Cn if Cn is not None else new_view(Cs, cfg.reverse)
        dpe = {k: (dA[..., sl[k]] * (Cnew if k == "o" else Cp)).sum((0, 1)) for k in pe}
        dW_hr = dHn.reshape(T * B, R).t() @ M.reshape(T * B, H) if w_hr is not None else None
        dw_cd = (dXD * Cp).sum((0, 1)) if D is not None else None
        dw_ld = (dXD * c_low).sum((0, 1)) if D is not None else None
        return (None, dA, dXD, dCl, dh, dc, dW_hh, dg_hh, dpe.get("i"), dpe.get("f"), dpe.get("o"),
                dg_c, db_c, dW_hr, dw_cd, dw_ld, None, None, None, None)


def _squash(cn: Tensor, g_c, b_c, noaf: bool):
    """s = LN(c')·γ_c + β_c (or c'), th = tanh(s) (or s); returns (s, th, LN stats)."""
    stats = None
    s = cn
    if g_c is not None:
        s, mean, rstd = torch.native_layer_norm(cn, cn.shape[-1:], g_c, b_c, LN_EPS)
        stats = (mean, rstd)
    return s, (s if noaf else tanh(s)), stats


def run_lstm(spec, x: Tensor, state, p, *, mask=None, reverse=False, noise: Noise = Noise(),
             c_low=None, want_cells=False, record=False) -> EngineResult:
    ab = spec.ablate
    cfg = _Cfg(spec.gates, spec.peepholes, spec.coupled, "input_activation" in ab,
               "output_activation" in ab, bool(reverse))
    u = input_terms(x, p["w_ih"], p.get("b_ih"), p.get("g_ih"), len(spec.gates), p.get("b_hh"))
    xd = None
    if spec.depth_gate:
        T, B, D = x.shape
        xd = torch.addmm(p["b_d"], x.reshape(T * B, D), p["w_xd"].t()).view(T, B, -1)
    h0, c0 = state
    Y, hT, cT, Cseq, A, Dg = LSTMFunction.apply(
        cfg, u, xd, c_low if spec.depth_gate else None, h0, c0, p["w_hh"], p.get("g_hh"),
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
