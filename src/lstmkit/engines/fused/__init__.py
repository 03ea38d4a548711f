"""The fused engine: hand-written BPTT with big GEMMs, one module per family.

Same ``run`` signature and results as ``engines.reference`` (the oracle it is tested
against). Per layer-direction:

    forward   u = x W_ihᵀ + b_ih (+ b_hh)     one GEMM for all T steps (autograd, outside the loop)
              per step: one recurrent GEMM into the gate buffer + in-place pointwise update
    backward  per step (time reversed): pointwise gate derivatives, one GEMM dh̃ = dy W_hh
              at the end: dW_hh = dYᵀ H̃ (large GEMMs, common.outer_sum); dW_ih, dx, db from autograd on du

Each family is an autograd Function (``lstm.py``, ``gru.py``, ``rnn.py``) whose time loops run
in C++ (``lstm.cpp``, ``gru.cpp``, ``rnn.cpp``, built by ``build.py``) on the CPU, or in their
PyTorch twins (``lstm_torch.py``, ``gru_torch.py``, ``rnn_torch.py``): the same loops in torch
calls, the path for CUDA tensors, for a machine without a C++ compiler and for
``LSTMKIT_NO_EXT=1``, and the oracle-twin the C++ loops are tested against. ``common.py``
holds what the families share.

What the forward saves for the backward (T steps, B batch, H hidden, R out size, G gates;
each family file says more):

    LSTM  A (T, B, G·H) the activated gates; Hs (T+1, B, R), Cs (T+1, B, H) the states;
          with zoneout c' before it, with a projection m = o ⊙ tanh(c'), with layer norm the
          raw recurrent terms and their statistics, with a depth gate d and c_low.
          tanh(c') is recomputed in the backward.                 docs/derivations/lstm.md
    GRU   A (T, B, 3H) r, z, n; Hs (T+1, B, H); v_n (reset_after) or q = r ⊙ h̃
          (reset_before); with layer norm the raw recurrent terms and their statistics.
                                                                  docs/derivations/gru.md
    RNN   Hs (T+1, B, H) only: the derivative of tanh/relu is read from h'.
                                                                  docs/derivations/rnn.md

The output, the final state and the cell sequence are views of the saved state buffers,
so nothing is copied twice. ``infer.run`` is ``run`` for a call that no backward
follows: the same C++ loops without the autograd Function, for streaming's per-call cost.
"""
from __future__ import annotations

from torch import Tensor

from ..base import EngineResult, Noise
from .gru import run_gru
from . import infer
from .lstm import run_lstm
from .rnn import run_rnn

_RUN = {"lstm": run_lstm, "gru": run_gru, "rnn": run_rnn}


def supports(spec) -> bool:
    """Every variant of the three families runs fused."""
    return getattr(spec, "family", None) in _RUN


def run(spec, x: Tensor, state: tuple[Tensor, ...], p: dict[str, Tensor], *,
        mask: Tensor | None = None, reverse: bool = False, noise: Noise = Noise(),
        c_low: Tensor | None = None, want_cells: bool = False, record: bool = False) -> EngineResult:
    return _RUN[spec.family](spec, x, state, p, mask=mask, reverse=reverse, noise=noise, c_low=c_low,
                             want_cells=want_cells, record=record)
