"""Argument checks shared by the modules: every message names the argument, what was
expected and what was given, so that no bad input reaches torch as a bare shape error."""
from __future__ import annotations

from numbers import Real

import torch
from torch import Tensor


def positive_int(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value}")
    return value


def rate(name: str, value) -> float:
    """A probability in [0, 1) (dropout, zoneout, recurrent dropout)."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name}: expected a float in [0, 1), got {type(value).__name__} {value!r}")
    if not 0.0 <= float(value) < 1.0:
        raise ValueError(f"{name}: expected a float in [0, 1), got {value}")
    return float(value)


def choice(name: str, value, options) -> str:
    if value not in options:
        raise ValueError(f"{name}: expected one of {', '.join(map(repr, options))}, got {value!r}")
    return value


def peepholes(value, gates: str) -> str:
    """False/True/"" /subset of "ifo" -> canonical subset string in i, f, o order."""
    if value is False or value is None:
        return ""
    if value is True:
        value = "ifo"
    if not isinstance(value, str):
        raise TypeError(f"peepholes: expected a bool or a string of gate letters from 'ifo', "
                        f"got {type(value).__name__} {value!r}")
    bad = sorted(set(value) - set("ifo"))
    if bad or len(set(value)) != len(value):
        raise ValueError(f"peepholes: expected distinct gate letters from 'ifo', got {value!r}")
    missing = [g for g in value if g not in gates]
    if missing:
        raise ValueError(f"peepholes: gate(s) {''.join(missing)!r} have no weights in this "
                         f"configuration (gates with weights: {gates!r}); a peephole needs its own gate")
    return "".join(g for g in "ifo" if g in value)


def tensor(name: str, value) -> Tensor:
    if not isinstance(value, Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(value).__name__}")
    return value


def shape(name: str, t: Tensor, expected: tuple[int, ...], meaning: str) -> None:
    if tuple(t.shape) != tuple(expected):
        raise ValueError(f"{name}: expected shape {tuple(expected)} {meaning}, got {tuple(t.shape)}")


def like_params(name: str, t: Tensor, ref: Tensor, same_dtype: bool = True) -> None:
    """t must share the parameters' floating dtype (any floating dtype without ``same_dtype``,
    as under torch.autocast) and device."""
    if same_dtype and t.dtype != ref.dtype:
        raise TypeError(f"{name}: expected dtype {ref.dtype} (the parameters' dtype), got {t.dtype}")
    if not t.dtype.is_floating_point:
        raise TypeError(f"{name}: expected a floating-point dtype, got {t.dtype}")
    if t.device != ref.device:
        raise ValueError(f"{name}: expected device {ref.device} (the parameters' device), got {t.device}")


def sequence(value, batch_first: bool) -> tuple[Tensor, bool]:
    """A recurrent module's input: (T, B, D), (B, T, D) with ``batch_first``, or (T, D)
    unbatched, with at least one step -> (x as (T, B, D), unbatched)."""
    x = tensor("input", value)
    if x.dim() not in (2, 3):
        raise ValueError(f"input: expected 3 dimensions ({'B, T' if batch_first else 'T, B'}, D) "
                         f"or 2 (T, D) for one unbatched sequence, got shape {tuple(x.shape)}")
    unbatched = x.dim() == 2
    x = x.unsqueeze(1) if unbatched else (x.transpose(0, 1) if batch_first else x)
    if x.shape[0] == 0:
        raise ValueError(f"input: expected at least one time step, got shape {tuple(value.shape)}")
    return x, unbatched


def features(x: Tensor, input_size: int, given: Tensor) -> None:
    """The last dimension of (T, B, D) ``x`` is ``input_size`` (``given``: the input as passed)."""
    if x.shape[-1] != input_size:
        raise ValueError(f"input: expected {input_size} features (input_size) in the last "
                         f"dimension, got {x.shape[-1]} (shape {tuple(given.shape)})")


def lengths_mask(value, batch: int, steps: int, device) -> Tensor:
    """``lengths`` (any order) as a (T, B, 1) bool mask, True on each sequence's valid steps."""
    lens = lengths(value, batch, steps, enforce_sorted=False)
    return (torch.arange(steps)[:, None] < lens[None, :]).unsqueeze(-1).to(device)


def lengths(value, batch: int, steps: int, enforce_sorted: bool) -> Tensor:
    """Per-sequence lengths: B ints in [1, T], descending when enforce_sorted."""
    t = torch.as_tensor(value)
    if t.dtype.is_floating_point or t.dtype == torch.bool:
        raise TypeError(f"lengths: expected integers, got dtype {t.dtype}")
    if t.dim() != 1 or t.numel() != batch:
        raise ValueError(f"lengths: expected {batch} values (one per sequence), got shape {tuple(t.shape)}")
    if t.numel() and (t.min() < 1 or t.max() > steps):
        raise ValueError(f"lengths: expected values in [1, {steps}] (the padded length), "
                         f"got min {int(t.min())}, max {int(t.max())}")
    if enforce_sorted and bool((t[1:] > t[:-1]).any()):
        raise ValueError(f"lengths: expected descending order because enforce_sorted=True, "
                         f"got {t.tolist()}; pass enforce_sorted=False to accept any order")
    return t.to("cpu", torch.int64)


def batch_sizes(t: Tensor) -> None:
    """A PackedSequence's batch_sizes: one positive count per time step, non-increasing
    (sequences sorted by length, longest first), as ``pack_padded_sequence`` makes them."""
    if t.dim() != 1 or t.numel() == 0:
        raise ValueError(f"input.batch_sizes: expected a 1-D tensor with one count per time step, "
                         f"got shape {tuple(t.shape)}")
    if bool((t < 1).any()) or bool((t[1:] > t[:-1]).any()):
        raise ValueError(f"input.batch_sizes: expected positive, non-increasing counts (longest "
                         f"sequence first), got {t.tolist()}")
