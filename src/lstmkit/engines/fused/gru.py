"""The GRU (both ``reset_after``): the fused Function, forward and hand-written backward.
Derivation, in these symbols: docs/derivations/gru.md.

u = LN(x W_ihᵀ)·γ_ih + b_ih comes from one GEMM over the sequence (autograd turns du into
dW_ih, db_ih, dγ_ih and dx). The time loops run in C++ (gru.cpp) on the CPU, else in their
PyTorch twin (gru_torch.py); the weight-gradient GEMMs after the loop are here.

What the forward saves (``GRUSaved``): A (T, B, 3H) r, z, n; Hs (T+1, B, H) the states in
time order (one slot for the initial state); Vn (T, B, H) the reset-after term
v_n = W_hn h̃ + b_hn (reset_after) or q = r ⊙ h̃ (reset_before); Yr (T, B, 3H) the raw
recurrent terms and their LN statistics Mu, Rs (T, B, 3, 1) (layer norm only). With no
backward to come (no_grad, nothing requiring grad) the C++ loop keeps only the last step
of A, Vn, Yr, Mu and Rs.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from ...cells.common import LN_EPS
from ..base import EngineResult, Noise
from . import build, gru_torch
from .common import absent_as_none, call, contiguous, input_terms, keep_tensor, ln_normalised, new_view, packed
from .common import outer_sum, prev_view, save, saved
from .gru_torch import GRUInputs, GRULoopGrads, GRUSaved

_FOR_BACKWARD = ("w_hh", "b_hh", "g_hh", "mask", "drop")   # besides GRUSaved; keep_h rides on ctx


class GRUOutputs(NamedTuple):
    """What GRUFunction returns: the results, then the saved tensors (not differentiable;
    returned so that ``setup_context`` can save them, as torch.func requires)."""

    Y: Tensor                   # (T, B, H) output, zero on padding
    hT: Tensor                  # (B, H) final state
    A: Tensor                   # GRUSaved's fields, as there
    Hs: Tensor
    Vn: Tensor
    Yr: Tensor | None
    Mu: Tensor | None
    Rs: Tensor | None

    def saved(self) -> GRUSaved:
        return GRUSaved(**{k: getattr(self, k) for k in GRUSaved._fields})


class GRUFunction(torch.autograd.Function):
    """apply(reset_after, reverse, keep, *GRUInputs) -> GRUOutputs; backward gives GRUInputs'
    gradients. keep: A, Vn over all steps, for the backward or the trace; else the last step's."""

    @staticmethod
    def forward(reset_after: bool, reverse: bool, keep: bool, *inputs) -> GRUOutputs:
        x = GRUInputs(*inputs)
        ops = build.ops(x.u.device)
        if ops is not None:
            (B, H), T = x.h0.shape, x.u.shape[0]
            w_a = x.w_hh if reset_after else x.w_hh[:2 * H]      # the first GEMM's weight
            w_n = None if reset_after else x.w_hh[2 * H:]
            args = x._replace(keep_h=keep_tensor(x.keep_h, x.u))
            s = GRUSaved(*ops.gru_forward(**contiguous(**args._asdict()), pk_a=packed(w_a, B, T), pk_n=packed(w_n, B, T),
                                          reset_after=reset_after, reverse=reverse, keep=keep, eps=LN_EPS))
            s = absent_as_none(s, "Yr", "Mu", "Rs")
        else:
            s = gru_torch.forward(reset_after, reverse, x)
        Y = new_view(s.Hs, reverse)
        if x.mask is not None:
            Y = Y * x.mask
        return GRUOutputs(Y, s.Hs[0 if reverse else x.u.shape[0]], **s._asdict())

    @staticmethod
    def setup_context(ctx, inputs, output):
        reset_after, reverse, _, *rest = inputs
        x, out = GRUInputs(*rest), GRUOutputs(*output)
        ctx.ops = build.ops(x.u.device)
        ctx.reset_after, ctx.reverse, ctx.keep_h = reset_after, reverse, x.keep_h
        ctx.mark_non_differentiable(*(t for t in out.saved() if t is not None))
        ctx.set_materialize_grads(False)      # no (T, B, 3H) zeros for the unused A (page faults)
        save(ctx, **out.saved()._asdict(), **{k: getattr(x, k) for k in _FOR_BACKWARD})

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, *grads):
        g = GRUOutputs(*grads)
        sv = saved(ctx)
        s = GRUSaved(**{k: sv[k] for k in GRUSaved._fields})
        x = GRUInputs(**{k: sv.get(k) for k in GRUInputs._fields})._replace(keep_h=ctx.keep_h)
        reset_after, reverse = ctx.reset_after, ctx.reverse
        T, B, H = s.A.shape[0], s.A.shape[1], s.A.shape[2] // 3
        if ctx.ops is not None:
            w_aT = (x.w_hh if reset_after else x.w_hh[:2 * H]).t().contiguous()
            w_nT = None if reset_after else x.w_hh[2 * H:].t().contiguous()
            d = GRULoopGrads(*ctx.ops.gru_backward(
                **contiguous(**s._asdict(), g_hh=x.g_hh, mask=x.mask, keep_h=keep_tensor(x.keep_h, s.A),
                             drop=x.drop, gY=g.Y, ghT=g.hT),
                w_aT=w_aT, pk_aT=packed(w_aT, B, T), w_nT=w_nT, pk_nT=packed(w_nT, B, T),
                reset_after=reset_after, reverse=reverse))
            d = absent_as_none(d, "dVn", "dY")
        else:
            d = gru_torch.backward(reset_after, reverse, s, x, g.Y, g.hT)
        # dv = (da_r, da_z, dv_n), dv_n = da_n without reset_after; dY = dv without layer norm
        dV = (d.dA[..., :2 * H], d.dVn if reset_after else d.dA[..., 2 * H:])
        dY = dV if d.dY is None else (d.dY[..., :2 * H], d.dY[..., 2 * H:])
        hin = prev_view(s.Hs, reverse)
        if x.drop is not None:
            hin = hin * x.drop
        hin_n = hin if reset_after else s.Vn  # dW_rz = dY_rzᵀ H̃;  dW_n = dY_nᵀ H̃ (after) or dY_nᵀ Q
        dW = torch.cat([outer_sum(dY[0], hin, reverse), outer_sum(dY[1], hin_n, reverse)])
        db = torch.cat([dv.sum((0, 1)) for dv in dV]) if x.b_hh is not None else None
        dg = None
        if x.g_hh is not None:                # dγ_hh = Σ dv ⊙ Ŷ
            Yh = ln_normalised(s.Yr, s.Mu, s.Rs)
            dg = torch.cat([(dV[0] * Yh[..., :2 * H]).sum((0, 1)), (dV[1] * Yh[..., 2 * H:]).sum((0, 1))])
        return None, None, None, *GRUInputs(u=d.dA, h0=d.dh0, w_hh=dW, b_hh=db, g_hh=dg, mask=None,
                                            keep_h=None, drop=None)


def run_gru(spec, x: Tensor, state, p, *, mask=None, reverse=False, noise: Noise = Noise(),
            record=False, **_) -> EngineResult:
    u = input_terms(x, p["w_ih"], p.get("b_ih"), p.get("g_ih"), 3)
    grad = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (u, state[0], p["w_hh"], p.get("b_hh"), p.get("g_hh")))
    ins = GRUInputs(u=u, h0=state[0], w_hh=p["w_hh"], b_hh=p.get("b_hh"), g_hh=p.get("g_hh"), mask=mask,
                    keep_h=noise.keep_h, drop=noise.drop)
    # keep: A, Vn over all steps, for the backward or the trace; else only the last step's
    out = GRUOutputs(*call(GRUFunction, grad, spec.reset_after, bool(reverse), record or grad, *ins))
    rec = None
    if record:
        H = spec.hidden_size
        A = out.A.detach()
        rec = {k: A[..., j * H:(j + 1) * H] for j, k in enumerate("rzn")}
        rec["h"] = out.Y.detach()
        rec = {k: v.clone() if mask is None else v * mask for k, v in rec.items()}
    return EngineResult(out.Y, (out.hT,), None, rec)
