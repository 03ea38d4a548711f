"""Symmetric per-row int8: W (N, K) ≈ diag(s) q, one float32 scale per output row.

    s_n = max_k |W_nk| / 127        q_nk = round(W_nk / s_n) ∈ [−127, 127]

(s_n = 1 for an all-zero row; −128 is never used, so −q is representable and the grid is
symmetric.) The error of any weight is at most s_n / 2. Quantizing a dequantized weight
again gives the same q and s (up to one rounding of s), which lets the ONNX export
re-derive them from the float values.
"""
from __future__ import annotations

import torch
from torch import Tensor

QMAX = 127


def quantize_rows(w: Tensor) -> tuple[Tensor, Tensor]:
    """W (N, K) float -> (q (N, K) int8, s (N,) float32), W ≈ s[:, None] · q."""
    if w.dim() != 2:
        raise ValueError(f"w: expected a 2-D weight (N, K), got shape {tuple(w.shape)}")
    w = w.detach().to(torch.float32)
    peak = w.abs().amax(dim=1)
    s = torch.where(peak > 0, peak / QMAX, torch.ones_like(peak))
    q = torch.round(w / s[:, None]).clamp_(-QMAX, QMAX).to(torch.int8)
    return q.contiguous(), s.contiguous()


def dequantize_rows(q: Tensor, s: Tensor) -> Tensor:
    """diag(s) q as float32: the reference twin's weight."""
    return q.to(torch.float32) * s[:, None]
