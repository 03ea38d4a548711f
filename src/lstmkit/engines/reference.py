"""The reference engine: a plain autograd loop over ``spec.step``. Written to be read;
it is the oracle every fast engine is tested against. Autograd saves what it needs."""
from __future__ import annotations

import torch
from torch import Tensor

from .base import EngineResult, Noise


def _at(v, t: int):
    return v[t] if isinstance(v, Tensor) else v


def run(spec, x: Tensor, state: tuple[Tensor, ...], p: dict[str, Tensor], *,
        mask: Tensor | None = None, reverse: bool = False, noise: Noise = Noise(),
        c_low: Tensor | None = None, want_cells: bool = False, record: bool = False) -> EngineResult:
    u = spec.project(x, p)                       # one input GEMM for all T steps
    T = x.shape[0]
    ys, cells, recs = [None] * T, [None] * T, [None] * T
    keep_cells = len(state) == 2 and (want_cells or record)
    for t in (reversed(range(T)) if reverse else range(T)):
        new, gates = spec.step(tuple(v[t] for v in u), state, p,
                               keep_c=_at(noise.keep_c, t), keep_h=_at(noise.keep_h, t),
                               drop=noise.drop, c_low=None if c_low is None else c_low[t])
        if mask is not None:                     # padding: the state passes through unchanged
            new = tuple(torch.where(mask[t], n, s) for n, s in zip(new, state))
        state = new
        ys[t] = state[0] if mask is None else state[0] * mask[t]
        if keep_cells:
            cells[t] = state[1]
        if record:
            recs[t] = {k: v.detach() if isinstance(v, Tensor) else v for k, v in gates.items()}
    return EngineResult(torch.stack(ys), state, torch.stack(cells) if want_cells else None,
                        _stack_record(recs, spec, ys, cells, mask) if record else None)


def _stack_record(recs, spec, ys, cells, mask) -> dict[str, Tensor]:
    """Per-step gate dicts -> {letter: (T, B, H)}; derived or ablated gates at their value."""
    like = ys[0]
    H = spec.hidden_size
    out = {}
    for k in recs[0]:
        out[k] = torch.stack([r[k] if isinstance(r[k], Tensor)
                              else like.new_full((like.shape[0], H), float(r[k])) for r in recs])
    if cells[0] is not None:
        out["c"] = torch.stack(cells).detach()
    out["h"] = torch.stack(ys).detach()
    if mask is not None:
        out = {k: v * mask for k, v in out.items()}
    return out
