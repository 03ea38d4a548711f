"""The LSTM family (every variant of ``cells.lstm``): the fused Function, forward and
hand-written backward. Derivation, in these symbols: docs/derivations/lstm.md.

The input terms u = x W_ihᵀ (b = b_ih + b_hh is added in the loop) or, with layer norm,
u = LN(x W_ihᵀ)·γ_ih + b_ih + b_hh, and the depth gate's xd = x W_xdᵀ + b_d come from one
GEMM each (autograd); this Function returns du, db and dxd, and autograd turns them into
dW_ih, db_ih, db_hh, dγ_ih, dW_xd, db_d and dx with three large GEMMs. The time loops run in
C++ (lstm.cpp) on the CPU, else in their PyTorch twin (lstm_torch.py). After the loop the
weight gradients are large GEMMs and sums here:

    dW_hh = Σ_t dY_tᵀ h̃_t     dγ_hh = Σ dA ⊙ Ŷ     dw_c· = Σ dA_· ⊙ c (c' for o)
    dW_hr = Σ_t dH'_tᵀ m_t    dw_cd = Σ dXD ⊙ c    dw_ld = Σ dXD ⊙ c_low

What the forward saves (``LSTMSaved``; T steps, B batch, H hidden, R out size, G gates):
A (T, B, G·H) the activated gates (i, f, g, o of spec.gates); Hs (T+1, B, R) and
Cs (T+1, B, H) the states in time order (one slot for the initial state); Cn (T, B, H) the
pre-zoneout c' (zoneout only); M (T, B, H) m = o ⊙ tanh(c') (projection only); Yr (T, B, G·H)
the raw recurrent terms h̃ W_hhᵀ and their LN statistics Mu, Rs (T, B, G, 1) (layer norm
only); Ds (T, B, H) the depth gate, and c_low (depth gate only). tanh(c') and the LN(c')
statistics are recomputed in the backward (one cheap pass) instead of stored, to keep the
training step's peak memory low. On the C++ path A is u itself, overwritten with the gates.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from ...cells.common import LN_EPS
from ..base import EngineResult, Noise
from . import build, lstm_torch
from .common import absent_as_none, call, contiguous, input_terms, keep_tensor, new_view, outer_sum, packed
from .common import prev_view, save, saved
from .lstm_torch import LSTMConfig, LSTMInputs, LSTMLoopGrads, LSTMSaved

# the inputs the backward reads, besides LSTMSaved (keep_c, keep_h ride on ctx: a rate is no tensor)
_FOR_BACKWARD = ("c_low", "w_hh", "g_hh", "w_ci", "w_cf", "w_co", "g_c", "b_c", "w_hr", "w_cd", "w_ld",
                 "mask", "drop")


class LSTMOutputs(NamedTuple):
    """What LSTMFunction returns: the results, then the saved tensors (not differentiable;
    returned so that ``setup_context`` can save them, as torch.func requires)."""

    Y: Tensor                   # (T, B, R) output, zero on padding
    hT: Tensor                  # (B, R) final state
    cT: Tensor                  # (B, H)
    Cseq: Tensor                # (T, B, H) cell states in time order (a view of Cs)
    A: Tensor                   # LSTMSaved's fields, as there
    Hs: Tensor
    Cs: Tensor
    Cn: Tensor | None
    M: Tensor | None
    Ds: Tensor | None
    Yr: Tensor | None
    Mu: Tensor | None
    Rs: Tensor | None

    def saved(self) -> LSTMSaved:
        return LSTMSaved(**{k: getattr(self, k) for k in LSTMSaved._fields})


class LSTMFunction(torch.autograd.Function):
    """apply(cfg, keep, *LSTMInputs) -> LSTMOutputs; backward gives LSTMInputs' gradients.

    The gate inputs are u + b + recurrent terms: b (b_ih + b_hh, or None) is added inside the
    loop, which spares the input GEMM a pass that broadcasts it over all T·B rows; db = Σ dA.
    keep: the per-step buffers over all steps, for a backward or the trace; else one step."""

    @staticmethod
    def forward(cfg: LSTMConfig, keep: bool, *inputs) -> LSTMOutputs:
        x = LSTMInputs(*inputs)
        ops = build.ops(x.u.device)
        if ops is not None:
            T, B = x.u.shape[:2]
            # the loop overwrites u with the gates (a contiguous copy of it, where it is not)
            args = x._replace(keep_c=keep_tensor(x.keep_c, x.u), keep_h=keep_tensor(x.keep_h, x.u))
            s = LSTMSaved(*ops.lstm_forward(
                **contiguous(**args._asdict()), pk_hh=packed(x.w_hh, B, T), pk_hr=packed(x.w_hr, B, T), gates=cfg.gates,
                coupled=cfg.coupled, niaf=cfg.niaf, noaf=cfg.noaf, reverse=cfg.reverse, keep=keep, eps=LN_EPS))
            s = absent_as_none(s, "Cn", "M", "Ds", "Yr", "Mu", "Rs")
        else:
            s = lstm_torch.forward(cfg, x)
        Y = new_view(s.Hs, cfg.reverse)
        if x.mask is not None:
            Y = Y * x.mask
        last = 0 if cfg.reverse else x.u.shape[0]
        return LSTMOutputs(Y, s.Hs[last], s.Cs[last], new_view(s.Cs, cfg.reverse), **s._asdict())

    @staticmethod
    def setup_context(ctx, inputs, output):
        cfg, _, *rest = inputs
        x, out = LSTMInputs(*rest), LSTMOutputs(*output)
        ctx.cfg, ctx.keep_c, ctx.keep_h, ctx.has_b = cfg, x.keep_c, x.keep_h, x.bias is not None
        ctx.ops = build.ops(x.u.device)
        if out.A is x.u:
            ctx.mark_dirty(x.u)                   # A is u, overwritten with the gates
        ctx.mark_non_differentiable(*(t for t in out.saved() if t is not None))
        ctx.set_materialize_grads(False)          # no zeros for the saved outputs, nor unused ones
        save(ctx, **out.saved()._asdict(), **{k: getattr(x, k) for k in _FOR_BACKWARD})

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, *grads):
        g = LSTMOutputs(*grads)
        sv = saved(ctx)
        s = LSTMSaved(**{k: sv[k] for k in LSTMSaved._fields})
        x = LSTMInputs(**{k: sv.get(k) for k in LSTMInputs._fields})._replace(keep_c=ctx.keep_c,
                                                                             keep_h=ctx.keep_h)
        cfg = ctx.cfg
        want_dcl = s.Ds is not None and ctx.needs_input_grad[2 + LSTMInputs._fields.index("c_low")]
        if ctx.ops is not None:
            T, B = s.A.shape[:2]
            w_hhT = x.w_hh.t().contiguous()
            w_hrT = x.w_hr.t().contiguous() if x.w_hr is not None else None
            d = LSTMLoopGrads(*ctx.ops.lstm_backward(
                **contiguous(**s._asdict(), **{k: getattr(x, k) for k in _FOR_BACKWARD if k != "w_hh"},
                             keep_c=keep_tensor(x.keep_c, s.A), keep_h=keep_tensor(x.keep_h, s.A),
                             gY=g.Y, ghT=g.hT, gcT=g.cT, gC=g.Cseq),
                w_hhT=w_hhT, pk_hhT=packed(w_hhT, B, T), w_hrT=w_hrT, pk_hrT=packed(w_hrT, B, T), want_dcl=want_dcl,
                gates=cfg.gates, coupled=cfg.coupled, niaf=cfg.niaf, noaf=cfg.noaf, reverse=cfg.reverse,
                eps=LN_EPS))
            d = absent_as_none(d, "dHn", "dXD", "dCl", "dg_c", "db_c", "dg_hh")
        else:
            d = lstm_torch.backward(cfg, s, x, g.Y, g.hT, g.cT, g.Cseq, want_dcl)
        return (None, None, *_weight_grads(ctx, cfg, s, x, d))


def _weight_grads(ctx, cfg: LSTMConfig, s: LSTMSaved, x: LSTMInputs, d: LSTMLoopGrads) -> LSTMInputs:
    """The gradient of every input from the loop's: large GEMMs and sums over T·B."""
    H = s.Cs.shape[-1]
    sl = {k: slice(j * H, (j + 1) * H) for j, k in enumerate(cfg.gates)}
    hin = prev_view(s.Hs, cfg.reverse)
    if x.drop is not None:
        hin = hin * x.drop
    dW_hh = outer_sum(d.dY, hin, cfg.reverse)
    Cp = prev_view(s.Cs, cfg.reverse)
    Cnew = s.Cn if s.Cn is not None else new_view(s.Cs, cfg.reverse)
    dpe = {k: (d.dA[..., sl[k]] * (Cnew if k == "o" else Cp)).sum((0, 1)) for k in cfg.peepholes}
    dW_hr = outer_sum(d.dHn, s.M, cfg.reverse) if x.w_hr is not None else None
    dw_cd = (d.dXD * Cp).sum((0, 1)) if s.Ds is not None else None
    dw_ld = (d.dXD * x.c_low).sum((0, 1)) if s.Ds is not None else None
    db = d.dA.sum((0, 1)) if ctx.has_b else None
    return LSTMInputs(u=d.dA, bias=db, xd=d.dXD, c_low=d.dCl, h0=d.dh0, c0=d.dc0, w_hh=dW_hh, g_hh=d.dg_hh,
                      w_ci=dpe.get("i"), w_cf=dpe.get("f"), w_co=dpe.get("o"), g_c=d.dg_c, b_c=d.db_c,
                      w_hr=dW_hr, w_cd=dw_cd, w_ld=dw_ld, mask=None, keep_c=None, keep_h=None, drop=None)


def run_lstm(spec, x: Tensor, state, p, *, mask=None, reverse=False, noise: Noise = Noise(),
             c_low=None, want_cells=False, record=False) -> EngineResult:
    ab = spec.ablate
    cfg = LSTMConfig(spec.gates, spec.peepholes, spec.coupled, "input_activation" in ab,
                     "output_activation" in ab, bool(reverse))
    u, b, xd = lstm_terms(spec, x, p)
    h0, c0 = state
    ins = LSTMInputs(u=u, bias=b, xd=xd, c_low=c_low if spec.depth_gate else None, h0=h0, c0=c0,
                     w_hh=p["w_hh"], g_hh=p.get("g_hh"), w_ci=p.get("w_ci"), w_cf=p.get("w_cf"),
                     w_co=p.get("w_co"), g_c=p.get("g_c"), b_c=p.get("b_c"), w_hr=p.get("w_hr"),
                     w_cd=p.get("w_cd"), w_ld=p.get("w_ld"), mask=mask, keep_c=noise.keep_c,
                     keep_h=noise.keep_h, drop=noise.drop)
    grad = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (u, b, xd, c_low, h0, c0, *p.values()))
    # keep: the per-step buffers over all steps, for a backward or the trace; else one step
    out = LSTMOutputs(*call(LSTMFunction, grad, cfg, record or grad, *ins))
    rec = _record(spec, out.A, out.Ds, out.Cseq, out.Y, mask) if record else None
    return EngineResult(out.Y, (out.hT, out.cT), out.Cseq if want_cells else None, rec)


def lstm_terms(spec, x: Tensor, p) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """The input side of the gates for the whole sequence: u (T, B, G·H), the bias b the loop
    adds (None with layer norm, where it is in u) and the depth gate's xd (T, B, H) or None."""
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
    return u, b, xd


def _record(spec, A: Tensor, Ds: Tensor | None, Cseq: Tensor, Y: Tensor, mask) -> dict[str, Tensor]:
    """The trace record: i, f, g, [d,] o, c, h at their effective values, zero on padding."""
    H = spec.hidden_size
    A = A.detach()
    got = {k: A[..., j * H:(j + 1) * H] for j, k in enumerate(spec.gates)}
    ones = A.new_ones(A.shape[:-1] + (H,))
    f = got.get("f", ones)
    out = {"i": got.get("i", (1 - f) if spec.coupled else ones), "f": f, "g": got["g"]}
    if spec.depth_gate:
        out["d"] = Ds.detach()
    out["o"] = got.get("o", ones)
    out["c"] = Cseq.detach()
    out["h"] = Y.detach()
    # copies, so that a kept trace does not pin the buffers saved for the backward
    return {k: v.clone() if mask is None else v * mask for k, v in out.items()}
