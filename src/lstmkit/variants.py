"""The one registry of named variants: name -> family and constructor options.

Every sweep over "all the variants" reads this table: the tests, ``lstmkit bench``, the
memory lab, the demo and the CLI's ``--cell``. A name is what a user types; the family is
the module class (``FAMILIES``); the options are its keyword arguments (DESIGN.md §3).

    >>> from lstmkit.variants import build
    >>> build("coupled", 8, 16)                  # lstmkit.LSTM(8, 16, coupled=True)
    >>> build("projection", 8, 16).proj_size     # Fraction(1, 2) of H: 8

A ``Fraction`` as the value of ``proj_size`` means that fraction of ``hidden_size``, so one
entry serves every size (the bench's S/M/L and the tests' tiny shapes alike).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from types import MappingProxyType
from typing import Mapping

from torch import nn

from .layers import GRU, LSTM, RNN, DepthGatedLSTM
from .parallel import QRNN, MinGRU, MinLSTM
from .xlstm import mLSTM, sLSTM

FAMILIES: Mapping[str, type[nn.Module]] = MappingProxyType(
    {"lstm": LSTM, "gru": GRU, "rnn": RNN, "depth_gated": DepthGatedLSTM})
# The parallel-in-time members (``lstmkit.parallel``) are kept apart: they are not drop-ins of
# torch.nn.LSTM/GRU (no PackedSequence, no ``backend``, forward(x, h0)), so the sweeps over
# ``VARIANTS`` (drop-in tests, ``lstmkit bench``, the text LM's families) leave them out;
# ``variant()`` and the memory lab's ``--cell`` see both tables.
PARALLEL_FAMILIES: Mapping[str, type[nn.Module]] = MappingProxyType({"minlstm": MinLSTM, "mingru": MinGRU, "qrnn": QRNN})
# xLSTM (Beck et al. 2024): forward(x, state) with named states of their own; kept apart likewise.
XLSTM_FAMILIES: Mapping[str, type[nn.Module]] = MappingProxyType({"slstm": sLSTM, "mlstm": mLSTM})
_ALL_FAMILIES = MappingProxyType({**FAMILIES, **PARALLEL_FAMILIES, **XLSTM_FAMILIES})


@dataclass(frozen=True)
class Variant:
    """name: the registry key.  family: a key of ``FAMILIES``.  options: keyword arguments
    of the family's constructor.  about: one line (maths or paper).  torch: the ``torch.nn``
    class computing the same function with the same parameters, or None."""

    name: str
    family: str
    options: Mapping = field(default_factory=dict)
    about: str = ""
    torch: type[nn.Module] | None = None

    def __post_init__(self):
        if self.family not in _ALL_FAMILIES:
            raise ValueError(f"family: expected one of {', '.join(_ALL_FAMILIES)}, got {self.family!r}")
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))

    def kwargs(self, hidden_size: int, **overrides) -> dict:
        """The constructor's keyword arguments at this size, ``overrides`` applied last."""
        kw = {**self.options, **overrides}
        if isinstance(kw.get("proj_size"), Fraction):
            kw["proj_size"] = int(kw["proj_size"] * hidden_size)
        return kw

    def build(self, input_size: int, hidden_size: int, **overrides) -> nn.Module:
        """The module; ``overrides`` (num_layers, batch_first, dtype, backend, ...) as in torch."""
        return _ALL_FAMILIES[self.family](input_size, hidden_size, **self.kwargs(hidden_size, **overrides))


def _v(name: str, family: str, about: str, torch: type[nn.Module] | None = None, **options) -> Variant:
    return Variant(name, family, options, about, torch)


# The LSTM ablations are those of Greff et al. 2017 (arXiv 1503.04069): NIG, NFG, NOG, NIAF, NOAF.
VARIANTS: Mapping[str, Variant] = MappingProxyType({v.name: v for v in (
    _v("lstm", "lstm", "i,f,o = σ(·), g = tanh(·); c' = f⊙c + i⊙g; h' = o⊙tanh(c')", nn.LSTM),
    _v("peepholes", "lstm", "gates also read the cell (Gers & Schmidhuber 2000)", peepholes=True),
    _v("coupled", "lstm", "CIFG: i = 1 − f (Greff et al. 2017)", coupled=True),
    _v("no_input_gate", "lstm", "NIG: i = 1", ablate="input_gate"),
    _v("no_forget_gate", "lstm", "NFG: f = 1 (the 1997 LSTM)", ablate="forget_gate"),
    _v("no_output_gate", "lstm", "NOG: o = 1", ablate="output_gate"),
    _v("no_input_activation", "lstm", "NIAF: g = a_g", ablate="input_activation"),
    _v("no_output_activation", "lstm", "NOAF: h' = o⊙c'", ablate="output_activation"),
    _v("layer_norm", "lstm", "one LN per gate block and on c' (Ba et al. 2016)", layer_norm=True),
    _v("projection", "lstm", "LSTMP: h' = W_hr (o⊙tanh(c')), P = H/2 (Sak et al. 2014)", nn.LSTM,
       proj_size=Fraction(1, 2)),
    _v("zoneout", "lstm", "keep each unit of c, h with prob. 0.1 (Krueger et al. 2016)", zoneout=0.1),
    _v("recurrent_dropout", "lstm", "one mask per sequence on h (Gal & Ghahramani 2016)",
       recurrent_dropout=0.25),
    _v("depth_gated", "depth_gated", "2 layers, c' += d⊙c_low' (Yao et al. 2015)", num_layers=2),
    _v("gru", "gru", "r ⊙ (W_hn h + b_hn), as torch and cuDNN", nn.GRU),
    _v("gru_reset_before", "gru", "W_hn (r ⊙ h), Cho et al. 2014 and the seeds", reset_after=False),
    _v("gru_layer_norm", "gru", "one LN per gate block (Ba et al. 2016)", layer_norm=True),
    _v("rnn", "rnn", "h' = tanh(W x + U h + b) (Elman 1990)", nn.RNN),
    _v("rnn_relu", "rnn", "h' = relu(W x + U h + b)", nn.RNN, nonlinearity="relu"),
)})


# Feng et al. 2024 (arXiv 2410.01201): gates without h_{t-1}, run by a parallel scan.
PARALLEL_VARIANTS: Mapping[str, Variant] = MappingProxyType({v.name: v for v in (
    _v("minlstm", "minlstm", "f, i = σ(W x + b), h' = f/(f+i) ⊙ h + i/(f+i) ⊙ h̃ (Feng et al. 2024)"),
    _v("mingru", "mingru", "z = σ(W x + b), h' = (1 − z) ⊙ h + z ⊙ h̃ (Feng et al. 2024)"),
    _v("qrnn", "qrnn", "z, f, o from a causal conv (width 2); c' = f ⊙ c + (1 − f) ⊙ z, h' = o ⊙ c' (Bradbury et al. 2016)"),
)})
XLSTM_VARIANTS: Mapping[str, Variant] = MappingProxyType({v.name: v for v in (
    _v("slstm", "slstm", "exp. input gate, normaliser n, stabiliser m, block-diagonal heads (Beck et al. 2024)"),
    _v("mlstm", "mlstm", "matrix memory C' = f'C + i' v kᵀ, read C q (Beck et al. 2024)"),
)})
ALL_VARIANTS: Mapping[str, Variant] = MappingProxyType({**VARIANTS, **PARALLEL_VARIANTS, **XLSTM_VARIANTS})


def variant(name: str) -> Variant:
    """The registry entry ``name`` (``VARIANTS``, ``PARALLEL_VARIANTS`` or ``XLSTM_VARIANTS``);
    ValueError naming the choices otherwise."""
    try:
        return ALL_VARIANTS[name]
    except KeyError:
        raise ValueError(f"variant: expected one of {', '.join(ALL_VARIANTS)}, got {name!r}") from None


def build(name: str, input_size: int, hidden_size: int, **overrides) -> nn.Module:
    """``variant(name).build(input_size, hidden_size, **overrides)``."""
    return variant(name).build(input_size, hidden_size, **overrides)


__all__ = ["ALL_VARIANTS", "FAMILIES", "PARALLEL_FAMILIES", "PARALLEL_VARIANTS", "VARIANTS", "Variant",
           "XLSTM_FAMILIES", "XLSTM_VARIANTS", "build", "variant"]
