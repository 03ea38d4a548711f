"""One-step modules, drop-in for ``torch.nn.LSTMCell``, ``GRUCell`` and ``RNNCell``.

They run the same ``cells`` maths as the layers, one step per call; parameters are
torch's cell names (``weight_ih``, ``bias_hh``, ...) plus the variant extras.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from . import _checks as check
from .cells import PARAM_NAMES, GRUSpec, RNNSpec
from .specs import LOW_PRECISION, DropIn, LSTMState, autocasting, init_parameter, lstm_spec, output_dtype
from .specs import reject_options, set_forget_bias


class _CellBase(DropIn, nn.Module):
    # the output dtype under torch.autocast, as torch.nn's cell of the family returns it (torch
    # 2.13, CPU): "input" (the input's dtype: LSTMCell, GRUCell) or "autocast" (RNNCell)
    autocast_output = "input"

    def __init__(self, spec, input_size, device, dtype, forget_bias=0.0):
        super().__init__()
        self.spec = spec
        self.input_size = check.positive_int("input_size", input_size)
        self.hidden_size = spec.hidden_size
        self.bias = spec.bias
        self._trace_sink = None
        self._names = {}
        for short, shape in spec.param_shapes(input_size).items():
            self.register_parameter(PARAM_NAMES[short], nn.Parameter(torch.empty(shape, device=device, dtype=dtype)))
            self._names[short] = PARAM_NAMES[short]
        self.forget_bias = float(forget_bias)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        p = self.params()
        for short, t in p.items():
            init_parameter(short, t, self.hidden_size)
        set_forget_bias(self.spec, p, self.forget_bias)

    def params(self) -> dict[str, Tensor]:
        return {short: getattr(self, name) for short, name in self._names.items()}

    def forward(self, input: Tensor, hx=None):
        """One step. bfloat16 and float16 cells compute in float32 and cast the new state
        back; under ``torch.autocast`` as the layers (``layers._RNNBase.forward``)."""
        x = check.tensor("input", input)
        if x.dim() not in (1, 2):
            raise ValueError(f"input: expected 2 dimensions (B, D) or 1 (D) for one unbatched "
                             f"sample, got shape {tuple(x.shape)}")
        unbatched = x.dim() == 1
        x = x.unsqueeze(0) if unbatched else x
        if x.shape[-1] != self.input_size:
            raise ValueError(f"input: expected {self.input_size} features (input_size), got {x.shape[-1]}")
        ref = self.weight_ih
        amp = autocasting(x, ref)
        check.like_params("input", x, ref, same_dtype=not amp)
        state = self._state(hx, x.shape[0], unbatched, x, amp)
        p = self.params()
        if not amp and ref.dtype not in LOW_PRECISION:
            new, gates = self.spec.step(self.spec.project(x, p), state, p)
        else:
            out = output_dtype(x, ref, amp, self.autocast_output)
            p = {k: t.float() for k, t in p.items()}
            with torch.autocast(x.device.type, enabled=False):
                new, gates = self.spec.step(self.spec.project(x.float(), p), tuple(s.float() for s in state), p)
            new = tuple(s.to(out) for s in new)
        if self._trace_sink is not None:
            rec = {k: (v if isinstance(v, Tensor) else torch.full_like(new[-1], float(v))).detach()
                   for k, v in gates.items()}
            rec.update(zip(("h", "c"), (s.detach() for s in new)))
            self._trace_sink(0, 0, {k: v.unsqueeze(0) for k, v in rec.items()})
        if unbatched:
            new = tuple(s.squeeze(0) for s in new)
        return LSTMState(*new) if len(new) == 2 else new[0]

    def _state(self, hx, batch: int, unbatched: bool, ref: Tensor, amp: bool) -> tuple[Tensor, ...]:
        sizes = self.spec.state_sizes
        if hx is None:
            return tuple(ref.new_zeros(batch, s) for s in sizes)
        names = ("h", "c") if len(sizes) == 2 else ("hx",)
        if len(sizes) == 2:
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                raise TypeError(f"hx: expected a tuple (h, c), got {type(hx).__name__}")
        else:
            hx = (hx,)
        out = []
        for name, t, s in zip(names, hx, sizes):
            check.tensor(name, t)
            check.shape(name, t, (s,) if unbatched else (batch, s),
                        "(hidden_size,)" if unbatched else "(B, hidden_size)")
            check.like_params(name, t, ref, same_dtype=not amp)
            out.append(t.unsqueeze(0) if unbatched else t)
        return tuple(out)


class LSTMCell(_CellBase):
    """One LSTM step, drop-in for ``torch.nn.LSTMCell``; takes the LSTM variant options
    (peepholes, coupled, ablate, layer_norm, forget_bias). Returns ``LSTMState(h', c')``."""

    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None, *,
                 peepholes=False, coupled=False, ablate=(), layer_norm=False, forget_bias=0.0):
        check.positive_int("hidden_size", hidden_size)
        spec = lstm_spec(hidden_size, 0, bias, peepholes, coupled, ablate, layer_norm, forget_bias)
        super().__init__(spec, input_size, device, dtype, forget_bias)


class GRUCell(_CellBase):
    """One GRU step, drop-in for ``torch.nn.GRUCell``; reset_after and layer_norm as ``GRU``."""

    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None, *,
                 reset_after=True, layer_norm=False, **unsupported):
        reject_options("GRUCell", unsupported)
        check.positive_int("hidden_size", hidden_size)
        super().__init__(GRUSpec(hidden_size, bool(bias), bool(reset_after), bool(layer_norm)),
                         input_size, device, dtype)


class RNNCell(_CellBase):
    """One Elman step, drop-in for ``torch.nn.RNNCell``."""

    autocast_output = "autocast"

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", device=None,
                 dtype=None, **unsupported):
        reject_options("RNNCell", unsupported)
        check.positive_int("hidden_size", hidden_size)
        spec = RNNSpec(hidden_size, bool(bias), check.choice("nonlinearity", nonlinearity, ("tanh", "relu")))
        super().__init__(spec, input_size, device, dtype)
        self.nonlinearity = spec.nonlinearity
