"""The values every engine takes and returns, in a leaf module so that ``reference`` and
``fused`` import them without importing ``engines`` (the package) back."""
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
