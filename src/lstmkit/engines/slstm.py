"""The sLSTM (``cells.xlstm.SLSTMSpec``) over a sequence: the reference engine, autograd through
the plain step loop (the oracle the fused engine, ``fused/slstm.py``, is tested against).

u = x W_ihᵀ + b is one GEMM over the sequence; each step adds the block-diagonal R h and runs
``spec.step``. Padded steps (mask False) keep the whole state (h, c, n, m) and output 0.

``traced``: the same step as the body of torch's ``scan`` operator, for graph capture
(``torch.export``, the ONNX exporter, ``torch.compile``): one graph node, T symbolic; carries
and outputs are fresh tensors (``clone``), as inductor requires (pytorch/pytorch#195977).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch._higher_order_ops.scan import scan

from ..cells.xlstm import SLSTMSpec, SLSTMState


@dataclass
class SLSTMResult:
    """output: (T, B, H), zero on padded steps.  state: the final SLSTMState (B, H) each.
    record: trace letter -> (T, B, H) detached, or None."""

    output: Tensor
    state: SLSTMState
    record: dict[str, Tensor] | None = None


def record_of(gates: list[dict[str, Tensor]], states: list[SLSTMState], mask: Tensor | None) -> dict[str, Tensor]:
    """The trace: i', f' (stabilised), g, o, then c, n, m and h per step, zero on padding."""
    rec = {k: torch.stack([g[k] for g in gates]).detach() for k in "ifgo"}
    rec.update({k: torch.stack([getattr(s, k) for s in states]).detach() for k in "cnmh"})
    if mask is not None:
        rec = {k: v * mask for k, v in rec.items()}
    return rec


def run(spec: SLSTMSpec, x: Tensor, state: SLSTMState, p: dict[str, Tensor], *, mask: Tensor | None = None,
        record: bool = False) -> SLSTMResult:
    """One sLSTM layer over x (T, B, D) from ``state`` (each (B, H)); mask (T, B, 1) or None."""
    u = spec.project(x, p)                                                   # (T, B, 4H)
    hs, gates, states = [], [], []
    for t in range(u.shape[0]):
        new, g = spec.step(u[t] + spec.recurrent(state.h, p["w_hh"]), state)
        if mask is not None:
            new = SLSTMState(*(torch.where(mask[t], a, b) for a, b in zip(new, state)))
        state = new
        hs.append(state.h)
        if record:
            gates.append(g)
            states.append(state)
    y = torch.stack(hs)
    if mask is not None:
        y = y * mask
    return SLSTMResult(y, state, record_of(gates, states, mask) if record else None)


def traced(spec: SLSTMSpec, x: Tensor, state: SLSTMState, p: dict[str, Tensor], *, mask: Tensor | None = None,
           record: bool = False) -> SLSTMResult:
    """``run`` with the step loop as torch's scan operator (a captured graph keeps T symbolic)."""
    if record:
        raise ValueError("record: a trace() records eager runs only, not a compiled or exported graph")
    xs = {"u": spec.project(x, p)} if mask is None else {"u": spec.project(x, p), "m": mask}

    def step(carry, xt):
        old = SLSTMState(*carry)
        new, _ = spec.step(xt["u"] + spec.recurrent(old.h, p["w_hh"]), old)
        if "m" in xt:                                   # padding: the state passes through
            new = SLSTMState(*(torch.where(xt["m"], a, b) for a, b in zip(new, old)))
            return tuple(t.clone() for t in new), new.h * xt["m"]
        return tuple(t.clone() for t in new), new.h.clone()

    final, y = scan(step, tuple(state), xs)
    return SLSTMResult(y, SLSTMState(*final))
