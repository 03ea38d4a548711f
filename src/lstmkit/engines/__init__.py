"""Engines run one layer-direction over a whole sequence; all share one signature.

    run(spec, x, state, p, *, mask, reverse, noise, c_low, want_cells, record) -> EngineResult

x: (T, B, D); state: (h0,) or (h0, c0); p: short symbol -> tensor (``cells.PARAM_NAMES``);
mask: (T, B, 1) bool, False on padding (state frozen there, output zero);
noise: zoneout keeps and the recurrent-dropout mask, drawn by the layer so that every
engine sees the same randomness; c_low: (T, B, H) the lower layer's cells (depth gate).

    reference   a plain autograd loop over the cell step: the oracle
    fused       hand-written BPTT (C++ time loops on the CPU, their PyTorch twins elsewhere)
"""
from __future__ import annotations

from . import fused, reference
from .base import EngineResult, Noise

__all__ = ["BACKENDS", "EngineResult", "Noise", "fused", "get_engine", "reference"]

BACKENDS = ("auto", "reference", "fused")


def get_engine(backend: str, spec):
    """The engine module for ``backend``; "auto" picks the fastest one that applies."""
    if backend == "reference":
        return reference
    if backend == "fused" and not fused.supports(spec):
        raise ValueError(f"backend: 'fused' does not support {spec!r}; use 'reference' or 'auto'")
    return fused if fused.supports(spec) else reference
