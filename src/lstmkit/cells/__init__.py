"""One step of every cell family, in the seeds' symbols.

Each family is a frozen dataclass ("spec") that knows its gates, its parameter shapes,
the input projection for a whole sequence (``project``) and one time step (``step``).
The time loop, stacking, directions and masking live in ``engines`` and ``layers``.
"""
from dataclasses import fields

from .depth_gated import depth_gate
from .gru import GRUSpec
from .lstm import ABLATIONS, LSTMSpec
from .rnn import RNNSpec

# Short symbol used in the maths -> torch-style parameter base name (the layer adds
# "_l{k}" and "_reverse"). One table, so that code, checkpoints and docs agree.
PARAM_NAMES = {
    "w_ih": "weight_ih", "w_hh": "weight_hh", "b_ih": "bias_ih", "b_hh": "bias_hh",
    "w_hr": "weight_hr",
    "w_ci": "weight_ci", "w_cf": "weight_cf", "w_co": "weight_co",
    "g_ih": "weight_ln_ih", "g_hh": "weight_ln_hh", "g_c": "weight_ln_c", "b_c": "bias_ln_c",
    "w_xd": "weight_xd", "b_d": "bias_d", "w_cd": "weight_cd", "w_ld": "weight_ld",
}

SPECS = {"lstm": LSTMSpec, "gru": GRUSpec, "rnn": RNNSpec}


def spec_to_plain(spec) -> dict:
    """A spec as a dict of str, int and bool (a frozenset as a sorted list): what
    ``torch.load(weights_only=True)`` accepts without allow-listing lstmkit's internals."""
    out = {"family": spec.family}
    for f in fields(spec):
        v = getattr(spec, f.name)
        out[f.name] = sorted(v) if isinstance(v, frozenset) else v
    return out


def spec_from_plain(d: dict):
    """Inverse of ``spec_to_plain``."""
    cls = SPECS[d["family"]]
    kw = {f.name: d[f.name] for f in fields(cls)}
    if "ablate" in kw:
        kw["ablate"] = frozenset(kw["ablate"])
    return cls(**kw)


__all__ = ["ABLATIONS", "GRUSpec", "LSTMSpec", "PARAM_NAMES", "RNNSpec", "SPECS", "depth_gate", "spec_from_plain",
           "spec_to_plain"]
