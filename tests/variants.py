"""Test cases over the variant registry: a case is a registry name plus options that widen
what one sweep covers (a subset of peepholes, a rate high enough to matter at tiny sizes)."""
import pytest

from lstmkit.variants import VARIANTS, build

# case -> (registry name, overrides). Every registry entry is a case of its own.
CASES = {name: (name, {}) for name in VARIANTS}
CASES.update({
    "peepholes_f": ("peepholes", {"peepholes": "f"}),
    "peepholes_io": ("peepholes", {"peepholes": "io"}),
    "coupled_peepholes_fo": ("coupled", {"peepholes": "fo"}),
    "projection": ("projection", {"proj_size": 3}),
    "ln_proj_peep": ("layer_norm", {"proj_size": 3, "peepholes": True}),
    "forget_bias": ("lstm", {"forget_bias": 1.0}),
    "zoneout": ("zoneout", {"zoneout": 0.3}),
    "recurrent_dropout": ("recurrent_dropout", {"recurrent_dropout": 0.3}),
    "gru_reset_before_ln": ("gru_reset_before", {"layer_norm": True}),
    "gru_zoneout": ("gru", {"zoneout": 0.3}),
})
LSTM_CASES = [c for c, (name, _) in CASES.items() if VARIANTS[name].family == "lstm"]
ALL = list(CASES)


def make(case, D, H, **kw):
    """The module of a case at input size D, hidden size H; ``kw`` as for the constructor."""
    name, options = CASES[case]
    return build(name, D, H, **{**options, **kw})


# The fast subset (`make test-fast`): one case per family and the options that change the
# engines' code path most; every other case of a sweep carries the slow marker.
FAST = ("lstm", "peepholes", "layer_norm", "projection", "depth_gated", "gru", "gru_reset_before", "rnn")


def sweep(cases=None, fast=FAST):
    """pytest parameters over ``cases`` (default every case), slow-marked outside ``fast``."""
    return [c if c in fast else pytest.param(c, marks=pytest.mark.slow) for c in (cases or ALL)]
