"""The nn.Module front: LSTM, GRU, RNN and DepthGatedLSTM with torch's signatures.

Stacking, directions, packed and padded sequences, inter-layer dropout, zoneout and
recurrent-dropout masks and state handling are written here once, for every family;
the maths of one step lives in ``cells`` and the time loop in ``engines``.
"""
from __future__ import annotations

import functools

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pad_packed_sequence

from . import _checks as check
from .cells import PARAM_NAMES, GRUSpec, RNNSpec
from .engines import BACKENDS, Noise, custom_op, fused, get_engine, reference, second_order, traced
from .specs import LOW_PRECISION, DropIn, LSTMState, autocasting, init_parameter, lstm_spec, output_dtype
from .specs import reject_options, set_forget_bias


class _RNNBase(DropIn, nn.Module):
    """Shared front of every multi-layer module. Subclasses pass one spec per layer."""

    # the output dtype under torch.autocast: "autocast" (its dtype) or "input" (the input's),
    # as torch.nn's module of the family returns it (torch 2.13, CPU: LSTM and RNN "autocast",
    # their GEMMs being autocast ops; GRU "input")
    autocast_output = "autocast"

    def __init__(self, specs, input_size, num_layers, batch_first, dropout, bidirectional,
                 device, dtype, zoneout=0.0, recurrent_dropout=0.0, forget_bias=0.0, backend="auto"):
        super().__init__()
        self.input_size = check.positive_int("input_size", input_size)
        self.num_layers = num_layers
        self.batch_first = bool(batch_first)
        self.dropout = check.rate("dropout", dropout)
        self.bidirectional = bool(bidirectional)
        self.zoneout = check.rate("zoneout", zoneout)
        self.recurrent_dropout = check.rate("recurrent_dropout", recurrent_dropout)
        self.backend = check.choice("backend", backend, BACKENDS)
        self.forget_bias = float(forget_bias)
        self.specs = specs
        self.hidden_size = specs[0].hidden_size
        self.proj_size = getattr(specs[0], "proj_size", 0)
        self._names = {}                          # (layer, direction) -> {short: param name}
        self._trace_sink = None
        dirs = 2 if self.bidirectional else 1
        for k, spec in enumerate(specs):
            in_size = input_size if k == 0 else spec.out_size * dirs
            for d in range(dirs):
                names = {}
                for short, shape in spec.param_shapes(in_size).items():
                    name = f"{PARAM_NAMES[short]}_l{k}{'_reverse' if d else ''}"
                    self.register_parameter(name, nn.Parameter(torch.empty(shape, device=device, dtype=dtype)))
                    names[short] = name
                self._names[k, d] = names
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for (k, d), names in self._names.items():
            p = self.layer_params(k, d)
            for short, t in p.items():
                init_parameter(short, t, self.hidden_size)
            set_forget_bias(self.specs[k], p, self.forget_bias)

    def layer_params(self, layer: int, direction: int = 0) -> dict[str, Tensor]:
        """Short symbol -> parameter of one layer-direction (the engines' view). Read from
        ``_parameters`` where it is there (a tenth of ``getattr``'s cost, which goes through
        ``Module.__getattr__``), else by ``getattr`` (a parametrization's property, say)."""
        return {short: self._param(name) for short, name in self._names[layer, direction].items()}

    def _param(self, name: str) -> Tensor:
        own = self._parameters
        return own[name] if name in own else getattr(self, name)

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    def extra_repr(self) -> str:
        s = self.specs[-1]
        return (f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, "
                f"bidirectional={self.bidirectional}, spec={s}, backend={self.backend!r}")

    # ---- forward -------------------------------------------------------------------
    def _parse_input(self, input, lengths, enforce_sorted):
        """-> x (T, B, D), lengths or None, unbatched flag, packed input or None."""
        if isinstance(input, PackedSequence):
            if lengths is not None:
                raise ValueError("lengths: expected None with a PackedSequence input (it carries its own)")
            check.batch_sizes(input.batch_sizes)
            x, lens = pad_packed_sequence(input)
            return x, lens, False, input
        x, unbatched = check.sequence(input, self.batch_first)
        lens = None if lengths is None else check.lengths(lengths, x.shape[1], x.shape[0], enforce_sorted)
        return x, lens, unbatched, None

    def _initial_state(self, hx, batch: int, unbatched: bool, ref: Tensor, amp: bool) -> list[Tensor]:
        n = self.num_layers * self.num_directions
        sizes = self.specs[0].state_sizes
        names = ("h_0", "c_0") if len(sizes) == 2 else ("h_0",)
        if hx is None:
            return [ref.new_zeros(n, batch, s) for s in sizes]
        if len(sizes) == 2:
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                raise TypeError(f"hx: expected a tuple (h_0, c_0), got {type(hx).__name__}")
            hx = tuple(hx)
        else:
            hx = (hx,)
        out = []
        for name, t, s in zip(names, hx, sizes):
            check.tensor(name, t)
            want = (n, s) if unbatched else (n, batch, s)
            if t.shape != want:                   # the message only when it is needed
                check.shape(name, t, want, "(num_layers * num_directions, " + ("" if unbatched else "B, ") +
                            f"{'proj_size' if s != self.hidden_size else 'hidden_size'})")
            check.like_params(name, t, ref, same_dtype=not amp)
            out.append(t.unsqueeze(1) if unbatched else t)
        return out

    def _noise(self, spec, T: int, B: int, like: Tensor) -> Noise:
        """Zoneout keeps and recurrent-dropout mask: sampled in training, expectations in eval."""
        zo, rd = self.zoneout, self.recurrent_dropout
        if not self.training:
            return Noise(keep_c=zo or None, keep_h=zo or None)
        sizes = spec.state_sizes
        keep = [torch.bernoulli(like.new_full((T, B, s), zo)) if zo else None for s in sizes]
        drop = torch.bernoulli(like.new_full((B, sizes[0]), 1 - rd)) / (1 - rd) if rd else None
        return Noise(keep_c=keep[1] if len(keep) == 2 else None, keep_h=keep[0], drop=drop)

    def _engine_run(self, spec, backward: bool = True):
        """Eager: the backend's engine (a fast one behind ``second_order.guard``, so that a
        gradient of a gradient is the reference engine's), or, where no ``backward`` can follow
        (grad disabled, or no input requiring grad), the fused engine's forward alone
        (``fused.infer.run``: same results, a fraction of a streaming step's cost); under
        torch.func transforms the reference engine. ``torch.export`` (and the ONNX exporter,
        built on it) traces the scan loop, a graph with a symbolic T; ``torch.compile`` calls
        the eager engine through one opaque operator (see ``engines.custom_op`` for why not
        the scan)."""
        if torch.compiler.is_exporting():
            return traced.run
        engine = get_engine(self.backend, spec)
        if torch.compiler.is_compiling():
            return functools.partial(custom_op.run, engine=engine.__name__.rpartition(".")[2])
        if engine is reference or torch._C._functorch.peek_interpreter_stack() is not None:
            return reference.run          # torch.func transforms (grad, vmap, jvp) trace plain autograd
        if not backward:
            return fused.infer.run
        return functools.partial(second_order.guard, engine.run)     # double backward: see there

    def forward(self, input, hx=None, *, lengths=None, enforce_sorted: bool = False):
        """torch's forward; ``lengths`` (padded input only) freezes each sequence's state past
        its length and zeroes the padded outputs, like packing without the ceremony.

        bfloat16 and float16 modules compute in float32 (cell state, GEMM sums): parameters,
        input and state are cast up as they enter, the results cast back, and autograd through
        the casts gives the gradients in the parameters' dtype. Under ``torch.autocast`` the
        input and state may have any floating dtype; the module runs its float32 path with
        autocast off inside and returns the dtype torch.nn's module of its family returns there
        (``autocast_output``)."""
        x, lens, unbatched, packed = self._parse_input(input, lengths, enforce_sorted)
        ref = self._param("weight_ih_l0")
        check.features(x, self.input_size, x)
        amp = autocasting(x, ref)
        check.like_params("input", x, ref, same_dtype=not amp)
        T, B = x.shape[:2]
        state0 = self._initial_state(hx, B, unbatched, ref, amp)
        mask = None if lens is None else (torch.arange(T)[:, None] < lens[None, :]).unsqueeze(-1).to(x.device)
        if not amp and ref.dtype not in LOW_PRECISION:
            y, h_n = self._layers(x, state0, mask, False)
        else:
            out = output_dtype(x, ref, amp, self.autocast_output)
            with torch.autocast(x.device.type, enabled=False):
                y, h_n = self._layers(x.float(), [s.float() for s in state0], mask, True)
            y, h_n = y.to(out), [h.to(out) for h in h_n]
        return self._format(y, h_n, unbatched, packed)

    def _layers(self, x: Tensor, state0: list[Tensor], mask, to_float32: bool) -> tuple[Tensor, list[Tensor]]:
        """Every layer-direction through its engine, the parameters cast to float32 where
        ``to_float32``. -> output (T, B, ·), [h_n, (c_n)] (L·dirs, B, ·)."""
        T, B = x.shape[:2]
        finals, below = [], None
        for k, spec in enumerate(self.specs):
            outs, cells = [], []
            want_cells = getattr(self.specs[-1], "depth_gate", False) and k < self.num_layers - 1
            for d in range(self.num_directions):
                idx = k * self.num_directions + d
                p = self.layer_params(k, d)
                if to_float32:
                    p = {short: t.float() for short, t in p.items()}
                state = tuple(s[idx] for s in state0)
                # c_low needs no look: it requires grad only where x, the layer below's output, does
                backward = torch.is_grad_enabled() and any(t.requires_grad for t in (x, *state, *p.values()))
                r = self._engine_run(spec, backward)(
                    spec, x, state, p, mask=mask, reverse=bool(d), noise=self._noise(spec, T, B, x),
                    c_low=None if below is None else below[d], want_cells=want_cells,
                    record=self._trace_sink is not None)
                outs.append(r.output)
                cells.append(r.cells)
                finals.append(r.state)
                if r.record is not None:
                    self._trace_sink(k, d, r.record)
            x = outs[0] if len(outs) == 1 else torch.cat(outs, -1)
            below = cells if want_cells else None
            if self.dropout and self.training and k < self.num_layers - 1:
                x = nn.functional.dropout(x, self.dropout, True)
        return x, [torch.stack([f[j] for f in finals]) for j in range(len(finals[0]))]

    def _format(self, y: Tensor, h_n: list[Tensor], unbatched: bool, packed):
        if packed is not None:
            ys = y if packed.sorted_indices is None else y.index_select(1, packed.sorted_indices)
            data = torch.cat([ys[t, :n] for t, n in enumerate(packed.batch_sizes.tolist())])
            y = PackedSequence(data, packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices)
        elif unbatched:
            y, h_n = y.squeeze(1), [h.squeeze(1) for h in h_n]
        elif self.batch_first:
            y = y.transpose(0, 1)
        return (y, LSTMState(*h_n)) if len(h_n) == 2 else (y, h_n[0])


class LSTM(_RNNBase):
    """Multi-layer LSTM, drop-in for ``torch.nn.LSTM``, with every variant of ``cells.lstm``.

    peepholes: False, True (= "ifo") or a subset string.  coupled: CIFG (i = 1 − f).
    ablate: any of "input_gate", "forget_gate", "output_gate", "input_activation",
    "output_activation".  layer_norm: per-gate LN.  forget_bias: initial b_f.
    zoneout, recurrent_dropout: rates in [0, 1).  backend: "auto" | "reference" | "fused".
    Weight layout as torch: weight_ih_l{k} = (W_ii|W_if|W_ig|W_io), rows of ablated gates absent.
    """

    depth_gated = False                   # layers k ≥ 1 read the cell below (DepthGatedLSTM)

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, proj_size=0, device=None, dtype=None, *,
                 peepholes=False, coupled=False, ablate=(), layer_norm=False, forget_bias=0.0,
                 zoneout=0.0, recurrent_dropout=0.0, backend="auto"):
        check.positive_int("hidden_size", hidden_size)
        check.positive_int("num_layers", num_layers)
        specs = [lstm_spec(hidden_size, proj_size, bias, peepholes, coupled, ablate, layer_norm,
                           forget_bias, depth_gate=self.depth_gated and k > 0) for k in range(num_layers)]
        super().__init__(specs, input_size, num_layers, batch_first, dropout, bidirectional,
                         device, dtype, zoneout, recurrent_dropout, forget_bias, backend)


class DepthGatedLSTM(LSTM):
    """Depth-gated LSTM (Yao et al. 2015, arXiv 1508.03790): an LSTM stack whose layers k ≥ 1
    take the cell state of the layer below through a depth gate d (see ``cells.depth_gated``).
    Takes every option of ``LSTM``; needs num_layers ≥ 2."""

    depth_gated = True

    def __init__(self, input_size, hidden_size, num_layers=2, *args, **kwargs):
        check.positive_int("num_layers", num_layers)
        if num_layers < 2:
            raise ValueError(f"num_layers: a depth gate joins two stacked layers, expected >= 2, got {num_layers}")
        super().__init__(input_size, hidden_size, num_layers, *args, **kwargs)


class GRU(_RNNBase):
    """Multi-layer GRU, drop-in for ``torch.nn.GRU``. reset_after=True is torch's layout;
    False is Cho et al. 2014 (r applied to h before W_hn). layer_norm, zoneout,
    recurrent_dropout and backend as for ``LSTM``."""

    autocast_output = "input"

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, device=None, dtype=None, *, reset_after=True,
                 layer_norm=False, zoneout=0.0, recurrent_dropout=0.0, backend="auto", **unsupported):
        reject_options("GRU", unsupported)
        check.positive_int("hidden_size", hidden_size)
        check.positive_int("num_layers", num_layers)
        spec = GRUSpec(hidden_size, bool(bias), bool(reset_after), bool(layer_norm))
        super().__init__([spec] * num_layers, input_size, num_layers, batch_first, dropout,
                         bidirectional, device, dtype, zoneout, recurrent_dropout, 0.0, backend)


class RNN(_RNNBase):
    """Multi-layer Elman RNN, drop-in for ``torch.nn.RNN`` (same positional order)."""

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, device=None, dtype=None, *,
                 backend="auto", **unsupported):
        reject_options("RNN", unsupported)
        check.positive_int("hidden_size", hidden_size)
        check.positive_int("num_layers", num_layers)
        spec = RNNSpec(hidden_size, bool(bias), check.choice("nonlinearity", nonlinearity, ("tanh", "relu")))
        super().__init__([spec] * num_layers, input_size, num_layers, batch_first, dropout,
                         bidirectional, device, dtype, backend=backend)
