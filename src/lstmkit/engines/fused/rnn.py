"""The Elman RNN (tanh or relu): the fused Function, forward and hand-written backward.
Derivation, in these symbols: docs/derivations/rnn.md.

u = x W_ihᵀ + b_ih + b_hh comes from one GEMM over the sequence (autograd turns du into
dW_ih, db_ih, db_hh and dx). The time loops run in C++ (rnn.cpp) on the CPU, else in their
PyTorch twin (rnn_torch.py); dW_hh = dAᵀ H, GEMMs after the loop (common.outer_sum), is here.

What the forward saves (``RNNSaved``): Hs (T+1, B, H) the states in time order (one slot for
the initial state), and An (T, B, H) h' before padding (mask only): the derivative of tanh or
relu is read from h'.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from ..base import EngineResult
from . import build, rnn_torch
from .common import absent_as_none, call, contiguous, input_terms, new_view, outer_sum, packed, prev_view, save, saved
from .rnn_torch import RNNInputs, RNNLoopGrads, RNNSaved


class RNNOutputs(NamedTuple):
    """What RNNFunction returns: the results, then the saved tensors (not differentiable;
    returned so that ``setup_context`` can save them, as torch.func requires)."""

    Y: Tensor                   # (T, B, H) output, zero on padding
    hT: Tensor                  # (B, H) final state
    Hs: Tensor                  # RNNSaved's fields, as there
    An: Tensor | None

    def saved(self) -> RNNSaved:
        return RNNSaved(**{k: getattr(self, k) for k in RNNSaved._fields})


class RNNFunction(torch.autograd.Function):
    """apply(relu, reverse, *RNNInputs) -> RNNOutputs: h' = act(u + h W_hhᵀ), b_hh folded into u."""

    @staticmethod
    def forward(relu: bool, reverse: bool, *inputs) -> RNNOutputs:
        x = RNNInputs(*inputs)
        ops = build.ops(x.u.device)
        if ops is not None:
            s = RNNSaved(*ops.rnn_forward(**contiguous(**x._asdict()), pk=packed(x.w_hh, x.u.shape[1], x.u.shape[0]),
                                          relu=relu, reverse=reverse))
            s = absent_as_none(s, "An")
        else:
            s = rnn_torch.forward(relu, reverse, x)
        Y = new_view(s.Hs, reverse)
        if x.mask is not None:
            Y = Y * x.mask
        return RNNOutputs(Y, s.Hs[0 if reverse else x.u.shape[0]], **s._asdict())

    @staticmethod
    def setup_context(ctx, inputs, output):
        relu, reverse, *rest = inputs
        x, out = RNNInputs(*rest), RNNOutputs(*output)
        ctx.ops, ctx.relu, ctx.reverse = build.ops(x.u.device), relu, reverse
        ctx.mark_non_differentiable(*(t for t in out.saved() if t is not None))
        ctx.set_materialize_grads(False)      # gY, ghT None when unused
        save(ctx, **out.saved()._asdict(), w_hh=x.w_hh, mask=x.mask)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, *grads):
        g = RNNOutputs(*grads)
        sv = saved(ctx)
        s = RNNSaved(**{k: sv[k] for k in RNNSaved._fields})
        x = RNNInputs(u=None, h0=None, w_hh=sv["w_hh"], mask=sv["mask"])
        B = s.Hs.shape[1]
        if ctx.ops is not None:
            w_hhT = x.w_hh.t().contiguous()
            d = RNNLoopGrads(*ctx.ops.rnn_backward(**contiguous(**s._asdict(), mask=x.mask, gY=g.Y, ghT=g.hT),
                                                   w_hhT=w_hhT, pk=packed(w_hhT, B, s.Hs.shape[0] - 1),
                                                   relu=ctx.relu, reverse=ctx.reverse))
        else:
            d = rnn_torch.backward(ctx.relu, ctx.reverse, s, x, g.Y, g.hT)
        hin = prev_view(s.Hs, ctx.reverse)    # dW_hh = dAᵀ H
        dW = outer_sum(d.dA, hin, ctx.reverse)
        return None, None, *RNNInputs(u=d.dA, h0=d.dh0, w_hh=dW, mask=None)


def run_rnn(spec, x: Tensor, state, p, *, mask=None, reverse=False, record=False,
            **_) -> EngineResult:
    u = input_terms(x, p["w_ih"], p.get("b_ih"), None, 1, p.get("b_hh"))
    ins = RNNInputs(u=u, h0=state[0], w_hh=p["w_hh"], mask=mask)
    grad = torch.is_grad_enabled() and any(t.requires_grad for t in (u, state[0], p["w_hh"]))
    out = RNNOutputs(*call(RNNFunction, grad, spec.nonlinearity == "relu", bool(reverse), *ins))
    rec = None
    if record:
        rec = {"h": out.Y.detach().clone() if mask is None else out.Y.detach() * mask}
    return EngineResult(out.Y, (out.hT,), None, rec)
