"""The parallel-in-time members: MinLSTM and MinGRU (Feng et al. 2024, arXiv 2410.01201).

Their gates read x only, so a whole layer is one GEMM and one scan over time
(``engines.scan``); mode="sequential" runs the same parameters step by step (the oracle),
mode="fused" the recurrence alone in a loop with a hand-written backward (the CPU's default).
Stacking, inter-layer dropout, batch_first, unbatched input, ``lengths`` and the initial state
behave as for ``lstmkit.LSTM``/``GRU``; forward(x, h0=None) -> (output, h_n).

Parameters, per layer k: weight_ih_l{k} (G·H, D_k) with the gate rows of ``cells.minrnn``
(minGRU z, g; minLSTM i, f, g) and bias_ih_l{k} (G·H,).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from . import _checks as check
from .cells.minrnn import MinGRUSpec, MinLSTMSpec
from .engines import scan
from .specs import layer_params, register_layers

_LOW_PRECISION = (torch.float16, torch.bfloat16)


class _MinRNN(nn.Module):
    spec_class = MinGRUSpec

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, device=None, dtype=None, *, mode="auto", chunk_size=scan.CHUNK_SIZE):
        super().__init__()
        self.input_size = check.positive_int("input_size", input_size)
        self.hidden_size = check.positive_int("hidden_size", hidden_size)
        self.num_layers = check.positive_int("num_layers", num_layers)
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.dropout = check.rate("dropout", dropout)
        self.mode = check.choice("mode", mode, scan.MODES)
        self.chunk_size = scan._check_chunk(chunk_size)
        self.specs = [self.spec_class(hidden_size, self.bias)] * num_layers
        self._trace_sink = None
        register_layers(self, self.specs, input_size, hidden_size, device, dtype)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """U(−1/√H, 1/√H), as torch's recurrent modules."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for t in self.parameters():
            nn.init.uniform_(t, -bound, bound)

    def layer_params(self, layer: int) -> dict[str, Tensor]:
        """Short symbol -> parameter of one layer (the engine's view)."""
        return layer_params(self, layer)

    def flatten_parameters(self) -> None:
        """No-op, as a drop-in for code written against torch.nn.LSTM/GRU (no cuDNN weight blob here)."""

    def extra_repr(self) -> str:
        return (f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, "
                f"bias={self.bias}, batch_first={self.batch_first}, dropout={self.dropout}, mode={self.mode!r}")

    def forward(self, input: Tensor, h0: Tensor | None = None, *, lengths=None):
        """input (T, B, D), (B, T, D) with batch_first, or (T, D) unbatched; h0 (L, B, H) or (L, H).
        ``lengths``: B ints in [1, T]; each sequence's state is frozen past its length and its
        padded outputs are zero. -> output (T, B, H) (batch_first: (B, T, H)), h_n (L, B, H)."""
        x, unbatched = check.sequence(input, self.batch_first)
        T, B = x.shape[:2]
        check.features(x, self.input_size, input)
        ref = self.weight_ih_l0
        check.like_params("input", x, ref)
        if h0 is None:
            h0 = x.new_zeros(self.num_layers, B, self.hidden_size)
        else:
            check.tensor("h0", h0)
            want = (self.num_layers, self.hidden_size) if unbatched else (self.num_layers, B, self.hidden_size)
            check.shape("h0", h0, want, "(num_layers, " + ("" if unbatched else "B, ") + "hidden_size)")
            check.like_params("h0", h0, ref)
            h0 = h0.unsqueeze(1) if unbatched else h0
        mask = None if lengths is None else check.lengths_mask(lengths, B, T, x.device)
        low = ref.dtype in _LOW_PRECISION                  # compute in float32, as lstmkit.LSTM
        y, h_n = self._layers(x.float() if low else x, h0.float() if low else h0, mask, low)
        if low:
            y, h_n = y.to(ref.dtype), h_n.to(ref.dtype)
        if unbatched:
            return y.squeeze(1), h_n.squeeze(1)
        return (y.transpose(0, 1) if self.batch_first else y), h_n

    def _layers(self, x: Tensor, h0: Tensor, mask, low: bool) -> tuple[Tensor, Tensor]:
        # auto: the scan on accelerators; on the CPU the fused loop, measured fastest there
        # (docs/parallel.md: 0.3-0.6x the scan's time, 0.6-0.99x the step loop's, T 1k-4k)
        mode = self.mode if self.mode != "auto" else ("parallel" if x.device.type != "cpu" else "fused")
        if torch.compiler.is_exporting():                  # a graph with a symbolic T (engines.scan)
            mode = "traced"
        finals = []
        for k, spec in enumerate(self.specs):
            p = self.layer_params(k)
            if low:
                p = {s: t.float() for s, t in p.items()}
            r = scan.run(spec, x, h0[k], p, mask=mask, mode=mode, chunk_size=self.chunk_size,
                         record=self._trace_sink is not None)
            if r.record is not None:
                self._trace_sink(k, 0, r.record)
            finals.append(r.state)
            x = r.output
            if self.dropout and self.training and k < self.num_layers - 1:
                x = nn.functional.dropout(x, self.dropout, True)
        return x, torch.stack(finals)


class MinGRU(_MinRNN):
    """minGRU (Feng et al. 2024): z = σ(W_z x + b_z), h̃ = g(W_h x + b_h),
    h' = (1 − z) ⊙ h + z ⊙ h̃. mode: "parallel" (log-space scan), "sequential" (step loop: the
    oracle), "fused" (a, b vectorised, then the recurrence alone in a loop with a hand-written
    backward), "auto" (fused on the CPU, parallel elsewhere). chunk_size: steps per scan chunk
    (bounds memory and float32 error)."""

    spec_class = MinGRUSpec


class MinLSTM(_MinRNN):
    """minLSTM (Feng et al. 2024): f, i = σ(·), h̃ = g(·), h' = f/(f+i) ⊙ h + i/(f+i) ⊙ h̃.
    Arguments as ``MinGRU``; weight rows i, f, g."""

    spec_class = MinLSTMSpec


__all__ = ["MinGRU", "MinLSTM"]
