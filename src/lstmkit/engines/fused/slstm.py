"""The sLSTM (``cells.xlstm.SLSTMSpec``): the fused Function, forward and hand-written backward.
Derivation, in these symbols: docs/derivations/slstm.md.

u = x W_ihᵀ + b_ih comes from one GEMM over the sequence (autograd turns du into dW_ih, db_ih
and dx). The time loops run in C++ (slstm.cpp) on the CPU, else in their PyTorch twin
(slstm_torch.py). The block-diagonal recurrent weights W_hh (4H, d) enter each step as one
batched GEMM over the heads (NH GEMMs of d columns: 1/NH of a dense (4H, H) GEMM's work; the
product alone measured 3.5-4x faster than that dense GEMM at S and M); dW_hh = Σ_t dA_tᵀ h_{t−1}, head by head, is taken
after the loop.

What the forward saves (``SLSTMSaved``): A (T, B, 4H) the pre-activations and Hs, Cs, Ns, Ms
(T+1, B, H) the states in time order; the backward recomputes the gates from them.

slstm.cpp is built on its own (``ops()``), beside the other families' loops and not into
their library: a failed build here falls back to the twin without touching them.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from . import build, slstm_torch
from .common import call, contiguous, save, saved
from .slstm_torch import SLSTMInputs, SLSTMLoopGrads, SLSTMSaved
from ..slstm import SLSTMResult
from ...cells.xlstm import SLSTMState


def ops(device: torch.device | None = None):
    """torch.ops.lstmkit_slstm, or None (not built, LSTMKIT_NO_EXT=1, or tensors off the CPU)."""
    if device is not None and torch.device(device).type != "cpu":
        return None
    return build.load("lstmkit_slstm", "the sLSTM's")


def supports(x: Tensor) -> bool:
    """The fused engine runs everywhere (the twin off the CPU or without a compiler)."""
    return True


class SLSTMOutputs(NamedTuple):
    """What SLSTMFunction returns: the results, then the saved tensors (not differentiable;
    returned so that ``setup_context`` can save them, as torch.func requires)."""

    Y: Tensor                   # (T, B, H) output, zero on padding
    hT: Tensor                  # (B, H) final state, each
    cT: Tensor
    nT: Tensor
    mT: Tensor
    A: Tensor                   # SLSTMSaved's fields
    Hs: Tensor
    Cs: Tensor
    Ns: Tensor
    Ms: Tensor

    def saved(self) -> SLSTMSaved:
        return SLSTMSaved(self.A, self.Hs, self.Cs, self.Ns, self.Ms)


class SLSTMFunction(torch.autograd.Function):
    """apply(exp_forget, num_heads, u, h0, c0, n0, m0, w_hh, mask) -> SLSTMOutputs."""

    @staticmethod
    def forward(exp_forget: bool, num_heads: int, u, h0, c0, n0, m0, w_hh, mask) -> SLSTMOutputs:
        w, _ = slstm_torch.head_weights(w_hh, num_heads)
        x = SLSTMInputs(u, h0, c0, n0, m0, w, mask)
        lib = ops(u.device)
        if lib is not None:
            s = SLSTMSaved(*lib.slstm_forward(**contiguous(**x._asdict()), exp_forget=exp_forget))
        else:
            s = slstm_torch.forward(exp_forget, x)
        Y = s.Hs[1:] if mask is None else s.Hs[1:] * mask
        return SLSTMOutputs(Y, s.Hs[-1], s.Cs[-1], s.Ns[-1], s.Ms[-1], *s)

    @staticmethod
    def setup_context(ctx, inputs, output):
        exp_forget, num_heads, u, h0, c0, n0, m0, w_hh, mask = inputs
        out = SLSTMOutputs(*output)
        ctx.exp_forget, ctx.num_heads, ctx.lib = exp_forget, num_heads, ops(u.device)
        ctx.mark_non_differentiable(*out.saved())
        ctx.set_materialize_grads(False)
        save(ctx, **out.saved()._asdict(), w_hh=w_hh, mask=mask)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, gY, ghT, gcT, gnT, gmT, *_):
        sv = saved(ctx)
        s = SLSTMSaved(**{k: sv[k] for k in SLSTMSaved._fields})
        w_hh, mask, NH = sv["w_hh"], sv["mask"], ctx.num_heads
        _, wT = slstm_torch.head_weights(w_hh, NH)
        if ctx.lib is not None:
            d = SLSTMLoopGrads(*ctx.lib.slstm_backward(**contiguous(**s._asdict(), mask=mask, gY=gY, ghT=ghT, gcT=gcT,
                                                                    gnT=gnT, gmT=gmT, wT=wT),
                                                       exp_forget=ctx.exp_forget))
        else:
            d = slstm_torch.backward(ctx.exp_forget, s, wT, mask, gY, (ghT, gcT, gnT, gmT))
        T, B, G = s.A.shape
        dsz = G // 4 // NH                                                   # dW_hh, head by head
        dW = torch.einsum("rgnj,rnk->gnjk", d.dA.view(T * B, 4, NH, dsz), s.Hs[:-1].reshape(T * B, NH, dsz))
        return None, None, d.dA, d.dh0, d.dc0, d.dn0, d.dm0, dW.reshape(G, dsz), None


def run(spec, x: Tensor, state: SLSTMState, p: dict[str, Tensor], *, mask: Tensor | None = None,
        record: bool = False) -> SLSTMResult:
    """One sLSTM layer (as ``engines.slstm.run``, the reference) through the fused Function."""
    u = spec.project(x, p)
    ins = (u, *state, p["w_hh"], mask)
    grad = torch.is_grad_enabled() and any(t.requires_grad for t in ins if t is not None)
    out = SLSTMOutputs(*call(SLSTMFunction, grad, spec.forget == "exp", spec.num_heads, *ins))
    rec = None
    if record:
        with torch.no_grad():
            i, f, z, o, *_ = slstm_torch.cell(out.A, out.Cs[:-1], out.Ns[:-1], out.Ms[:-1], spec.forget == "exp")
            rec = {"i": i, "f": f, "g": z, "o": o, "c": out.Cs[1:], "n": out.Ns[1:], "m": out.Ms[1:], "h": out.Hs[1:]}
            rec = {k: v.clone() if mask is None else v * mask for k, v in rec.items()}
    return SLSTMResult(out.Y, SLSTMState(out.hT, out.cT, out.nT, out.mT), rec)
