"""torch.func on lstmkit modules, with torch.nn as the referee: a forward-mode derivative
(jvp), a batch of models' inputs mapped by vmap, and the gradient through functional_call,
each equal to what the same transform gives on the torch.nn module with the same weights."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from lstmkit.variants import VARIANTS

from .variants import FAST, make

D, H, T, B = 3, 5, 6, 2
TWINS = [name for name, v in VARIANTS.items() if v.torch is not None]
ALL = [name for name in VARIANTS if name in FAST or VARIANTS[name].torch is not None]


def _pair(name: str):
    """(lstmkit module, torch.nn module) with the same float64 weights, 2 layers."""
    torch.manual_seed(0)
    ours = make(name, D, H, num_layers=2, dtype=torch.float64)
    kw = {"proj_size": ours.proj_size} if getattr(ours, "proj_size", 0) else {}
    if name == "rnn_relu":
        kw["nonlinearity"] = "relu"
    theirs = VARIANTS[name].torch(D, H, num_layers=2, dtype=torch.float64, **kw)
    theirs.load_state_dict(ours.state_dict())
    return ours, theirs


def _call(m: nn.Module):
    return lambda x: m(x)[0]


@pytest.mark.parametrize("name", TWINS)
def test_jvp_equals_torch_nn(name):
    ours, theirs = _pair(name)
    x, v = torch.randn(2, T, B, D, dtype=torch.float64).unbind(0)
    got = torch.func.jvp(_call(ours), (x,), (v,))
    want = torch.func.jvp(_call(theirs), (x,), (v,))
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-10)
    assert got[1].abs().max() > 1e-3                 # a real tangent, not zeros


@pytest.mark.parametrize("name", ALL)
def test_vmap_over_unbatched_sequences_equals_the_batched_call(name):
    """vmap of an unbatched call (T, D) over N sequences equals the module's own batched
    call. (torch.nn's LSTM/GRU/RNN cannot be vmapped: "Batching rule not implemented for
    aten::lstm.input"; lstmkit's modules can, through the reference engine.)"""
    torch.manual_seed(0)
    m = make(name, D, H, num_layers=2, dtype=torch.float64).eval()
    xs = torch.randn(4, T, D, dtype=torch.float64)
    got = torch.func.vmap(_call(m))(xs)
    batched = m(xs.transpose(0, 1))[0].transpose(0, 1)
    torch.testing.assert_close(got, batched, atol=1e-12, rtol=1e-10)
    with pytest.raises(RuntimeError, match="Batching rule"):
        torch.func.vmap(_call(nn.LSTM(D, H, dtype=torch.float64)))(xs)


@pytest.mark.parametrize("name", TWINS)
def test_grad_of_functional_call_equals_torch_nn(name):
    ours, theirs = _pair(name)
    x = torch.randn(T, B, D, dtype=torch.float64)

    def loss(m):
        return lambda ps: (torch.func.functional_call(m, ps, (x,))[0] ** 2).sum()

    got = torch.func.grad(loss(ours))(dict(ours.named_parameters()))
    want = torch.func.grad(loss(theirs))(dict(theirs.named_parameters()))
    assert got.keys() == want.keys()
    for k in got:
        torch.testing.assert_close(got[k], want[k], atol=1e-12, rtol=1e-10, msg=k)
