"""Pieces every cell family shares: per-gate layer norm, zoneout, the input projection.

Shape vocabulary: B batch, T time, D input, H hidden, R recurrent width (H, or P with a
projection), G number of gates.
"""
from __future__ import annotations

import torch
from torch import Tensor

LN_EPS = 1e-5


def layer_norm_gates(y: Tensor, n_gates: int, gamma: Tensor, eps: float = LN_EPS) -> Tensor:
    """LN applied to each gate's block of H on its own (Ba et al. 2016, arXiv 1607.06450).

    y: (..., G*H) -> (..., G*H);  ŷ_k = γ_k ⊙ (y_k − mean(y_k)) / sqrt(var(y_k) + eps).
    One LN per gate keeps the statistics of a saturated gate from swamping the others,
    and it is defined the same way for every family and every gate subset.
    """
    shape = y.shape
    y = y.reshape(*shape[:-1], n_gates, shape[-1] // n_gates)
    y = torch.nn.functional.layer_norm(y, y.shape[-1:], eps=eps)
    return y.reshape(shape) * gamma


def project(x: Tensor, w: Tensor, b: Tensor | None, gamma: Tensor | None, n_gates: int) -> Tensor:
    """u = LN(x Wᵀ)·γ + b, or x Wᵀ + b without layer norm.

    Used for the whole sequence at once (x: (T, B, D), one GEMM) and for h each step.
    """
    y = x @ w.t()
    if gamma is not None:
        y = layer_norm_gates(y, n_gates, gamma)
    if b is not None:
        y = y + b
    return y


def zoneout(prev: Tensor, new: Tensor, keep: Tensor | float | None) -> Tensor:
    """Zoneout (Krueger et al. 2016, arXiv 1606.01305): s' = keep ⊙ s + (1 − keep) ⊙ s̃.

    keep is a {0, 1} mask of units that keep their previous value (training), the
    rate p itself (evaluation: the expectation), or None (no zoneout).
    """
    if keep is None:
        return new
    return keep * prev + (1 - keep) * new
