"""The eager engines as one PyTorch custom operator, for ``torch.compile``.

``torch.compile`` cannot look inside the fused engine (an autograd Function around C++
loops), and the ``scan`` loop of ``engines.traced`` trains wrongly under inductor when a
graph holds more than one scan (pytorch/pytorch#153679: exact forward, wrong gradients).
So a compiled graph calls the engine through two opaque operators, as it would an aten op:

    lstmkit::run            (x, state, params, mask, noise, c_low) -> (y, state_T, cells)
    lstmkit::run_backward   (the same inputs, dy, dstate_T, dcells) -> (dx, dstate, dparams, dc_low)

``run`` runs the chosen engine under no_grad; ``run_backward`` runs it again with autograd
and differentiates that run (a recomputation: one extra forward per compiled training
step, nothing kept between the two operators). Fake kernels give the shapes, so the graph
keeps T symbolic. The spec travels as a JSON string (``specs.spec_to_plain``), the
parameters as a list in the order of ``names``.
"""
from __future__ import annotations

import json
from functools import lru_cache

import torch
from torch import Tensor

from ..cells import spec_from_plain, spec_to_plain
from . import fused, reference
from .base import EngineResult, Noise

_ENGINES = {"fused": fused, "reference": reference}


@lru_cache(maxsize=256)
def _parse(config: str):
    c = json.loads(config)
    return spec_from_plain(c["spec"]), tuple(c["names"]), c["engine"], c["reverse"], c["want_cells"], c["rate"]


def _call(config, x, state, params, mask, keep_c, keep_h, drop, c_low) -> EngineResult:
    spec, names, engine, reverse, want_cells, rate = _parse(config)
    noise = Noise(keep_c if keep_c is not None else (rate or None),
                  keep_h if keep_h is not None else (rate or None), drop)
    return _ENGINES[engine].run(spec, x, tuple(state), dict(zip(names, params)), mask=mask,
                                reverse=reverse, noise=noise, c_low=c_low, want_cells=want_cells)


@torch.compiler.assume_constant_result
def _config(spec, names: tuple, engine: str, reverse: bool, want_cells: bool, rate: float) -> str:
    """The operator's non-tensor arguments as one string (a constant of the traced graph)."""
    return json.dumps({"spec": spec_to_plain(spec), "names": list(names), "engine": engine,
                       "reverse": reverse, "want_cells": want_cells, "rate": rate})


def _outputs(r: EngineResult, x: Tensor) -> list[Tensor]:
    cells = r.cells if r.cells is not None else x.new_empty(0)
    return [t.clone() for t in (r.output, *r.state, cells)]    # fresh tensors: no aliases


@torch.library.custom_op("lstmkit::run", mutates_args=())
def run_op(config: str, x: Tensor, state: list[Tensor], params: list[Tensor], mask: Tensor | None,
           keep_c: Tensor | None, keep_h: Tensor | None, drop: Tensor | None,
           c_low: Tensor | None) -> list[Tensor]:
    with torch.no_grad():
        return _outputs(_call(config, x, state, params, mask, keep_c, keep_h, drop, c_low), x)


@run_op.register_fake
def _(config, x, state, params, mask, keep_c, keep_h, drop, c_low):
    spec, _, _, _, want_cells, _ = _parse(config)
    T, B = x.shape[:2]
    cells = x.new_empty(T, B, spec.hidden_size) if want_cells and len(state) == 2 else x.new_empty(0)
    return [x.new_empty(T, B, spec.out_size), *(s.new_empty(s.shape) for s in state), cells]


@torch.library.custom_op("lstmkit::run_backward", mutates_args=())
def run_backward_op(config: str, x: Tensor, state: list[Tensor], params: list[Tensor],
                    mask: Tensor | None, keep_c: Tensor | None, keep_h: Tensor | None,
                    drop: Tensor | None, c_low: Tensor | None, grads: list[Tensor]) -> list[Tensor]:
    n, k = len(state), len(params)

    def f(x, state, params, *c_low):
        r = _call(config, x, state, params, mask, keep_c, keep_h, drop, *(c_low or (None,)))
        return [r.output, *r.state] + ([r.cells] if r.cells is not None else [])

    # The operator's body runs below autograd's dispatch key (no graph is recorded there);
    # torch.func.vjp brings its own autograd layer.
    low = () if c_low is None else (c_low,)
    outs, vjp = torch.func.vjp(f, x, list(state), list(params), *low)
    dx, dstate, dparams, *dlow = vjp(grads[:len(outs)])
    return [g.clone() for g in (dx, *dstate, *dparams, *dlow)]   # fresh tensors: no aliases


@run_backward_op.register_fake
def _(config, x, state, params, mask, keep_c, keep_h, drop, c_low, grads):
    wrt = [x, *state, *params] + ([c_low] if c_low is not None else [])
    return [torch.empty_like(t) for t in wrt]


def _setup_context(ctx, inputs, output):
    ctx.inputs = inputs
    ctx.out_shapes = [o.shape for o in output]


def _backward(ctx, grads):
    config, x, state, params, mask, keep_c, keep_h, drop, c_low = ctx.inputs
    grads = [x.new_zeros(s) if g is None else g for g, s in zip(grads, ctx.out_shapes)]
    got = run_backward_op(config, x, state, params, mask, keep_c, keep_h, drop, c_low, grads)
    n, k = len(state), len(params)
    dlow = got[1 + n + k] if c_low is not None else None
    return None, got[0], got[1:1 + n], got[1 + n:1 + n + k], None, None, None, None, dlow


torch.library.register_autograd("lstmkit::run", _backward, setup_context=_setup_context)


def run(spec, x: Tensor, state: tuple[Tensor, ...], p: dict[str, Tensor], *, engine: str = "fused",
        mask: Tensor | None = None, reverse: bool = False, noise: Noise = Noise(),
        c_low: Tensor | None = None, want_cells: bool = False, record: bool = False) -> EngineResult:
    """The engine interface of ``engines``, through the ``lstmkit::run`` operator."""
    if record:
        raise ValueError("record: a trace() records eager runs only, not a compiled graph")
    rates = [k for k in (noise.keep_c, noise.keep_h) if k is not None and not isinstance(k, Tensor)]
    config = _config(spec, tuple(p), engine, bool(reverse), bool(want_cells),
                     float(rates[0]) if rates else 0.0)
    keep_c = noise.keep_c if isinstance(noise.keep_c, Tensor) else None
    keep_h = noise.keep_h if isinstance(noise.keep_h, Tensor) else None
    out = run_op(config, x, list(state), list(p.values()), mask, keep_c, keep_h, noise.drop, c_low)
    n = len(state)
    cells = out[1 + n] if want_cells and n == 2 else None
    return EngineResult(out[0], tuple(out[1:1 + n]), cells, None)
