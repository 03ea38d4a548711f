"""The fused engine's forward alone, for a call that no backward follows (inference, streaming).

A streaming step (T = 1 per call, the state carried across calls) spends most of its time
outside the time loop. At B = 1, H = 128 the autograd Function around the C++ loop (argument
binding through ``inspect.signature``, ``setup_context``) and the named tuples that carry its
arguments and results cost more than the step's arithmetic. Where no backward can follow
(grad disabled, or nothing requires grad), ``layers`` calls ``run`` here instead of
``fused.run``: the same input terms (``lstm_terms``, ``input_terms``), the same C++ ops with
the same arguments, so the same results to float32 rounding (not always to the bit: this
path keeps one step's buffers, and torch's mm rounds by operand alignment;
tests/test_layers_streaming.py compares them for every variant), and no Function. Where the C++ loops do not run (``build.ops`` is
None), and for a trace, it is the family's ``run``.
"""
from __future__ import annotations

from torch import Tensor

from ...cells.common import LN_EPS
from ..base import EngineResult, Noise
from . import build
from .common import input_terms, keep_tensor, new_view, packed
from .gru import run_gru
from .lstm import lstm_terms, run_lstm
from .rnn import run_rnn


def run(spec, x: Tensor, state: tuple[Tensor, ...], p: dict[str, Tensor], *, mask: Tensor | None = None,
        reverse: bool = False, noise: Noise = Noise(), c_low: Tensor | None = None,
        want_cells: bool = False, record: bool = False) -> EngineResult:
    """``fused.run(...)`` without autograd: the same results. A trace (``record``) takes ``run``."""
    ops = build.ops(x.device)
    if ops is None or record:
        return _RUN[spec.family](spec, x, state, p, mask=mask, reverse=reverse, noise=noise, c_low=c_low,
                                 want_cells=want_cells, record=record)
    p = {k: t.contiguous() for k, t in p.items()}          # the loops read raw memory (a no-op for most)
    return _LOOP[spec.family](ops, spec, x, state, p, _c(mask), bool(reverse), noise, c_low, want_cells)


def _lstm(ops, spec, x, state, p, mask, reverse, noise, c_low, want_cells) -> EngineResult:
    u, b, xd = lstm_terms(spec, x, p)
    T, B = u.shape[:2]
    g = p.get
    got = _op(ops, "lstm_forward")(
        u.contiguous(), b, xd, _c(c_low) if spec.depth_gate else None, state[0].contiguous(),
        state[1].contiguous(), p["w_hh"], g("g_hh"), g("w_ci"), g("w_cf"), g("w_co"), g("g_c"), g("b_c"),
        g("w_hr"), g("w_cd"), g("w_ld"), mask, _c(keep_tensor(noise.keep_c, u)), _c(keep_tensor(noise.keep_h, u)),
        _c(noise.drop), packed(p["w_hh"], B, T), packed(g("w_hr"), B, T), spec.gates, spec.coupled,
        "input_activation" in spec.ablate, "output_activation" in spec.ablate, reverse, False, LN_EPS)
    return _result(got[1], got[2], mask, reverse, want_cells)


def _gru(ops, spec, x, state, p, mask, reverse, noise, *_) -> EngineResult:
    u = input_terms(x, p["w_ih"], p.get("b_ih"), p.get("g_ih"), 3)
    h0, w_hh = state[0].contiguous(), p["w_hh"]
    (B, H), T = h0.shape, u.shape[0]
    w_a, w_n = (w_hh, None) if spec.reset_after else (w_hh[:2 * H], w_hh[2 * H:])
    got = _op(ops, "gru_forward")(
        u.contiguous(), h0, w_hh, p.get("b_hh"), p.get("g_hh"), mask, _c(keep_tensor(noise.keep_h, u)),
        _c(noise.drop), packed(w_a, B, T), packed(w_n, B, T), spec.reset_after, reverse, False, LN_EPS)
    return _result(got[1], None, mask, reverse, False)


def _rnn(ops, spec, x, state, p, mask, reverse, *_) -> EngineResult:
    u = input_terms(x, p["w_ih"], p.get("b_ih"), None, 1, p.get("b_hh"))
    got = _op(ops, "rnn_forward")(u.contiguous(), state[0].contiguous(), p["w_hh"], mask,
                                  packed(p["w_hh"], u.shape[1], u.shape[0]), spec.nonlinearity == "relu", reverse)
    return _result(got[0], None, mask, reverse, False)


# The ops' arguments, in the order the calls above pass them: by position, since by keyword
# the dispatcher's matching of some 30 names cost ~20 µs a call, a sixth of a small step.
# ``_op`` checks each order against the op's schema once, so a changed schema fails loudly.
ARGS = {
    "lstm_forward": ("u", "bias", "xd", "c_low", "h0", "c0", "w_hh", "g_hh", "w_ci", "w_cf", "w_co", "g_c",
                     "b_c", "w_hr", "w_cd", "w_ld", "mask", "keep_c", "keep_h", "drop", "pk_hh", "pk_hr",
                     "gates", "coupled", "niaf", "noaf", "reverse", "keep", "eps"),
    "gru_forward": ("u", "h0", "w_hh", "b_hh", "g_hh", "mask", "keep_h", "drop", "pk_a", "pk_n",
                    "reset_after", "reverse", "keep", "eps"),
    "rnn_forward": ("u", "h0", "w_hh", "mask", "pk", "relu", "reverse"),
}
_CHECKED: set[str] = set()


def _op(ops, name: str):
    """``ops.<name>.default``, its schema's argument names checked against ``ARGS[name]``."""
    op = getattr(ops, name).default
    if name not in _CHECKED:
        got = tuple(a.name for a in op._schema.arguments)
        if got != ARGS[name]:
            raise RuntimeError(f"fused.infer: {name} takes {got}, infer.ARGS says {ARGS[name]}")
        _CHECKED.add(name)
    return op


def _result(Hs: Tensor, Cs: Tensor | None, mask, reverse: bool, want_cells: bool) -> EngineResult:
    """Output, final state and cell sequence: views of the state buffers, as the Functions give."""
    last = 0 if reverse else Hs.shape[0] - 1
    y = new_view(Hs, reverse)
    if mask is not None:
        y = y * mask
    state = (Hs[last],) if Cs is None else (Hs[last], Cs[last])
    return EngineResult(y, state, new_view(Cs, reverse) if want_cells else None, None)


def _c(t: Tensor | None) -> Tensor | None:
    """Contiguous, as the C++ loops read raw memory (a no-op for most)."""
    return None if t is None else t.contiguous()


_RUN = {"lstm": run_lstm, "gru": run_gru, "rnn": run_rnn}
_LOOP = {"lstm": _lstm, "gru": _gru, "rnn": _rnn}
