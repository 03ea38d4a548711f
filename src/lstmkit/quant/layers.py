"""int8 recurrent layers: the float module's front with int8 weight matrices.

``QuantizedLSTM`` (and the GRU, RNN, DepthGatedLSTM ones) is its float class with every weight
matrix (W_ih, W_hh, and W_hr, W_xd where present) held as an int8 buffer ``<name>_int8`` and a
float32 scale per row ``<name>_scale`` (``weights.py``); biases, peepholes and layer-norm gains
stay float32 parameters, and the gates and cell state are computed in float32. ``<name>`` reads
as the dequantized float32 weight, so everything built on ``layer_params`` (the float engines,
``trace``, ``export_onnx``) sees diag(s) q.

Two kernels, one result:

- ``kernel = "int8"`` (default): where the C++ loops cover the call, one op per layer-direction
  (``engines/fused/int8.cpp``): both GEMMs read the int8 weights, gates and state in float32.
  Covered: the LSTM vanilla, with peepholes, CIFG and projection; the GRU both ways; the Elman
  RNN; in evaluation mode, without ``lengths``/packing, trace or autograd, float32 on the CPU.
- ``kernel = "dequantize"``, and every call the C++ loops do not cover (layer norm, ablations,
  depth gate, zoneout, lengths, ...): the float module's own forward on diag(s) q. This is the
  reference twin the tests hold the int8 loops to.
"""
from __future__ import annotations

import copy

import torch
from torch import Tensor

from .. import _checks as check
from ..engines.fused import build
from ..layers import GRU, LSTM, RNN, DepthGatedLSTM, _RNNBase
from .weights import dequantize_rows, quantize_rows

MATRICES = ("w_ih", "w_hh", "w_hr", "w_xd")          # the short symbols stored in int8
KERNELS = ("int8", "dequantize")


def int8_ops():
    """torch.ops.lstmkit_int8, or None where the C++ loops cannot be built."""
    return build.load("lstmkit_int8", "the int8 layers'")


class _Int8Layers:
    """Mixin over ``_RNNBase``: int8 storage, dequantized reads, the C++ int8 forward."""

    kernel = "int8"

    def _to_int8(self) -> None:
        """Turn this (float) module's weight matrices into int8 buffers, in place."""
        self._qnames = set()
        for names in self._names.values():
            for short, name in names.items():
                p = self._parameters.pop(name)
                if short in MATRICES:
                    q, s = quantize_rows(p)
                    self.register_buffer(f"{name}_int8", q)
                    self.register_buffer(f"{name}_scale", s)
                    self._qnames.add(name)
                else:
                    self.register_parameter(name, torch.nn.Parameter(p.detach().float(), requires_grad=False))

    def _param(self, name: str) -> Tensor:
        if name in self._qnames:
            b = self._buffers
            return dequantize_rows(b[f"{name}_int8"], b[f"{name}_scale"])
        return super()._param(name)

    def __getattr__(self, name: str):
        if name in self.__dict__.get("_qnames", ()):
            return self._param(name)
        return super().__getattr__(name)

    # ---- the int8 forward ----------------------------------------------------------------
    def _covered(self) -> bool:
        """Whether the C++ int8 loops compute every layer of this module."""
        if self.zoneout or self._trace_sink is not None:
            return False
        for s in self.specs:
            if s.family == "lstm" and (s.layer_norm or s.ablate or s.depth_gate):
                return False
            if s.family == "gru" and s.layer_norm:
                return False
        return True

    def forward(self, input, hx=None, *, lengths=None, enforce_sorted: bool = False):
        """The float module's forward; the C++ int8 loops where they cover the call (see the
        module docstring), with the same checks, shapes and results."""
        if (self.kernel == "int8" and lengths is None and type(input) is Tensor and not self.training
                and input.dtype is torch.float32 and input.device.type == "cpu"
                and not (input.requires_grad and torch.is_grad_enabled())
                and not torch._C._is_any_autocast_enabled() and self._covered()
                and not torch.compiler.is_compiling() and not torch.compiler.is_exporting()):
            ops = int8_ops()
            if ops is not None:
                return self._forward_int8(ops, input, hx)
        return super().forward(input, hx, lengths=lengths, enforce_sorted=enforce_sorted)

    def _forward_int8(self, ops, input: Tensor, hx):
        x, unbatched = check.sequence(input, self.batch_first)
        check.features(x, self.input_size, x)
        B = x.shape[1]
        state0 = self._initial_state(hx, B, unbatched, x, False)
        x = x.contiguous()
        dirs = self.num_directions
        if len(self.specs) == 1 and dirs == 1:         # the streaming case: states in and out as they are
            y, *h_n = _LOOPS[self.specs[0].family](ops, self.specs[0], x, state0, self._int8_args(0, 0), False)
            return self._format(y, h_n, unbatched, None)
        finals = []
        for k, spec in enumerate(self.specs):
            outs = []
            for d in range(dirs):
                idx = k * dirs + d
                state = [s[idx] for s in state0]
                y, *fin = _LOOPS[spec.family](ops, spec, x, state, self._int8_args(k, d), bool(d))
                outs.append(y)
                finals.append(fin)
            x = outs[0] if dirs == 1 else torch.cat(outs, -1)
        h_n = [torch.stack([f[j] for f in finals]) for j in range(len(finals[0]))]
        return self._format(x, h_n, unbatched, None)

    def _int8_args(self, k: int, d: int) -> dict:
        """short -> tensor for one layer-direction: (q, s) pairs for the matrices, else the float."""
        b, p = self._buffers, self._parameters
        out = {}
        for short, name in self._names[k, d].items():
            out[short] = (b[f"{name}_int8"], b[f"{name}_scale"]) if name in self._qnames else p[name]
        return out


# One op call per layer-direction, arguments by position and through the overload (``.default``):
# at B 1, H 128 the dispatcher's matching of keyword names would cost a tenth of the step
# (engines/fused/infer.py measured the same for the float loops).
def _lstm(ops, spec, x, state, a, reverse):
    q_hr, s_hr = a.get("w_hr", (None, None))
    g = a.get
    return ops.lstm_int8.default(x, state[0], state[1], *a["w_ih"], *a["w_hh"], g("b_ih"), g("b_hh"), g("w_ci"),
                         g("w_cf"), g("w_co"), q_hr, s_hr, spec.coupled, reverse)


def _gru(ops, spec, x, state, a, reverse):
    return ops.gru_int8.default(x, state[0], *a["w_ih"], *a["w_hh"], a.get("b_ih"), a.get("b_hh"),
                        spec.reset_after, reverse)


def _rnn(ops, spec, x, state, a, reverse):
    return ops.rnn_int8.default(x, state[0], *a["w_ih"], *a["w_hh"], a.get("b_ih"), a.get("b_hh"),
                        spec.nonlinearity == "relu", reverse)


_LOOPS = {"lstm": _lstm, "gru": _gru, "rnn": _rnn}


class QuantizedLSTM(_Int8Layers, LSTM):
    """``lstmkit.LSTM`` with int8 weight matrices (``lstmkit.quantize``)."""


class QuantizedDepthGatedLSTM(_Int8Layers, DepthGatedLSTM):
    """``lstmkit.DepthGatedLSTM`` with int8 weight matrices (always the dequantize kernel)."""


class QuantizedGRU(_Int8Layers, GRU):
    """``lstmkit.GRU`` with int8 weight matrices."""


class QuantizedRNN(_Int8Layers, RNN):
    """``lstmkit.RNN`` with int8 weight matrices."""


QUANTIZED = {LSTM: QuantizedLSTM, DepthGatedLSTM: QuantizedDepthGatedLSTM, GRU: QuantizedGRU, RNN: QuantizedRNN}


def quantize_layer(module: _RNNBase) -> _RNNBase:
    """A quantized copy of an lstmkit recurrent module (its float weights untouched)."""
    cls = QUANTIZED.get(type(module))
    if cls is None:
        raise TypeError(f"model: expected lstmkit.LSTM/GRU/RNN/DepthGatedLSTM, got {type(module).__name__}")
    new = copy.deepcopy(module)
    new.__class__ = cls
    new._to_int8()
    return new
