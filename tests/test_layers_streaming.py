"""Streaming: T = 1 per call with the state carried equals one call over the sequence, for every
variant; the forward-only path (``fused.infer``, taken where no backward can follow) gives the
autograd path's numbers bit for bit; the packed weights kept between calls follow the weights."""
import pytest
import torch
from torch import nn

import lstmkit
from lstmkit.engines import fused

from .variants import ALL, make

T, B, D, H = 7, 3, 4, 6
LENGTHS = [7, 3, 5]


def _states(s) -> tuple:
    return tuple(s) if isinstance(s, tuple) else (s,)


def _step_by_step(m, x, state=None):
    """One call per time step, the state carried: -> outputs (T, B, ·), final state."""
    ys = []
    for t in range(x.shape[0]):
        y, state = m(x[t:t + 1], state)
        ys.append(y)
    return torch.cat(ys), state


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
@pytest.mark.parametrize("name", ALL)
def test_stepping_equals_one_call(name, dtype, tol):
    """Per-step GEMMs pack the weights for B rows, one call for T·B: equal within rounding."""
    torch.manual_seed(0)
    m = make(name, D, H, dtype=dtype).eval()
    x = torch.randn(T, B, D, dtype=dtype)
    with torch.no_grad():
        y, s = m(x)
        ys, ss = _step_by_step(m, x)
    torch.testing.assert_close(ys, y, atol=tol, rtol=tol)
    for a, b in zip(_states(ss), _states(s)):
        torch.testing.assert_close(a, b, atol=tol, rtol=tol)


def _as_hx(state: tuple):
    return state if len(state) == 2 else state[0]


@pytest.mark.parametrize("name", ALL)
def test_stepping_with_lengths(name):
    """A finished sequence leaves the batch: stepping the sequences still running equals one
    call with ``lengths`` (zero output past the length, the state frozen at it)."""
    torch.manual_seed(1)
    m = make(name, D, H, dtype=torch.float64).eval()
    x = torch.randn(T, B, D, dtype=torch.float64)
    lens = torch.tensor(LENGTHS)
    with torch.no_grad():
        y, s = m(x, lengths=lens)
        finals = [torch.zeros_like(t) for t in _states(s)]
        ys = torch.zeros_like(y)
        for t in range(T):
            on = (lens > t).nonzero().flatten()
            out, new = m(x[t:t + 1, on], _as_hx(tuple(f[:, on] for f in finals)))
            ys[t, on] = out[0]
            for f, n in zip(finals, _states(new)):
                f[:, on] = n
    torch.testing.assert_close(ys, y, atol=1e-12, rtol=0)
    for a, b in zip(finals, _states(s)):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)


@pytest.mark.parametrize("name", ALL)
def test_two_calls_with_lengths_equal_one(name):
    """A prefix without lengths, then the rest with the remaining lengths and the carried state."""
    torch.manual_seed(2)
    m = make(name, D, H, dtype=torch.float64).eval()
    x = torch.randn(T, B, D, dtype=torch.float64)
    lens, cut = torch.tensor(LENGTHS), min(LENGTHS) - 1
    with torch.no_grad():
        y, s = m(x, lengths=lens)
        y1, s1 = m(x[:cut])
        y2, s2 = m(x[cut:], s1, lengths=lens - cut)
    torch.testing.assert_close(torch.cat([y1, y2]), y, atol=1e-12, rtol=0)
    for a, b in zip(_states(s2), _states(s)):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)


@pytest.mark.parametrize("kw", [{}, {"num_layers": 2, "bidirectional": True}, {"batch_first": True}])
@pytest.mark.parametrize("name", ALL)
def test_forward_only_path_equals_the_autograd_path(name, kw):
    """No grad (the forward-only path) and grad (autograd Functions behind the guard): the
    same arithmetic, with lengths and without. Equal to float32 rounding (layer norm amplifies
    it), not to the bit:
    the forward-only loop keeps one step's buffers where the other keeps all steps', and
    torch's mm rounds differently at different operand alignments (a (B, H) row block at
    offset t·B·H of a buffer and the same values at offset 0 can differ in the last bit)."""
    torch.manual_seed(3)
    m = make(name, D, H, **kw).eval()
    x = torch.randn(B, T, D) if kw.get("batch_first") else torch.randn(T, B, D)
    for lengths in (None, LENGTHS):
        with torch.no_grad():
            y0, s0 = m(x, lengths=lengths)
        y1, s1 = m(x, lengths=lengths)
        assert y1.requires_grad
        torch.testing.assert_close(y0, y1.detach(), atol=1e-5, rtol=1e-5)
        for a, b in zip(_states(s0), _states(s1)):
            torch.testing.assert_close(a, b.detach(), atol=1e-5, rtol=1e-5)


def test_forward_only_path_is_taken_where_no_backward_can_follow(monkeypatch):
    calls = []
    run = fused.infer.run
    monkeypatch.setattr(fused.infer, "run", lambda *a, **k: calls.append(1) or run(*a, **k))
    m, x = lstmkit.LSTM(D, H), torch.randn(T, B, D)
    with torch.no_grad():
        m(x)
    with torch.inference_mode():
        m(x)
    m.requires_grad_(False)
    m(x)                                          # grad enabled, nothing requires it
    assert len(calls) == 3
    m(x.requires_grad_())                         # a backward may follow: the guarded engine
    assert len(calls) == 3


@pytest.mark.parametrize("cls", [nn.LSTM, nn.GRU, nn.RNN])
def test_vanilla_stepping_equals_torch(cls):
    torch.manual_seed(4)
    ref = cls(D, H, dtype=torch.float64)
    ours = lstmkit.from_torch(ref)
    x = torch.randn(T, B, D, dtype=torch.float64)
    with torch.no_grad():
        y, s = _step_by_step(ours, x)
        yt, st = _step_by_step(ref, x)
    torch.testing.assert_close(y, yt, atol=1e-12, rtol=0)
    for a, b in zip(_states(s), _states(st)):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)


def _fresh_copy(m):
    other = type(m)(D, H)
    other.load_state_dict(m.state_dict())
    return other


@pytest.mark.parametrize("change", ["no_grad_copy", "optimizer", "load_state_dict"])
@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_packed_weights_follow_the_weights(kind, change):
    """A packed copy kept between calls is dropped when its weight changes in place."""
    torch.manual_seed(5)
    m, x = getattr(lstmkit, kind)(D, H), torch.randn(1, B, D)
    with torch.no_grad():
        m(x)                                      # packs and keeps w_ih, w_hh
    if change == "no_grad_copy":
        with torch.no_grad():
            m.weight_hh_l0.mul_(-2)
            m.weight_ih_l0.add_(1)
    elif change == "optimizer":
        m(x)[0].square().sum().backward()
        torch.optim.SGD(m.parameters(), lr=1.0).step()
    else:
        m.load_state_dict({k: v * 3 for k, v in m.state_dict().items()})
    with torch.no_grad():
        assert torch.equal(m(x)[0], _fresh_copy(m)(x)[0])


def test_packing_a_torch_func_wrapper():
    """torch.compile differentiates the fused engine under torch.func.vjp (engines.custom_op),
    whose wrapped weights have no storage of their own: packing them must still work."""
    m, x = lstmkit.LSTM(D, H), torch.randn(T, B, D)
    state = (torch.zeros(B, H), torch.zeros(B, H))
    p = m.layer_params(0, 0)
    y, vjp = torch.func.vjp(lambda p: fused.run(m.specs[0], x, state, p).output, p)
    grads = vjp(torch.ones_like(y))[0]
    assert torch.equal(y, m(x)[0].detach()) and grads["w_hh"].shape == m.weight_hh_l0.shape
