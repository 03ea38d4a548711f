"""sLSTM and mLSTM (Beck et al. 2024, arXiv 2405.04517): the LSTM's own successors, as layers.

Equations in ``cells.xlstm``. Stacking, batch_first, unbatched input, ``lengths`` (state frozen
past a sequence's length, padded outputs zero) and the state carried across calls behave as for
``lstmkit.LSTM``; forward(x, state=None) -> (output, state) with a named state:
``SLSTMState(h, c, n, m)``, each (L, B, H), or ``MLSTMState(C, n, m)``, (L, B, NH, d, d),
(L, B, NH, d), (L, B, NH). state=None is the fresh state (zeros, m = ``M_FRESH``).

Parameters, per layer k: weight_ih_l{k} with the gate rows of ``cells.xlstm`` (sLSTM i, f, g, o;
mLSTM q, k, v, o, ĩ, f̃), bias_ih_l{k}, and for the sLSTM weight_hh_l{k} (4H, d), the
block-diagonal recurrent heads. Initialisation: U(−1/√H, 1/√H), forget-gate biases spread so
that f = σ(3) … σ(6) (the xLSTM reference's linspace(3, 6)): memory over 20 to 400 steps at start.
"""
from __future__ import annotations

import dataclasses

import torch
from torch import Tensor, nn

from . import _checks as check
from .cells.xlstm import FORGET, M_FRESH, MLSTMSpec, MLSTMState, SLSTMSpec, SLSTMState
from .engines import mlstm as mlstm_engine
from .engines import slstm as slstm_engine
from .specs import StackedLayers, register_layers

_LOW_PRECISION = (torch.float16, torch.bfloat16)
BACKENDS = ("auto", "reference", "fused")


def _check_sizes(hidden_size, num_layers, num_heads) -> None:
    check.positive_int("hidden_size", hidden_size)
    check.positive_int("num_layers", num_layers)
    check.positive_int("num_heads", num_heads)
    if hidden_size % num_heads:
        raise ValueError(f"num_heads: expected a divisor of hidden_size {hidden_size}, got {num_heads}")


class _XLSTM(StackedLayers):
    state_class = SLSTMState

    def _setup(self, input_size, hidden_size, num_layers, num_heads, bias, batch_first, specs, device, dtype):
        self.input_size = check.positive_int("input_size", input_size)
        self.hidden_size, self.num_layers, self.num_heads = hidden_size, num_layers, num_heads
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.specs = specs
        self._trace_sink = None
        register_layers(self, specs, input_size, hidden_size, device, dtype)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """U(−1/√H, 1/√H); then the forget-gate biases (see the module docstring)."""
        super().reset_parameters()
        if self.bias:
            with torch.no_grad():
                for k in range(self.num_layers):
                    self._init_forget(getattr(self, f"bias_ih_l{k}"))

    # Whole-module pickling stores the specs as plain dicts, so that torch.load(...,
    # weights_only=True) needs only the module class allow-listed (as for lstmkit.LSTM).
    def __getstate__(self):
        state = self.__dict__.copy()
        state["specs"] = [dataclasses.asdict(s) for s in state["specs"]]
        return state

    def __setstate__(self, state):
        state = dict(state)
        state["specs"] = [self.spec_class(**s) for s in state["specs"]]
        super().__setstate__(state)

    def _state_shapes(self, B: int) -> list[tuple[int, ...]]:
        raise NotImplementedError

    def _fresh(self, B: int, ref: Tensor):
        shapes = self._state_shapes(B)
        return self.state_class(*(ref.new_full((self.num_layers, *s), M_FRESH if f == "m" else 0.0)
                                  for f, s in zip(self.state_class._fields, shapes)))

    def _parse(self, input, state, lengths):
        """-> x (T, B, D) in the compute dtype, state (each with a B axis), mask, unbatched, low."""
        x, unbatched = check.sequence(input, self.batch_first)
        T, B = x.shape[:2]
        check.features(x, self.input_size, input)
        ref = self.weight_ih_l0
        check.like_params("input", x, ref)
        name = self.state_class.__name__
        if state is None:
            state = self._fresh(B, x)
        else:
            if not isinstance(state, tuple) or len(state) != len(self.state_class._fields):
                raise TypeError(f"state: expected a {name}{self.state_class._fields} or None, "
                                f"got {type(state).__name__}")
            parts = []
            for f, t, s in zip(self.state_class._fields, state, self._state_shapes(B)):
                check.tensor(f"state.{f}", t)
                want = (self.num_layers, *(s[1:] if unbatched else s))
                check.shape(f"state.{f}", t, want, f"(num_layers, {'' if unbatched else 'B, '}…) of {name}")
                check.like_params(f"state.{f}", t, ref)
                parts.append(t.unsqueeze(1) if unbatched else t)
            state = self.state_class(*parts)
        mask = None if lengths is None else check.lengths_mask(lengths, B, T, x.device)
        low = ref.dtype in _LOW_PRECISION                 # compute in float32, as lstmkit.LSTM
        if low:
            x, state = x.float(), self.state_class(*(t.float() for t in state))
        return x, state, mask, unbatched, low

    def _finish(self, y: Tensor, finals: list, unbatched: bool, low: bool):
        state = self.state_class(*(torch.stack(ts) for ts in zip(*finals)))
        dtype = self.weight_ih_l0.dtype
        if low:
            y, state = y.to(dtype), self.state_class(*(t.to(dtype) for t in state))
        if unbatched:
            return y.squeeze(1), self.state_class(*(t.squeeze(1) for t in state))
        return (y.transpose(0, 1) if self.batch_first else y), state

    def _params(self, k: int, low: bool) -> dict[str, Tensor]:
        p = self.layer_params(k)
        return {s: t.float() for s, t in p.items()} if low else p


class sLSTM(_XLSTM):  # noqa: N801  (the paper's name)
    """sLSTM layers (Beck et al. 2024): exponential input gate, normaliser n, stabiliser m,
    block-diagonal recurrent heads (``cells.xlstm``). forward(x, state=None, *, lengths=None)
    -> (output (T, B, H), SLSTMState(h, c, n, m) each (L, B, H)).

    num_heads: NH heads of the recurrent matrix (divides H).  dropout: between layers, in training.
    backend: "reference" (autograd through the step loop), "fused" (hand-written BPTT, C++ loop on
    the CPU), "auto" (fused where it runs, else reference).  forget: "sigmoid" (f = σ(f̃)) or "exp"
    (f = e^{f̃}), the paper's two choices."""

    state_class = SLSTMState
    spec_class = SLSTMSpec

    def __init__(self, input_size, hidden_size, num_layers=1, num_heads=4, bias=True, batch_first=False,
                 dropout=0.0, device=None, dtype=None, *, backend="auto", forget="sigmoid"):
        super().__init__()
        self.dropout = check.rate("dropout", dropout)
        self.backend = check.choice("backend", backend, BACKENDS)
        self.forget = check.choice("forget", forget, FORGET)
        _check_sizes(hidden_size, num_layers, num_heads)
        specs = [SLSTMSpec(hidden_size, num_heads, bool(bias), forget)] * num_layers
        self._setup(input_size, hidden_size, num_layers, num_heads, bias, batch_first, specs, device, dtype)

    def _init_forget(self, b: Tensor) -> None:
        H, NH = self.hidden_size, self.num_heads
        f = torch.linspace(3.0, 6.0, H // NH, dtype=torch.float64).repeat(NH)
        b[H:2 * H] = f if self.forget == "sigmoid" else torch.nn.functional.logsigmoid(f)

    def _state_shapes(self, B: int):
        return [(B, self.hidden_size)] * 4

    def extra_repr(self) -> str:
        return (f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, num_heads={self.num_heads}, "
                f"bias={self.bias}, batch_first={self.batch_first}, dropout={self.dropout}, "
                f"backend={self.backend!r}, forget={self.forget!r}")

    def _engine(self, x: Tensor):
        """Eager: the backend's engine. ``torch.export`` (and the ONNX exporter): the step inside
        torch's scan operator, T symbolic (``slstm.traced``); ``torch.compile``: the reference
        loop, which Dynamo traces (the fused autograd Function it cannot), T specialised."""
        if torch.compiler.is_exporting():
            return slstm_engine.traced
        if self.backend == "reference" or torch.compiler.is_compiling():
            return slstm_engine.run
        from .engines.fused import slstm as fused
        if self.backend == "fused" or fused.supports(x):
            return fused.run
        return slstm_engine.run

    def forward(self, input: Tensor, state: SLSTMState | None = None, *, lengths=None):
        """input (T, B, D), (B, T, D) with batch_first, or (T, D); state: SLSTMState, each (L, B, H)
        ((L, H) unbatched) or None. -> output (T, B, H), SLSTMState."""
        x, state, mask, unbatched, low = self._parse(input, state, lengths)
        run = self._engine(x)
        finals = []
        for k, spec in enumerate(self.specs):
            r = run(spec, x, SLSTMState(*(t[k] for t in state)), self._params(k, low), mask=mask,
                    record=self._trace_sink is not None)
            if r.record is not None:
                self._trace_sink(k, 0, r.record)
            finals.append(r.state)
            x = r.output
            if self.dropout and self.training and k < self.num_layers - 1:
                x = nn.functional.dropout(x, self.dropout, True)
        return self._finish(x, finals, unbatched, low)


class mLSTM(_XLSTM):  # noqa: N801  (the paper's name)
    """mLSTM layers (Beck et al. 2024): matrix memory C per head, covariance update v kᵀ, gates
    from x only (``cells.xlstm``). forward(x, state=None, *, lengths=None) -> (output (T, B, H),
    MLSTMState(C, n, m)).

    mode: "recurrent" (the step in a loop: the oracle), "parallel" (one causal T × T decay matrix),
    "chunkwise" (chunks of ``chunk_size`` steps, linear in T), "auto" (recurrent for one step,
    else chunkwise). All modes compute the same function (``engines.mlstm``)."""

    state_class = MLSTMState
    spec_class = MLSTMSpec

    def __init__(self, input_size, hidden_size, num_layers=1, num_heads=4, bias=True, batch_first=False,
                 device=None, dtype=None, *, mode="auto", chunk_size=64):
        super().__init__()
        self.mode = check.choice("mode", mode, mlstm_engine.MODES)
        self.chunk_size = mlstm_engine.check_chunk(chunk_size)
        _check_sizes(hidden_size, num_layers, num_heads)
        specs = [MLSTMSpec(hidden_size, num_heads, bool(bias))] * num_layers
        self._setup(input_size, hidden_size, num_layers, num_heads, bias, batch_first, specs, device, dtype)

    def _init_forget(self, b: Tensor) -> None:
        NH = self.num_heads
        b[-NH:] = torch.linspace(3.0, 6.0, NH, dtype=torch.float64)

    def _state_shapes(self, B: int):
        NH, d = self.num_heads, self.hidden_size // self.num_heads
        return [(B, NH, d, d), (B, NH, d), (B, NH)]

    def extra_repr(self) -> str:
        return (f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, num_heads={self.num_heads}, "
                f"bias={self.bias}, batch_first={self.batch_first}, mode={self.mode!r}, chunk_size={self.chunk_size}")

    def forward(self, input: Tensor, state: MLSTMState | None = None, *, lengths=None):
        """input (T, B, D), (B, T, D) with batch_first, or (T, D); state: MLSTMState or None.
        -> output (T, B, H), MLSTMState."""
        x, state, mask, unbatched, low = self._parse(input, state, lengths)
        if torch.compiler.is_exporting():                  # a graph with a symbolic T (engines.mlstm)
            mode = "traced"
        else:
            mode = self.mode if self.mode != "auto" else ("recurrent" if x.shape[0] == 1 else "chunkwise")
        finals = []
        for k, spec in enumerate(self.specs):
            r = mlstm_engine.run(spec, x, MLSTMState(*(t[k] for t in state)), self._params(k, low), mask=mask,
                                 mode=mode, chunk_size=self.chunk_size, record=self._trace_sink is not None)
            if r.record is not None:
                self._trace_sink(k, 0, r.record)
            finals.append(r.state)
            x = r.output
        return self._finish(x, finals, unbatched, low)


__all__ = ["sLSTM", "mLSTM", "SLSTMState", "MLSTMState"]
