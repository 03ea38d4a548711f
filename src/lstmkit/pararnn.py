"""ParaLSTM and ParaGRU: the diagonal-recurrence cells of ParaRNN (Danieli et al. 2025,
arXiv 2510.21450), solved over time in parallel by Newton's method (``engines.newton``).

Equations in ``cells.diagonal``: the LSTM is CIFG (i = 1 − f) with peepholes on f (old c) and
o (new c), the GRU torch's update h' = (1 − z) ⊙ n + z ⊙ h; every recurrent matrix is diagonal.
Stacking, inter-layer dropout, batch_first, unbatched input and the state carried across calls
behave as for ``lstmkit.LSTM``/``GRU``: forward(x, hx=None) -> (output, LSTMState(h_n, c_n))
for ParaLSTM, (output, h_n) for ParaGRU, each state (L, B, H) ((L, H) unbatched).

mode: "newton" (the Newton solver, a parallel scan per iteration), "sequential" (the step loop
with autograd: the oracle), "auto" (newton on an accelerator; on the CPU the step loop, measured
faster there: docs/pararnn.md). tol: stop when no state entry changes by more than tol in an
iteration (None: 1e-5 in float32, 1e-10 in float64). max_iters: at most this many iterations
(None: T, after which the solution is exact). ``last_solve`` holds, after each newton forward,
one ``NewtonStats(iterations, change, fallback)`` per layer (fallback: an iteration was not
finite, so the step loop solved that layer).

Parameters, per layer k: weight_ih_l{k} (3H, D_k) with the gate rows (ParaLSTM f, g, o; ParaGRU
r, z, n), weight_hh_l{k} (3H,) the diagonals a of the recurrent matrices, bias_ih_l{k} (3H,),
and for ParaLSTM the peepholes weight_cf_l{k}, weight_co_l{k} (H,). Initialisation: U(−1/√H, 1/√H).
"""
from __future__ import annotations

from numbers import Real

import torch
from torch import Tensor, nn

from . import _checks as check
from .cells.diagonal import DiagGRUSpec, DiagLSTMSpec
from .engines import newton
from .specs import LSTMState, StackedLayers, register_layers


class _ParaRNN(StackedLayers):
    spec_class = DiagLSTMSpec

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, device=None, dtype=None, *, mode="auto", tol=None, max_iters=None):
        super().__init__()
        self._set_options(input_size, hidden_size, num_layers, bias, batch_first, dropout)
        self.mode = check.choice("mode", mode, newton.MODES)
        if tol is not None and (isinstance(tol, bool) or not isinstance(tol, Real) or not tol > 0):
            raise ValueError(f"tol: expected None or a number > 0, got {tol!r}")
        self.tol = None if tol is None else float(tol)
        self.max_iters = None if max_iters is None else check.positive_int("max_iters", max_iters)
        self.spec = self.spec_class(hidden_size, self.bias)
        self.last_solve: list[newton.NewtonStats] = []
        register_layers(self, [self.spec] * num_layers, input_size, hidden_size, device, dtype)
        self.reset_parameters()

    def extra_repr(self) -> str:
        return (f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, bias={self.bias}, "
                f"batch_first={self.batch_first}, dropout={self.dropout}, mode={self.mode!r}, "
                f"tol={self.tol}, max_iters={self.max_iters}")

    def _state(self, hx, B: int, unbatched: bool, x: Tensor) -> tuple[Tensor, ...]:
        """hx as K tensors (L, B, H) (zeros when None)."""
        names = self.spec.state_names
        if hx is None:
            return tuple(x.new_zeros(self.num_layers, B, self.hidden_size) for _ in names)
        parts = hx if len(names) > 1 else (hx,)
        if len(names) > 1 and (not isinstance(hx, tuple) or len(hx) != len(names)):
            raise TypeError(f"hx: expected a tuple (h0, c0) or None, got {type(hx).__name__}")
        want = (self.num_layers, self.hidden_size) if unbatched else (self.num_layers, B, self.hidden_size)
        out = []
        for name, t in zip(names, parts):
            check.tensor(f"{name}0", t)
            check.shape(f"{name}0", t, want, "(num_layers, " + ("" if unbatched else "B, ") + "hidden_size)")
            check.like_params(f"{name}0", t, self.weight_ih_l0)
            out.append(t.unsqueeze(1) if unbatched else t)
        return tuple(out)

    def _run(self, input: Tensor, hx):
        """-> output (as given: (T, B, H), (B, T, H) or (T, H)), final states (K tensors (L, B, H))."""
        x, unbatched = check.sequence(input, self.batch_first)
        check.features(x, self.input_size, input)
        check.like_params("input", x, self.weight_ih_l0)
        state = self._state(hx, x.shape[1], unbatched, x)
        mode = self.mode if self.mode != "auto" else ("sequential" if x.device.type == "cpu" else "newton")
        finals, stats = [], []
        for k in range(self.num_layers):
            r = newton.run(self.spec, x, tuple(s[k] for s in state), self.layer_params(k),
                           mode=mode, tol=self.tol, max_iters=self.max_iters)
            finals.append(r.state)
            stats.append(r.stats)
            x = r.output
            if self.dropout and self.training and k < self.num_layers - 1:
                x = nn.functional.dropout(x, self.dropout, True)
        if mode == "newton":
            self.last_solve = stats
        finals = [torch.stack(ts) for ts in zip(*finals)]
        if unbatched:
            return x.squeeze(1), [t.squeeze(1) for t in finals]
        return (x.transpose(0, 1) if self.batch_first else x), finals


class ParaLSTM(_ParaRNN):
    """ParaLSTM (ParaRNN's CIFG LSTM with peepholes and diagonal recurrence):
    f = σ(u_f + a_f ⊙ h + w_cf ⊙ c), g = tanh(u_g + a_g ⊙ h), c' = f ⊙ c + (1 − f) ⊙ g,
    o = σ(u_o + a_o ⊙ h + w_co ⊙ c'), h' = o ⊙ tanh(c'). See the module docstring."""

    spec_class = DiagLSTMSpec

    def forward(self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None):
        """input (T, B, D), (B, T, D) with batch_first, or (T, D); hx (h0, c0) each (L, B, H)
        ((L, H) unbatched) or None. -> output (T, B, H), LSTMState(h_n, c_n)."""
        y, (h_n, c_n) = self._run(input, hx)
        return y, LSTMState(h_n, c_n)


class ParaGRU(_ParaRNN):
    """ParaGRU (ParaRNN's GRU with diagonal recurrence): r = σ(u_r + a_r ⊙ h),
    z = σ(u_z + a_z ⊙ h), n = tanh(u_n + r ⊙ (a_n ⊙ h)), h' = (1 − z) ⊙ n + z ⊙ h."""

    spec_class = DiagGRUSpec

    def forward(self, input: Tensor, hx: Tensor | None = None):
        """input (T, B, D), (B, T, D) with batch_first, or (T, D); hx (L, B, H) ((L, H)
        unbatched) or None. -> output (T, B, H), h_n (L, B, H)."""
        y, (h_n,) = self._run(input, hx)
        return y, h_n


__all__ = ["ParaGRU", "ParaLSTM"]
