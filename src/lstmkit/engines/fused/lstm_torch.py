"""The LSTM family's time loops in PyTorch calls: the twin of lstm.cpp, and the device-generic path.

``forward`` and ``backward`` take the same arguments and return the same saved tensors and
gradients as ``lstm_forward`` and ``lstm_backward`` in lstm.cpp; the named tuples below are
that contract (the C++ ops take their arguments by these names). ``lstm.py`` runs these
loops wherever the C++ ones do not: tensors off the CPU (CUDA: this is their only path),
no C++ compiler, or ``LSTMKIT_NO_EXT=1``. The tests run every case on both, and compare both
to the reference engine. Symbols as in cells/lstm.py and docs/derivations/lstm.md.

The vanilla LSTM (no variant option, no noise, no padding) takes ``vanilla_forward`` and
``vanilla_backward``: the same maths with the fewest torch calls per step.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from ...cells.common import LN_EPS
from .common import at, ln_backward, ln_forward, ln_normalised, settle, slots, tanh, tanh_, unsettle


@dataclass(frozen=True)
class LSTMConfig:
    """The non-tensor arguments of one call."""

    gates: str           # letters with weight rows, in i, f, g, o order
    peepholes: str
    coupled: bool
    niaf: bool           # no input activation: g = a_g
    noaf: bool           # no output activation: m = o ⊙ c'
    reverse: bool


class LSTMInputs(NamedTuple):
    """The tensor arguments (None where absent). R = H, or the projection size."""

    u: Tensor                   # (T, B, G·H) input terms x W_ihᵀ (with LN: LN(·)·γ_ih + b_ih + b_hh)
    bias: Tensor | None         # (G·H,) b_ih + b_hh, added in the loop (no LN)
    xd: Tensor | None           # (T, B, H) depth gate's input terms x W_xdᵀ + b_d
    c_low: Tensor | None        # (T, B, H) the lower layer's cells (depth gate)
    h0: Tensor                  # (B, R)
    c0: Tensor                  # (B, H)
    w_hh: Tensor                # (G·H, R)
    g_hh: Tensor | None         # (G·H,) γ_hh of LN(h̃ W_hhᵀ)
    w_ci: Tensor | None         # (H,) peepholes
    w_cf: Tensor | None
    w_co: Tensor | None
    g_c: Tensor | None          # (H,) γ_c, β_c of LN(c')
    b_c: Tensor | None
    w_hr: Tensor | None         # (R, H) projection
    w_cd: Tensor | None         # (H,) depth gate
    w_ld: Tensor | None
    mask: Tensor | None         # (T, B, 1) bool, False on padding
    keep_c: Tensor | float | None   # zoneout: (T, B, H) masks or the rate
    keep_h: Tensor | float | None
    drop: Tensor | None         # (B, R) recurrent dropout, scaled


class LSTMSaved(NamedTuple):
    """What the forward saves for the backward (lstm.py's docstring says why)."""

    A: Tensor                   # (T, B, G·H) activated gates
    Hs: Tensor                  # (T+1, B, R) states in time order, the initial one included
    Cs: Tensor                  # (T+1, B, H)
    Cn: Tensor | None           # (T, B, H) c' before zoneout (zoneout)
    M: Tensor | None            # (T, B, H) m = o ⊙ tanh(c') (projection)
    Ds: Tensor | None           # (T, B, H) depth gate d
    Yr: Tensor | None           # (T, B, G·H) raw h̃ W_hhᵀ (layer norm)
    Mu: Tensor | None           # (T, B, G, 1) their LN mean and rstd
    Rs: Tensor | None


class LSTMLoopGrads(NamedTuple):
    """What the backward loop returns (None where absent)."""

    dA: Tensor                  # (T, B, G·H) gate pre-activations = du
    dY: Tensor                  # pre-LN recurrent terms (layer norm; else dA)
    dHn: Tensor | None          # (T, B, R) projected h' (projection)
    dXD: Tensor | None          # (T, B, H) depth gate's input terms
    dCl: Tensor | None          # (T, B, H) lower cells (depth gate, when asked for)
    dh0: Tensor
    dc0: Tensor
    dg_c: Tensor | None
    db_c: Tensor | None
    dg_hh: Tensor | None


def forward(cfg: LSTMConfig, x: LSTMInputs) -> LSTMSaved:
    """The forward loop; b is added to u first (the C++ loop adds it per step)."""
    u = x.u if x.bias is None else x.u + x.bias
    if _is_vanilla(cfg, x, depth=x.xd is not None):
        return LSTMSaved(*vanilla_forward(u, x.h0, x.c0, x.w_hh, cfg.reverse), *(None,) * 6)
    xd, c_low, h0, c0, w_hh, g_hh = x.xd, x.c_low, x.h0, x.c0, x.w_hh, x.g_hh
    w_ci, w_cf, w_co, g_c, b_c, w_hr = x.w_ci, x.w_cf, x.w_co, x.g_c, x.b_c, x.w_hr
    w_cd, w_ld, mask, keep_c, keep_h, drop = x.w_cd, x.w_ld, x.mask, x.keep_c, x.keep_h, x.drop
    T, B, GH = u.shape
    H, R, G = c0.shape[-1], h0.shape[-1], len(cfg.gates)
    sl = {k: slice(j * H, (j + 1) * H) for j, k in enumerate(cfg.gates)}
    order, prev, new, first = slots(T, cfg.reverse)
    A = torch.empty_like(u)
    Hs, Cs = u.new_empty(T + 1, B, R), u.new_empty(T + 1, B, H)
    Hs[first], Cs[first] = h0, c0
    Cn = u.new_empty(T, B, H) if keep_c is not None else None
    M = u.new_empty(T, B, H) if w_hr is not None else None
    Ds = u.new_empty(T, B, H) if xd is not None else None
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
        if Ds is not None:                    # depth gate (Yao et al. 2015, arXiv 1508.03790)
            d = torch.sigmoid(xd[t] + w_cd * cp + w_ld * c_low[t])
            Ds[t] = d
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
    return LSTMSaved(A, Hs, Cs, Cn, M, Ds, Yr, Mu, Rs)


def backward(cfg: LSTMConfig, s: LSTMSaved, x: LSTMInputs, gY, ghT, gcT, gC, want_dcl: bool) -> LSTMLoopGrads:
    """The backward loop, time reversed (docs/derivations/lstm.md). x needs only the weights,
    c_low and the noise; gY, ghT, gcT, gC the gradients of the output, the final state and
    the cell sequence (None where unused)."""
    if _is_vanilla(cfg, x, depth=s.Ds is not None):
        dA, dh, dc = vanilla_backward(s.A, s.Hs, s.Cs, x.w_hh, cfg.reverse, gY, ghT, gcT, gC)
        return LSTMLoopGrads(dA, dA, None, None, None, dh, dc, None, None, None)
    A, Hs, Cs, Cn, M, Ds, Yr, Mu, Rs = s.A, s.Hs, s.Cs, s.Cn, s.M, s.Ds, s.Yr, s.Mu, s.Rs
    c_low, w_hh, g_hh, w_ci, w_cf, w_co = x.c_low, x.w_hh, x.g_hh, x.w_ci, x.w_cf, x.w_co
    g_c, b_c, w_hr, w_cd, w_ld = x.g_c, x.b_c, x.w_hr, x.w_cd, x.w_ld
    mask, keep_c, keep_h, drop = x.mask, x.keep_c, x.keep_h, x.drop
    T, B, GH = A.shape
    H, R, G = Cs.shape[-1], Hs.shape[-1], len(cfg.gates)
    sl = {k: slice(j * H, (j + 1) * H) for j, k in enumerate(cfg.gates)}
    order, prev, new, _ = slots(T, cfg.reverse)
    pe = cfg.peepholes
    mf = None if mask is None else mask.to(A.dtype)
    dA = torch.empty_like(A)                  # du: gate pre-activations
    dY = torch.empty_like(A) if g_hh is not None else dA   # pre-LN recurrent terms
    dHn = A.new_empty(T, B, R) if w_hr is not None else None
    dXD = A.new_empty(T, B, H) if Ds is not None else None
    dCl = A.new_empty(T, B, H) if Ds is not None and want_dcl else None
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
        _, th, stats = _squash(cn, g_c, b_c, cfg.noaf)
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
        if Ds is not None:
            d, cl = Ds[t], c_low[t]
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
    dg_hh = (dA * ln_normalised(Yr, Mu, Rs)).sum((0, 1)) if g_hh is not None else None   # Σ dA ⊙ Ŷ
    return LSTMLoopGrads(dA, dY, dHn, dXD, dCl, dh, dc, dg_c, db_c, dg_hh)


def _squash(cn: Tensor, g_c, b_c, noaf: bool):
    """s = LN(c')·γ_c + β_c (or c'), th = tanh(s) (or s); returns (s, th, LN stats)."""
    stats = None
    s = cn
    if g_c is not None:
        s, mean, rstd = torch.native_layer_norm(cn, cn.shape[-1:], g_c, b_c, LN_EPS)
        stats = (mean, rstd)
    return s, (s if noaf else tanh(s)), stats


# ---- the vanilla LSTM with the fewest torch calls per step --------------------------------
# Per step the forward makes one GEMM (u_t + h W_hhᵀ straight into the gate buffer) and
# in-place pointwise calls; the backward one GEMM and pointwise calls with torch's own
# sigmoid/tanh backward kernels (da = dσ ⊙ σ ⊙ (1 − σ), dth ⊙ (1 − th²)). Per-step views are
# made once per call (``unbind``): at small sizes the Python cost of a call, not the
# arithmetic, sets the speed (docs/fused.md).
_sig_bwd = torch.ops.aten.sigmoid_backward.grad_input
_tanh_bwd = torch.ops.aten.tanh_backward.grad_input


def _is_vanilla(cfg: LSTMConfig, x: LSTMInputs, depth: bool) -> bool:
    return (cfg.gates == "ifgo" and not cfg.peepholes and not cfg.niaf and not cfg.noaf
            and x.g_hh is None and x.w_hr is None and not depth and x.mask is None
            and x.keep_c is None and x.keep_h is None and x.drop is None)


def _steps(S: Tensor, reverse: bool):
    """Per-step views (prev state, new state) of a (T+1, B, ·) state buffer, in time order."""
    steps = S.unbind(0)
    return (steps[1:], steps[:-1]) if reverse else (steps[:-1], steps[1:])


def _gate_steps(A: Tensor, H: int):
    """Per-step views of the i, f, g, o blocks of A (T, B, 4H)."""
    return tuple(A[..., k * H:(k + 1) * H].unbind(0) for k in range(4))


def vanilla_forward(u: Tensor, h0: Tensor, c0: Tensor, w_hh: Tensor, reverse: bool):
    """-> (A, Hs, Cs) exactly as ``forward`` saves them."""
    T, B, GH = u.shape
    H = GH // 4
    A = torch.empty_like(u)
    Hs, Cs = u.new_empty(T + 1, B, h0.shape[-1]), u.new_empty(T + 1, B, H)
    first = T if reverse else 0
    Hs[first], Cs[first] = h0, c0
    Hprev, Hnew = _steps(Hs, reverse)
    Cprev, Cnew = _steps(Cs, reverse)
    As, Us = A.unbind(0), u.unbind(0)
    IF = A[..., :2 * H].unbind(0)
    Is, Fs, Gs, Os = _gate_steps(A, H)
    WT = w_hh.t()
    th = u.new_empty(B, H)
    for t in (range(T - 1, -1, -1) if reverse else range(T)):
        torch.addmm(Us[t], Hprev[t], WT, out=As[t])
        IF[t].sigmoid_()
        tanh_(Gs[t])
        Os[t].sigmoid_()
        c = torch.mul(Fs[t], Cprev[t], out=Cnew[t]).addcmul_(Is[t], Gs[t])
        torch.mul(Os[t], tanh(c, out=th), out=Hnew[t])
    return A, Hs, Cs


def vanilla_backward(A: Tensor, Hs: Tensor, Cs: Tensor, w_hh: Tensor, reverse: bool, gY, ghT, gcT, gC):
    """-> (du, dh0, dc0); see docs/derivations/lstm.md (the vanilla case)."""
    T, B, GH = A.shape
    H = GH // 4
    Is, Fs, Gs, Os = _gate_steps(A, H)
    dA = torch.empty_like(A)
    dIs, dFs, dGs, dOs = _gate_steps(dA, H)
    dAs = dA.unbind(0)
    Cprev, Cnew = _steps(Cs, reverse)
    dh = ghT if ghT is not None else Hs.new_zeros(B, Hs.shape[-1])
    dc = gcT if gcT is not None else Cs.new_zeros(B, H)
    for t in (range(T) if reverse else range(T - 1, -1, -1)):
        if gY is not None:
            dh = dh + gY[t]
        if gC is not None:
            dc = dc + gC[t]
        th = tanh(Cnew[t])
        _sig_bwd(dh * th, Os[t], grad_input=dOs[t])                      # do_ -> da_o
        dcn = torch.ops.aten.tanh_backward(dh * Os[t], th).add_(dc)      # dc' = dc + dth ⊙ (1 − th²)
        _tanh_bwd(dcn * Is[t], Gs[t], grad_input=dGs[t])                 # dg -> da_g
        _sig_bwd(dcn * Gs[t], Is[t], grad_input=dIs[t])                  # di -> da_i
        _sig_bwd(dcn * Cprev[t], Fs[t], grad_input=dFs[t])               # df -> da_f
        dc = dcn * Fs[t]
        dh = dAs[t] @ w_hh
    return dA, dh, dc
