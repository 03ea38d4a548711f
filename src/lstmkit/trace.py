"""Opt-in recording of every gate, the cell state and the hidden state.

    with lstmkit.trace(model) as tr:
        model(x)
    tr[0].f            # layer 0, forward direction: forget gate, (T, B, H)
    tr[1, "reverse"].c # layer 1, backward direction: cell states
    tr["encoder", 0, 0].h   # when the model holds several lstmkit modules

Letters: i, f, g, o (and d for a depth gate) for LSTMs; r, z, n for GRUs; c and h for
every state; MinLSTM i, f (before normalising), g (the paper's h̃) and h, MinGRU z, g (h̃)
and h (``lstmkit.parallel``, direction 0 only). A gate a variant derives or removes holds its
effective value (CIFG's i is 1 − f, an ablated gate is all ones). Padded steps hold zeros. Calling the model several
times inside one ``trace`` concatenates along time, so a text fed in chunks (or a cell
stepped by hand) gives one record. Recording reads values the forward computes anyway,
detached: it never changes the numbers.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import torch
from torch import Tensor, nn

_DIRECTIONS = {0: 0, 1: 1, "forward": 0, "reverse": 1}


class GateTrace(Mapping):
    """One layer-direction's record: letter -> (T, B, H) tensor, also as attributes."""

    def __init__(self, record: dict[str, Tensor]):
        self._record = dict(record)

    def __getitem__(self, letter: str) -> Tensor:
        return self._record[letter]

    def __getattr__(self, letter: str) -> Tensor:
        try:
            return self.__dict__["_record"][letter]
        except KeyError:
            raise AttributeError(f"GateTrace has no record {letter!r}; it holds {''.join(self._record)}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._record)

    def __len__(self) -> int:
        return len(self._record)

    def __repr__(self) -> str:
        shape = tuple(next(iter(self._record.values())).shape) if self._record else ()
        return f"GateTrace({', '.join(self._record)}; shape {shape})"

    def _extend(self, record: dict[str, Tensor]) -> None:
        for k, v in record.items():
            self._record[k] = torch.cat([self._record[k], v]) if k in self._record else v


class Trace:
    """All records of one ``trace`` block, keyed by (module name, layer, direction)."""

    def __init__(self):
        self.records: dict[tuple[str, int, int], GateTrace] = {}

    def _sink(self, module_name: str):
        def add(layer: int, direction: int, record: dict[str, Tensor]) -> None:
            key = (module_name, layer, direction)
            if key in self.records:
                self.records[key]._extend(record)
            else:
                self.records[key] = GateTrace(record)
        return add

    def keys(self):
        return self.records.keys()

    def __getitem__(self, key) -> GateTrace:
        key = key if isinstance(key, tuple) else (key,)
        names = sorted({k[0] for k in self.records})
        if key and isinstance(key[0], str) and key[0] not in _DIRECTIONS:
            name, rest = key[0], key[1:]
        elif len(names) == 1:
            name, rest = names[0], key
        else:
            raise KeyError(f"trace: several modules were recorded ({names}); index as tr[name, layer, direction]")
        layer = rest[0] if rest else 0
        direction = _DIRECTIONS.get(rest[1] if len(rest) > 1 else 0)
        if direction is None:
            raise KeyError(f"trace: direction must be 0, 1, 'forward' or 'reverse', got {rest[1]!r}")
        try:
            return self.records[name, layer, direction]
        except KeyError:
            raise KeyError(f"trace: no record for module {name!r} layer {layer} direction {direction}; "
                           f"recorded: {sorted(self.records)}") from None


@contextmanager
def trace(model: nn.Module):
    """Record gates of every lstmkit recurrent module inside ``model`` during the block."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    mods = [(name, m) for name, m in model.named_modules() if hasattr(m, "_trace_sink")]
    if not mods:
        raise TypeError(f"model: expected a module containing lstmkit LSTM/GRU/RNN layers or cells, "
                        f"found none in {type(model).__name__}")
    tr = Trace()
    for name, m in mods:
        m._trace_sink = tr._sink(name)
    try:
        yield tr
    finally:
        for _, m in mods:
            m._trace_sink = None
