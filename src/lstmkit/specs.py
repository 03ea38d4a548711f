"""Module options validated together, the cell specs they make, and parameter set-up:
shared by the layers (``layers.py``) and the one-step modules (``cell_modules.py``)."""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from . import _checks as check
from .cells import ABLATIONS, PARAM_NAMES, LSTMSpec, spec_from_plain, spec_to_plain


LOW_PRECISION = (torch.bfloat16, torch.float16)     # computed in float32, stored as they are


def autocasting(x: Tensor, ref: Tensor) -> bool:
    """torch.autocast is on for x's device and applies to parameters of ``ref``'s dtype
    (it leaves float64 alone, as it does torch's ops)."""
    return (torch._C._is_any_autocast_enabled() and ref.dtype != torch.float64    # the first: cheap
            and torch.is_autocast_enabled(x.device.type))


def output_dtype(x: Tensor, ref: Tensor, amp: bool, autocast_output: str) -> torch.dtype:
    """The results' dtype: the parameters' (= the input's) outside autocast; under it, as the
    torch.nn module of the family returns it: autocast's dtype ("autocast") or the input's ("input")."""
    if not amp:
        return ref.dtype
    return torch.get_autocast_dtype(x.device.type) if autocast_output == "autocast" else x.dtype


class LSTMState(NamedTuple):
    """(h, c): a tuple, so it unpacks like torch's ``(h_n, c_n)``."""

    h: Tensor
    c: Tensor




def register_layers(module, specs, input_size: int, hidden_size: int, device, dtype) -> None:
    """Empty parameters of every layer k of ``specs`` on ``module``, named as torch names them;
    layer k > 0 reads hidden_size features (the MinRNN and xLSTM stacks)."""
    for k, spec in enumerate(specs):
        for short, shape in spec.param_shapes(input_size if k == 0 else hidden_size).items():
            module.register_parameter(f"{PARAM_NAMES[short]}_l{k}",
                                      torch.nn.Parameter(torch.empty(shape, device=device, dtype=dtype)))


class StackedLayers(torch.nn.Module):
    """What the MinRNN, xLSTM and ParaRNN stacks share: torch's initialisation of the parameters
    ``register_layers`` put on them, the engines' view of one layer, and ``flatten_parameters``."""

    def _set_options(self, input_size, hidden_size, num_layers, bias, batch_first, dropout) -> None:
        """The options every stack takes, validated (errors name the argument)."""
        self.input_size = check.positive_int("input_size", input_size)
        self.hidden_size = check.positive_int("hidden_size", hidden_size)
        self.num_layers = check.positive_int("num_layers", num_layers)
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.dropout = check.rate("dropout", dropout)

    def reset_parameters(self) -> None:
        """U(−1/√H, 1/√H), as torch's recurrent modules."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for t in self.parameters():
            torch.nn.init.uniform_(t, -bound, bound)

    def layer_params(self, layer: int) -> dict[str, Tensor]:
        """Short symbol -> parameter of one layer (the engine's view)."""
        return layer_params(self, layer)

    def flatten_parameters(self) -> None:
        """No-op, as a drop-in for code written against torch.nn.LSTM/GRU (no cuDNN weight blob here)."""


def layer_params(module, layer: int) -> dict[str, Tensor]:
    """Short symbol -> parameter of one layer registered by ``register_layers`` (the engine's view)."""
    return {s: getattr(module, f"{n}_l{layer}") for s, n in PARAM_NAMES.items() if hasattr(module, f"{n}_l{layer}")}


def init_parameter(short: str, t: Tensor, hidden_size: int) -> None:
    """torch's init, U(−1/√H, 1/√H), for weights and biases; LN gains 1, LN shift 0."""
    with torch.no_grad():
        if short.startswith("g_"):
            t.fill_(1.0)
        elif short == "b_c":
            t.zero_()
        else:
            bound = 1.0 / math.sqrt(hidden_size)
            t.uniform_(-bound, bound)


def set_forget_bias(spec, p: dict[str, Tensor], forget_bias: float) -> None:
    """b_if = forget_bias, b_hf = 0 (Gers et al. 2000; Jozefowicz et al. 2015 use 1)."""
    if forget_bias and "b_ih" in p:
        H, k = spec.hidden_size, spec.gates.index("f")
        with torch.no_grad():
            p["b_ih"][k * H:(k + 1) * H].fill_(forget_bias)
            p["b_hh"][k * H:(k + 1) * H].zero_()


def lstm_spec(hidden_size, proj_size, bias, peepholes, coupled, ablate, layer_norm, forget_bias,
              depth_gate=False) -> LSTMSpec:
    """Validate the LSTM options together and build the spec."""
    check.positive_int("proj_size", proj_size, minimum=0)
    if proj_size >= hidden_size:
        raise ValueError(f"proj_size: expected 0 <= proj_size < hidden_size={hidden_size}, got {proj_size}")
    ablate = (ablate,) if isinstance(ablate, str) else tuple(ablate)
    unknown = [a for a in ablate if a not in ABLATIONS]
    if unknown:
        raise ValueError(f"ablate: expected names from {ABLATIONS}, got {unknown!r}")
    if coupled and {"input_gate", "forget_gate"} & set(ablate):
        raise ValueError(f"coupled=True ties i = 1 - f, so it cannot be combined with ablating "
                         f"the input or forget gate; got ablate={ablate!r}")
    gates = LSTMSpec(hidden_size, coupled=bool(coupled), ablate=frozenset(ablate)).gates
    spec = LSTMSpec(hidden_size, proj_size, bool(bias), check.peepholes(peepholes, gates),
                    bool(coupled), frozenset(ablate), bool(layer_norm), depth_gate)
    if forget_bias and "f" not in spec.gates:
        raise ValueError(f"forget_bias: expected 0.0 when the forget gate is ablated, got {forget_bias}")
    if forget_bias and not bias:
        raise ValueError(f"forget_bias: expected 0.0 when bias=False, got {forget_bias}")
    return spec


def reject_options(cls: str, unsupported: dict) -> None:
    """TypeError naming the first keyword argument ``cls`` does not take."""
    if unsupported:
        name, value = next(iter(unsupported.items()))
        hint = " (peephole connections belong to the LSTM family: use lstmkit.LSTM)" \
            if name == "peepholes" else ""
        raise TypeError(f"{name}: {cls} does not take this option, got {name}={value!r}{hint}")


class DropIn:
    """What a program written for ``torch.nn.LSTM`` also calls on the module.

    Whole-module pickling (``torch.save(model)``) stores the specs as plain dicts, so the
    file loads under ``torch.load(..., weights_only=True)`` with only lstmkit's public
    module classes allow-listed, as PyTorch's ``word_language_model`` example does.
    """

    _SPEC_ATTRS = ("specs", "spec")

    def __getstate__(self):
        state = self.__dict__.copy()
        for name in self._SPEC_ATTRS:
            if name == "specs" and name in state:
                state[name] = [spec_to_plain(s) for s in state[name]]
            elif name in state:
                state[name] = spec_to_plain(state[name])
        return state

    def __setstate__(self, state):
        state = dict(state)
        for name in self._SPEC_ATTRS:
            if name == "specs" and name in state:
                state[name] = [spec_from_plain(s) for s in state[name]]
            elif name in state:
                state[name] = spec_from_plain(state[name])
        super().__setstate__(state)

    def flatten_parameters(self) -> None:
        """No-op, as ``torch.nn.LSTM.flatten_parameters`` on the CPU: each parameter is already
        one tensor and the engines read them in place (there is no cuDNN weight buffer)."""

    def __prepare_scriptable__(self):
        raise TypeError(f"torch.jit.script: lstmkit.{type(self).__name__} does not support "
                        "TorchScript (deprecated upstream); use torch.compile(model) or "
                        "torch.export.export(model, args), which lstmkit supports")
