"""The Elman RNN's time loops in PyTorch calls: the twin of rnn.cpp, and the device-generic path.

``forward`` and ``backward`` take the same arguments and return the same saved tensors and
gradients as ``rnn_forward`` and ``rnn_backward`` in rnn.cpp; the named tuples below are that
contract (the C++ ops take their arguments by these names). ``rnn.py`` runs these loops
wherever the C++ ones do not: tensors off the CPU (CUDA: this is their only path), no C++
compiler, or ``LSTMKIT_NO_EXT=1``. The tests run every case on both, and compare both to the
reference engine. Symbols as in cells/rnn.py and docs/derivations/rnn.md.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from .common import slots, tanh_, unsettle


class RNNInputs(NamedTuple):
    u: Tensor                   # (T, B, H) input terms x W_ihᵀ + b_ih + b_hh
    h0: Tensor                  # (B, H)
    w_hh: Tensor                # (H, H)
    mask: Tensor | None         # (T, B, 1) bool, False on padding


class RNNSaved(NamedTuple):
    """What the forward saves: the derivative of tanh / relu is read from h'."""

    Hs: Tensor                  # (T+1, B, H) states in time order, the initial one included
    An: Tensor | None           # (T, B, H) h' before padding (mask only)


class RNNLoopGrads(NamedTuple):
    dA: Tensor                  # (T, B, H) = du
    dh0: Tensor


def forward(relu: bool, reverse: bool, x: RNNInputs) -> RNNSaved:
    """h' = act(u + h W_hhᵀ) (b_hh folded into u), then padding h⁺ = where(mask, h', h)."""
    u, mask = x.u, x.mask
    T, B, H = u.shape
    order, prev, new, first = slots(T, reverse)
    Hs = u.new_empty(T + 1, B, H)
    Hs[first] = x.h0
    WT = x.w_hh.t()
    An = u.new_empty(T, B, H) if mask is not None else None
    for t in order:
        hp = Hs[prev(t)]
        hn = Hs[new(t)] if An is None else An[t]
        torch.addmm(u[t], hp, WT, out=hn)
        hn.relu_() if relu else tanh_(hn)
        if An is not None:
            torch.where(mask[t], hn, hp, out=Hs[new(t)])
    return RNNSaved(Hs, An)


def backward(relu: bool, reverse: bool, s: RNNSaved, x: RNNInputs, gY, ghT) -> RNNLoopGrads:
    """dhn = mf ⊙ dh;  da = dhn ⊙ (1 − h'²) (tanh) or dhn ⊙ [h' > 0] (relu);
    dh = da W_hh + (1 − mf) ⊙ dh. x needs only w_hh and mask."""
    Hs, An = s.Hs, s.An
    T1, B, H = Hs.shape
    T = T1 - 1
    order, _, new, _ = slots(T, reverse)
    mf = None if x.mask is None else x.mask.to(Hs.dtype)
    dA = Hs.new_empty(T, B, H)
    dh = ghT if ghT is not None else Hs.new_zeros(B, H)
    for t in reversed(order):
        if gY is not None:
            dh = dh + (gY[t] if mf is None else gY[t] * mf[t])
        dhn, dh_prev = unsettle(dh, None, None if mf is None else mf[t])
        hn = Hs[new(t)] if An is None else An[t]
        da = torch.mul(dhn, hn > 0, out=dA[t]) if relu else torch.mul(dhn, 1 - hn * hn, out=dA[t])
        dh = da @ x.w_hh
        if dh_prev is not None:
            dh = dh + dh_prev
    return RNNLoopGrads(dA, dh)
