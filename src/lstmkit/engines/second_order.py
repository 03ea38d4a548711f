"""Gradients of gradients through a fast engine: taken from the reference engine.

The fused engine's backward is hand-written and not itself differentiable. A gradient
penalty (``torch.autograd.grad(..., create_graph=True)`` then ``backward``) needs the
backward's own graph, and autograd would silently drop the second-order terms that pass
through a once-differentiable node. So each fast run is wrapped in ``Guard``, an identity
on its outputs that also takes the run's inputs:

    Guard(y, state_T, cells ; x, state_0, params, c_low) -> (y, state_T, cells)

    backward, plain:          the output gradients go on into the fast engine's graph
    backward, create_graph:   the reference engine runs again from the inputs, with autograd,
                              and its gradients, themselves differentiable, are returned for
                              the inputs; the fast graph is not entered

The plain path costs one identity node per layer-direction; the second-order path one
reference forward and backward, only when asked for.
"""
from __future__ import annotations

import torch
from torch import Tensor

from . import reference
from .base import EngineResult, Noise


class Guard(torch.autograd.Function):
    @staticmethod
    def forward(outs: tuple, spec, names, kw, n_in: int, *tensors):
        return tuple(t.view_as(t) for t in tensors[:len(outs)])

    @staticmethod
    def setup_context(ctx, inputs, output):
        outs, spec, names, kw, n_in, *tensors = inputs
        ctx.spec, ctx.names, ctx.kw, ctx.n_out = spec, names, kw, len(outs)
        ctx.inputs = tensors[len(outs):]                # x, state..., params..., [c_low]

    @staticmethod
    def backward(ctx, *grads):
        nothing = (None,) * 5
        if not torch.is_grad_enabled():
            return nothing + grads + (None,) * len(ctx.inputs)
        return nothing + (None,) * ctx.n_out + _reference_grads(ctx, grads)


def _reference_grads(ctx, grads) -> tuple:
    x, *rest = ctx.inputs
    n_state = len(ctx.spec.state_sizes)
    state, params = rest[:n_state], rest[n_state:n_state + len(ctx.names)]
    c_low = rest[n_state + len(ctx.names)] if len(rest) > n_state + len(ctx.names) else None
    r = reference.run(ctx.spec, x, tuple(state), dict(zip(ctx.names, params)), c_low=c_low, **ctx.kw)
    outs = [r.output, *r.state] + ([r.cells] if r.cells is not None else [])
    pairs = [(o, g) for o, g in zip(outs, grads) if g is not None]
    wrt = [t for t in ctx.inputs if t.requires_grad]
    got = iter(torch.autograd.grad([o for o, _ in pairs], wrt, [g for _, g in pairs], create_graph=True,
                                   allow_unused=True))
    return tuple(next(got) if t.requires_grad else None for t in ctx.inputs)


def guard(run, spec, x: Tensor, state: tuple[Tensor, ...], p: dict[str, Tensor], *,
          mask: Tensor | None = None, reverse: bool = False, noise: Noise = Noise(),
          c_low: Tensor | None = None, want_cells: bool = False, record: bool = False) -> EngineResult:
    """``run(...)`` (a fast engine's), made safe for double backward by ``Guard``."""
    r = run(spec, x, state, p, mask=mask, reverse=reverse, noise=noise, c_low=c_low,
            want_cells=want_cells, record=record)
    if not torch.is_grad_enabled():
        return r
    outs = (r.output, *r.state) + ((r.cells,) if r.cells is not None else ())
    kw = dict(mask=mask, reverse=reverse, noise=noise, want_cells=r.cells is not None)
    ins = (x, *state, *p.values()) + ((c_low,) if c_low is not None else ())
    got = Guard.apply(tuple(range(len(outs))), spec, tuple(p), kw, len(ins), *outs, *ins)
    n = len(r.state)
    return EngineResult(got[0], tuple(got[1:1 + n]), got[1 + n] if r.cells is not None else None, r.record)
