"""MKL-packed weights, kept between calls while the weight is unchanged.

Packing a weight for MKL's packed GEMM (``_mkl_reorder_linear_weight``) reads and rewrites
all of it. Over a long sequence that is paid once for T steps; at a streaming step (T = 1,
state carried across calls) it is paid every step, for each weight, and at H = 512 it cost
more than the step's two GEMMs together. So the packed copy is kept and reused:

    key     the weight's storage owner (the tensor, or the base of a view such as the GRU's
            W_h[:2H]), held weakly so that an entry goes with its weight, and the view's
            offset, shape and strides
    valid   while the batch size, the version counter (bumped by every in-place change that
            autograd sees: optimiser steps, ``copy_`` under no_grad, ``load_state_dict``,
            ``nn.init``) and the data pointer (``p.data = t``) are those it was packed at

One packed copy per view: a new batch size or a new version replaces it (the stale copy is
freed before the new one is made, so peak memory is as without the cache). A change written
through ``p.data`` in place is invisible to the version counter, as it is to autograd; call
``clear()`` after one. Inference tensors (made under ``torch.inference_mode``) have no
version counter and are packed afresh at each call.
"""
from __future__ import annotations

import weakref
from typing import Callable

from torch import Tensor

_CACHE: dict[int, tuple[weakref.ref, dict]] = {}     # id(owner) -> (weakref(owner), {view: (stamp, packed)})


def cached(w: Tensor, batch: int, pack: Callable[[Tensor, int], Tensor | None]) -> Tensor | None:
    """``pack(w, batch)``, or the copy it made at an earlier call while still valid."""
    owner = w if w._base is None else w._base
    if owner.is_inference():
        return pack(w, batch)
    key = id(owner)
    entry = _CACHE.get(key)
    if entry is None or entry[0]() is not owner:
        entry = _CACHE[key] = (weakref.ref(owner, lambda ref, key=key: _forget(key, ref)), {})
    views = entry[1]
    view = (w.storage_offset(), tuple(w.shape), tuple(w.stride()))
    stamp = (batch, w._version, w.data_ptr())
    hit = views.pop(view, None)
    if hit is not None and hit[0] == stamp:
        views[view] = hit
        return hit[1]
    del hit                                          # free the stale copy before packing anew
    got = pack(w, batch)
    if got is not None:
        views[view] = (stamp, got)
    return got


def clear() -> None:
    """Forget every packed copy (after changing a weight in place through ``.data``)."""
    _CACHE.clear()


def _forget(key: int, ref: weakref.ref) -> None:
    """The owner is gone: drop its entry (unless the id already names a newer owner)."""
    if key in _CACHE and _CACHE[key][0] is ref:
        del _CACHE[key]
