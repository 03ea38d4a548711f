"""The parallel-in-time members: MinLSTM and MinGRU (Feng et al. 2024, arXiv 2410.01201) and
QRNN (Bradbury et al. 2016, arXiv 1611.01576).

Their gates read x only, so a whole layer is one GEMM and one scan over time
(``engines.scan``); mode="sequential" runs the same parameters step by step (the oracle),
mode="fused" the recurrence alone in a loop with a hand-written backward (the CPU's default).
Stacking, inter-layer dropout, batch_first, unbatched input, ``lengths`` and the initial state
behave as for ``lstmkit.LSTM``/``GRU``; forward(x, h0=None) -> (output, h_n).

Parameters, per layer k: weight_ih_l{k} (G·H, D_k) with the gate rows of ``cells.minrnn``
(minGRU z, g; minLSTM i, f, g) and bias_ih_l{k} (G·H,); QRNN: weight_ih_l{k} (G·H, D_k, window)
(a Conv1d's layout), rows z, f, o. The QRNN's state is ``QRNNState(c, x)``: the convolution
reads the window − 1 inputs before a step, so stepping carries them beside c.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from . import _checks as check
from .cells.minrnn import MinGRUSpec, MinLSTMSpec
from .cells.qrnn import QRNNSpec
from .engines import scan
from .specs import StackedLayers, register_layers

_LOW_PRECISION = (torch.float16, torch.bfloat16)


class _MinRNN(StackedLayers):
    spec_class = MinGRUSpec

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, device=None, dtype=None, *, mode="auto", chunk_size=scan.CHUNK_SIZE):
        super().__init__()
        self._setup(input_size, hidden_size, num_layers, bias, batch_first, dropout, device, dtype,
                    mode, chunk_size, self.spec_class)

    def _setup(self, input_size, hidden_size, num_layers, bias, batch_first, dropout, device, dtype,
               mode, chunk_size, make_spec) -> None:
        """Validate the options, build the specs (``make_spec(H, bias)``) and the parameters."""
        self._set_options(input_size, hidden_size, num_layers, bias, batch_first, dropout)
        self.mode = check.choice("mode", mode, scan.MODES)
        self.chunk_size = scan._check_chunk(chunk_size)
        self.specs = [make_spec(hidden_size, self.bias)] * num_layers
        self._trace_sink = None
        register_layers(self, self.specs, input_size, hidden_size, device, dtype)
        self.reset_parameters()

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

    def _engine_mode(self, x: Tensor) -> str:
        if torch.compiler.is_exporting():                  # a graph with a symbolic T (engines.scan)
            return "traced"
        # auto: the scan on accelerators; on the CPU the fused loop, measured fastest there
        # (docs/parallel.md: 0.3-0.6x the scan's time, 0.6-0.99x the step loop's, T 1k-4k)
        return self.mode if self.mode != "auto" else ("parallel" if x.device.type != "cpu" else "fused")

    def _layers(self, x: Tensor, h0: Tensor, mask, low: bool) -> tuple[Tensor, Tensor]:
        mode = self._engine_mode(x)
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


class QRNNState(NamedTuple):
    """c: (L, B, H), the pooled state of every layer.  x: (window − 1, B, D + (L − 1)·H), the
    last window − 1 inputs of every layer side by side (layer 0's D features, then H for each
    layer above): what the causal convolution reads before the next call's first step.
    Unbatched: (L, H) and (window − 1, D + (L − 1)·H)."""

    c: Tensor
    x: Tensor


class QRNN(_MinRNN):
    """QRNN with fo-pooling (Bradbury et al. 2016, arXiv 1611.01576): z, f, o from a causal
    convolution of width ``window`` over the inputs, c' = f ⊙ c + (1 − f) ⊙ z, h' = o ⊙ c'
    (``cells.qrnn``). forward(x, state=None, *, lengths=None) -> (output, QRNNState(c, x));
    modes as ``MinGRU`` (the parallel scan splits b = (1 − f) ⊙ z by sign)."""

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, device=None, dtype=None, *, window=2, mode="auto", chunk_size=scan.CHUNK_SIZE):
        nn.Module.__init__(self)
        self.window = check.positive_int("window", window)
        self._setup(input_size, hidden_size, num_layers, bias, batch_first, dropout, device, dtype,
                    mode, chunk_size, lambda H, bias: QRNNSpec(H, bias, self.window))

    def extra_repr(self) -> str:
        return super().extra_repr() + f", window={self.window}"

    def _widths(self) -> list[int]:
        return [self.input_size] + [self.hidden_size] * (self.num_layers - 1)

    def forward(self, input: Tensor, state: QRNNState | None = None, *, lengths=None):
        """input (T, B, D), (B, T, D) with batch_first, or (T, D) unbatched; state: QRNNState or None
        (zeros: c = 0 and zero inputs before the first step). ``lengths`` as ``MinGRU``; the
        carried inputs are each sequence's last window − 1 valid ones.
        -> output (T, B, H) (batch_first: (B, T, H)), QRNNState."""
        x, unbatched = check.sequence(input, self.batch_first)
        T, B = x.shape[:2]
        check.features(x, self.input_size, input)
        ref = self.weight_ih_l0
        check.like_params("input", x, ref)
        L, H, k, W = self.num_layers, self.hidden_size, self.window, sum(self._widths())
        if state is None:
            c0, xs = x.new_zeros(L, B, H), x.new_zeros(k - 1, B, W)
        else:
            if not isinstance(state, tuple) or len(state) != 2:
                raise TypeError(f"state: expected a QRNNState(c, x) or None, got {type(state).__name__}")
            c0, xs = check.tensor("state.c", state[0]), check.tensor("state.x", state[1])
            batch = () if unbatched else (B,)
            check.shape("state.c", c0, (L, *batch, H), "(num_layers, " + ("" if unbatched else "B, ") + "hidden_size)")
            check.shape("state.x", xs, (k - 1, *batch, W),
                        "(window - 1, " + ("" if unbatched else "B, ") + "input_size + (num_layers - 1) * hidden_size)")
            check.like_params("state.c", c0, ref)
            check.like_params("state.x", xs, ref)
            c0, xs = (c0.unsqueeze(1), xs.unsqueeze(1)) if unbatched else (c0, xs)
        mask = None if lengths is None else check.lengths_mask(lengths, B, T, x.device)
        low = ref.dtype in _LOW_PRECISION
        f = (lambda t: t.float()) if low else (lambda t: t)
        y, c_n, x_n = self._qrnn_layers(f(x), f(c0), f(xs), mask, low)
        if low:
            y, c_n, x_n = y.to(ref.dtype), c_n.to(ref.dtype), x_n.to(ref.dtype)
        if unbatched:
            return y.squeeze(1), QRNNState(c_n.squeeze(1), x_n.squeeze(1))
        return (y.transpose(0, 1) if self.batch_first else y), QRNNState(c_n, x_n)

    def _qrnn_layers(self, x: Tensor, c0: Tensor, xs: Tensor, mask, low: bool):
        mode, k, T = self._engine_mode(x), self.window, x.shape[0]
        # rows n .. n + k − 2 of [carried; x] are the last k − 1 inputs of a sequence of length n
        last = torch.arange(k - 1, device=x.device)[:, None] + (
            torch.full((x.shape[1],), T, device=x.device) if mask is None else mask[:, :, 0].sum(0))
        finals, carried, off = [], [], 0
        for layer, (spec, width) in enumerate(zip(self.specs, self._widths())):
            p = self.layer_params(layer)
            if low:
                p = {s: t.float() for s, t in p.items()}
            x_full = torch.cat([xs[..., off:off + width], x])              # (T + k − 1, B, D_k)
            off += width
            r = scan.run(spec, x_full, c0[layer], p, mask=mask, mode=mode, chunk_size=self.chunk_size,
                         record=self._trace_sink is not None)
            if r.record is not None:
                self._trace_sink(layer, 0, r.record)
            finals.append(r.state)
            carried.append(x_full.gather(0, last[:, :, None].expand(-1, -1, width)))
            x = r.output
            if self.dropout and self.training and layer < self.num_layers - 1:
                x = nn.functional.dropout(x, self.dropout, True)
        return x, torch.stack(finals), torch.cat(carried, -1)


__all__ = ["MinGRU", "MinLSTM", "QRNN", "QRNNState"]
