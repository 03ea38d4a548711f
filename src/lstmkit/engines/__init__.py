"""Engines run one layer-direction over a whole sequence; all share one signature.

    run(spec, x, state, p, *, mask, reverse, noise, c_low, want_cells, record) -> EngineResult

x: (T, B, D); state: (h0,) or (h0, c0); p: short symbol -> tensor (``cells.PARAM_NAMES``);
mask: (T, B, 1) bool, False on padding (state frozen there, output zero);
noise: zoneout keeps and the recurrent-dropout mask, drawn by the layer so that every
engine sees the same randomness; c_low: (T, B, H) the lower layer's cells (depth gate).
"""
from __future__ import annotations

from typing import NamedTuple

from torch import Tensor


class Noise(NamedTuple):
    """keep_c / keep_h: (T, B, ·) {0,1} masks (training), the rate p (evaluation) or None.
    drop: (B, R) recurrent-dropout mask already scaled by 1/(1 − p), or None."""

    keep_c: Tensor | float | None = None
    keep_h: Tensor | float | None = None
    drop: Tensor | None = None


class EngineResult(NamedTuple):
    output: Tensor                     # (T, B, R), zero on padding
    state: tuple[Tensor, ...]          # final (h,) or (h, c)
    cells: Tensor | None               # (T, B, H) cell states, when asked for
    record: dict[str, Tensor] | None   # gate letter / "c" / "h" -> (T, B, ·), when asked for


BACKENDS = ("auto", "reference", "fused")


def get_engine(backend: str, spec):
    """The engine module for ``backend``; "auto" picks the fastest one that applies."""
    from . import reference
    if backend == "reference":
        return reference
    try:
        from . import fused
    except ImportError:
        fused = None
    if backend == "fused":
        if fused is None or not fused.supports(spec):
            raise ValueError(f"backend: 'fused' does not support {spec!r}; use 'reference' or 'auto'")
        return fused
    return fused if fused is not None and fused.supports(spec) else reference
