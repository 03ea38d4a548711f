"""Shared test helpers: run a module forward + backward and collect every gradient."""
from __future__ import annotations

import torch
from torch.nn.utils.rnn import PackedSequence

TOL = {torch.float32: 1e-5, torch.float64: 1e-10}


def _flat(out):
    """Tensors of a module's return value, in a fixed order (output first)."""
    y, state = out
    y = y.data if isinstance(y, PackedSequence) else y
    return [y, *(state if isinstance(state, tuple) else (state,))]


def run_with_grads(module, x, hx=None, seed=0, **kw):
    """-> dict name -> tensor: outputs, final states, and d(loss)/d(input, params, states).

    The loss weights every returned tensor with fixed random numbers so that every
    gradient path (output, h_n, c_n) is exercised.
    """
    module.zero_grad(set_to_none=True)
    leaves = {}
    if isinstance(x, PackedSequence):
        data = x.data.detach().clone().requires_grad_()
        leaves["input"] = data
        x = PackedSequence(data, x.batch_sizes, x.sorted_indices, x.unsorted_indices)
    else:
        x = x.detach().clone().requires_grad_()
        leaves["input"] = x
    if hx is not None:
        hx = tuple(h.detach().clone().requires_grad_() for h in hx) if isinstance(hx, tuple) \
            else hx.detach().clone().requires_grad_()
        for i, h in enumerate(hx if isinstance(hx, tuple) else (hx,)):
            leaves[f"hx{i}"] = h
    out = module(x, hx, **kw)
    flat = _flat(out)
    g = torch.Generator().manual_seed(seed)
    loss = sum((t * torch.randn(t.shape, generator=g, dtype=t.dtype).to(t.device)).sum() for t in flat)
    loss.backward()
    res = {f"out{i}": t.detach() for i, t in enumerate(flat)}
    res.update({f"d_{k}": v.grad for k, v in leaves.items()})
    res.update({f"d_{n}": p.grad for n, p in module.named_parameters()})
    return res


def max_diff(a: dict, b: dict) -> dict:
    assert a.keys() == b.keys(), (sorted(a), sorted(b))
    out = {}
    for k in a:
        assert a[k] is not None and b[k] is not None, f"missing gradient {k}"
        assert a[k].shape == b[k].shape, (k, a[k].shape, b[k].shape)
        out[k] = (a[k] - b[k]).abs().max().item() if a[k].numel() else 0.0
    return out


def assert_close_all(a: dict, b: dict, tol: float) -> float:
    d = max_diff(a, b)
    worst = max(d, key=d.get)
    assert d[worst] <= tol, f"{worst}: max |diff| {d[worst]:.3e} > {tol:.0e} (all: {d})"
    return d[worst]
