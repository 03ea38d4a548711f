"""The traced engine: the reference step inside torch's ``scan`` operator, for graph capture.

``torch.compile``, ``torch.export`` and the ONNX exporter trace a program into a graph.
A Python loop over T unrolls into T copies of the step and fixes T; the fused engine's
autograd Function and C++ loop are opaque to the tracer. ``scan`` is one graph node whose
body is the cell step, so the captured graph keeps T symbolic (``torch.export`` with a
dynamic time dimension, ONNX with a ``Loop``), and compiles forward and backward with
``fullgraph=True``. The maths is ``spec.step``, the reference engine's, so every variant
of every family runs here unchanged:

    carry_t = (h_t, c_t) = step(u_t, carry_{t−1})       (masked: carry_t = carry_{t−1} on padding)
    y_t     = h_t ⊙ m_t

Per-step inputs (u, the zoneout keeps, the padding mask, c_low) are scanned over; the
parameters and the recurrent-dropout mask are read from the closure. The step's carries and
outputs are fresh tensors (``clone``): inductor refuses a scan whose body returns a tensor
that autograd also saves (pytorch/pytorch#195977).

``layers.py`` picks this engine whenever ``torch.compiler.is_compiling()``; in eager mode
the tests compare it with the reference engine (outputs, states, gradients).
"""
from __future__ import annotations

import torch
from torch import Tensor
from torch._higher_order_ops.scan import scan

from .base import EngineResult, Noise


def run(spec, x: Tensor, state: tuple[Tensor, ...], p: dict[str, Tensor], *,
        mask: Tensor | None = None, reverse: bool = False, noise: Noise = Noise(),
        c_low: Tensor | None = None, want_cells: bool = False, record: bool = False) -> EngineResult:
    if record:
        raise ValueError("record: a trace() records eager runs only, not a compiled or exported graph")
    xs = {"u": spec.project(x, p)}
    consts = {}
    for name, v in (("keep_c", noise.keep_c), ("keep_h", noise.keep_h)):
        (xs if isinstance(v, Tensor) else consts)[name] = v
    if mask is not None:
        xs["m"] = mask
    if c_low is not None:
        xs["c_low"] = c_low
    cells = want_cells and len(state) == 2

    def step(carry, xt):
        new, _ = spec.step(xt["u"], carry, p, keep_c=xt.get("keep_c", consts.get("keep_c")),
                           keep_h=xt.get("keep_h", consts.get("keep_h")), drop=noise.drop,
                           c_low=xt.get("c_low"))
        if "m" in xt:                            # padding: the state passes through unchanged
            new = tuple(torch.where(xt["m"], n, s) for n, s in zip(new, carry))
        y = new[0] * xt["m"] if "m" in xt else new[0].clone()
        out = (y, new[1].clone()) if cells else (y,)
        return tuple(n.clone() for n in new), out

    final, out = scan(step, tuple(state), xs, reverse=reverse)
    return EngineResult(out[0], final, out[1] if cells else None, None)
