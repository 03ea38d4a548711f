"""The fused engine's forward alone, for a call that no backward follows (inference, streaming).

A streaming step (T = 1 per call, the state carried across calls) spends most of its time
outside the time loop. At B = 1, H = 128 the autograd Function around the C++ loop (argument
binding through ``inspect.signature``, ``setup_context``) and the named tuples that carry its
arguments and results cost more than the step's arithmetic. Where no backward can follow (grad disabled, or nothing requires grad) and no
trace is recorded, ``layers`` calls ``infer`` instead of ``run``: the same input terms
(``lstm_terms``, ``input_terms``), the same C++ ops with the same arguments, so the same
results bit for bit (tests/test_layers_streaming.py compares them for every variant), and no
Function. Where the C++ loops do not run (``build.ops`` is None), and for a trace, it is the
family's ``run``.
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


def infer(spec, x: Tensor, state: tuple[Tensor, ...], p: dict[str, Tensor], *, mask: Tensor | None = None,
          reverse: bool = False, noise: Noise = Noise(), c_low: Tensor | None = None,
          want_cells: bool = False, record: bool = False) -> EngineResult:
    """``fused.run(...)`` without autograd: the same results. A trace (``record``) takes ``run``."""
    ops = build.ops(x.device)
    if ops is None or record:
        return _RUN[spec.family](spec, x, state, p, mask=mask, reverse=reverse, noise=noise, c_low=c_low,
                                 want_cells=want_cells, record=record)
    return _LOOP[spec.family](ops, spec, x, state, p, _c(mask), bool(reverse), noise, c_low, want_cells)


def _lstm(ops, spec, x, state, p, mask, reverse, noise, c_low, want_cells) -> EngineResult:
    u, b, xd = lstm_terms(spec, x, p)
    B = u.shape[1]
    g = p.get
    w_hh, w_hr = p["w_hh"].contiguous(), _c(g("w_hr"))
    got = ops.lstm_forward.default(
        u=u.contiguous(), bias=_c(b), xd=_c(xd), c_low=_c(c_low) if spec.depth_gate else None,
        h0=state[0].contiguous(), c0=state[1].contiguous(), w_hh=w_hh, g_hh=_c(g("g_hh")), w_ci=_c(g("w_ci")),
        w_cf=_c(g("w_cf")), w_co=_c(g("w_co")), g_c=_c(g("g_c")), b_c=_c(g("b_c")), w_hr=w_hr,
        w_cd=_c(g("w_cd")), w_ld=_c(g("w_ld")), mask=mask, keep_c=_c(keep_tensor(noise.keep_c, u)),
        keep_h=_c(keep_tensor(noise.keep_h, u)), drop=_c(noise.drop), pk_hh=packed(w_hh, B),
        pk_hr=packed(w_hr, B), gates=spec.gates, coupled=spec.coupled,
        niaf="input_activation" in spec.ablate, noaf="output_activation" in spec.ablate, reverse=reverse,
        keep=False, eps=LN_EPS)
    return _result(got[1], got[2], mask, reverse, want_cells)


def _gru(ops, spec, x, state, p, mask, reverse, noise, *_) -> EngineResult:
    u = input_terms(x, p["w_ih"], p.get("b_ih"), p.get("g_ih"), 3)
    h0, w_hh = state[0].contiguous(), p["w_hh"].contiguous()
    B, H = h0.shape
    w_a, w_n = (w_hh, None) if spec.reset_after else (w_hh[:2 * H], w_hh[2 * H:])
    got = ops.gru_forward.default(
        u=u.contiguous(), h0=h0, w_hh=w_hh, b_hh=_c(p.get("b_hh")), g_hh=_c(p.get("g_hh")), mask=mask,
        keep_h=_c(keep_tensor(noise.keep_h, u)), drop=_c(noise.drop), pk_a=packed(w_a, B), pk_n=packed(w_n, B),
        reset_after=spec.reset_after, reverse=reverse, keep=False, eps=LN_EPS)
    return _result(got[1], None, mask, reverse, False)


def _rnn(ops, spec, x, state, p, mask, reverse, *_) -> EngineResult:
    u = input_terms(x, p["w_ih"], p.get("b_ih"), None, 1, p.get("b_hh"))
    w_hh = p["w_hh"].contiguous()
    got = ops.rnn_forward.default(u=u.contiguous(), h0=state[0].contiguous(), w_hh=w_hh, mask=mask,
                                  pk=packed(w_hh, u.shape[1]), relu=spec.nonlinearity == "relu", reverse=reverse)
    return _result(got[0], None, mask, reverse, False)


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
