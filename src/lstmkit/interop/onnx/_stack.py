"""A stack of recurrent layers as an ONNX graph fragment: each layer becomes the fixed
operator when one expresses it exactly, a ``Scan`` per direction otherwise.

Shapes: x (T, B, D); h0 / c0 (L·dirs, B, ·) as torch; lengths (B,) int64.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from onnx import TensorProto, helper

from . import _operators, _scan
from ._graph import Graph


@dataclass(frozen=True)
class Stack:
    """What the exporter needs of a recurrent module: one spec per layer, the parameters of
    each layer-direction as float32 arrays (short symbols), and the eval-time zoneout rate."""

    specs: tuple
    params: tuple                 # params[k][d]: short symbol -> np.ndarray
    zoneout: float

    @property
    def dirs(self) -> int:
        return len(self.params[0])

    @property
    def n_states(self) -> int:
        return len(self.specs[0].state_sizes)


def emit(g: Graph, stack: Stack, x: str, h0: str | None, c0: str | None, lengths: str | None,
         force_scan: bool = False):
    """-> (y (T, B, dirs·R), finals (h_n[, c_n]) each (L·dirs, B, ·), kinds per layer)."""
    dirs, n_states = stack.dirs, stack.n_states
    inits = [h0, c0][:n_states]
    given = h0 is not None
    lengths32 = None if lengths is None else g.op("Cast", [lengths], to=TensorProto.INT32)
    lazy = {}

    def mask() -> str | None:                # (T, B, 1) bool: t < length
        if lengths is None:
            return None
        if "mask" not in lazy:
            T = g.op("Squeeze", [g.op("Shape", [x], start=0, end=1)])
            steps = g.op("Range", [g.const(0, np.int64), T, g.const(1, np.int64)])
            less = g.op("Less", [g.unsqueeze(steps, 1), g.unsqueeze(lengths, 0)])
            lazy["mask"] = g.unsqueeze(less, 2)
        return lazy["mask"]

    def zeros(size: int) -> str:             # (B, size) initial state
        if size not in lazy:
            B = g.op("Shape", [x], start=1, end=2)
            shape = g.op("Concat", [B, g.const([size], np.int64)], axis=0)
            lazy[size] = g.op("ConstantOfShape", [shape],
                              value=helper.make_tensor("zero", TensorProto.FLOAT, [1], [0.0]))
        return lazy[size]

    depth = getattr(stack.specs[-1], "depth_gate", False)
    finals, kinds, below = [], [], None
    for k, spec in enumerate(stack.specs):
        want_cells = depth and k < len(stack.specs) - 1
        if not force_scan and _operators.supports(spec, stack.zoneout, want_cells):
            state0 = None
            if given:
                start, end = g.const([k * dirs], np.int64), g.const([(k + 1) * dirs], np.int64)
                state0 = tuple(g.op("Slice", [s, start, end]) for s in inits)
            x, fin = _operators.emit(g, spec, list(stack.params[k]), x, state0, lengths32)
            finals.append(fin)
            kinds.append(spec.family.upper())
            below = None
            continue
        outs, fins, cells = [], [], []
        for d in range(dirs):
            state0 = tuple(g.op("Gather", [s, g.const(k * dirs + d, np.int64)], axis=0) if given else zeros(n)
                           for s, n in zip(inits, spec.state_sizes))
            y, fin, cell = _scan.emit(g, spec, stack.params[k][d], x, state0, reverse=bool(d),
                                      zoneout=stack.zoneout, mask=mask(),
                                      c_low=None if below is None else below[d], want_cells=want_cells)
            outs.append(y)
            fins.append(fin)
            cells.append(cell)
        x = g.concat(outs, -1)
        finals.append(tuple(g.concat([g.unsqueeze(f[j], 0) for f in fins], 0) for j in range(n_states)))
        kinds.append("Scan")
        below = cells if want_cells else None
    out = tuple(g.concat([f[j] for f in finals], 0) for j in range(n_states))
    return x, out, tuple(kinds)
