"""QRNN module (Bradbury et al. 2016): the scan and the fused loop against the step loop
(outputs, final states, every gradient, the carried inputs' included), stepping with the
carried window, lengths, unbatched, batch_first, trace, errors."""
import pytest
import torch

import lstmkit
from lstmkit.parallel import QRNN, QRNNState

from .helpers import TOL, assert_close_all, run_with_grads

T, B, D, H = 13, 3, 5, 4
f64 = torch.float64


def make(dtype=f64, seed=0, **kw):
    torch.manual_seed(seed)
    return QRNN(D, H, dtype=dtype, **kw)


def state(L, window, dtype, g, batch=(B,)):
    return QRNNState(torch.randn(L, *batch, H, generator=g, dtype=dtype),
                     torch.randn(window - 1, *batch, D + (L - 1) * H, generator=g, dtype=dtype))


@pytest.mark.parametrize("dtype", [f64, torch.float32])
@pytest.mark.parametrize("case", ["plain", "state_layers2_window3", "lengths_chunks", "batch_first_nobias"])
@pytest.mark.parametrize("mode", ["parallel", "fused"])
def test_modes_equal_the_step_loop_with_every_gradient(dtype, case, mode):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(T, B, D, generator=g, dtype=dtype)
    kw, s, extra = {}, None, {}
    if case == "state_layers2_window3":
        kw = {"num_layers": 2, "window": 3}
        s = state(2, 3, dtype, g)
    elif case == "lengths_chunks":
        kw, extra = {"chunk_size": 3, "num_layers": 2}, {"lengths": torch.tensor([T, 4, 1])}
    elif case == "batch_first_nobias":
        kw, x = {"batch_first": True, "bias": False}, x.transpose(0, 1)
    m = make(dtype, mode=mode, **kw)
    got = run_with_grads(m, x, s, **extra)
    m.mode = "sequential"
    want = run_with_grads(m, x, s, **extra)
    if s is not None:
        assert "d_hx0" in got and "d_hx1" in got              # c0 and the carried inputs
    scale = max(1.0, max(t.abs().max().item() for t in want.values()))
    assert_close_all(got, want, TOL[dtype] * scale)


@pytest.mark.parametrize("mode", ["parallel", "fused"])
def test_gradcheck(mode):
    m = make(num_layers=2, chunk_size=2, mode=mode)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(5, 2, D, dtype=f64, requires_grad=True)
    c0, xs = (t.requires_grad_() for t in state(2, 2, f64, g, batch=(2,)))
    names = [n for n, _ in m.named_parameters()]

    def f(x, c0, xs, *ps):
        y, s = torch.func.functional_call(m, dict(zip(names, ps)), (x, QRNNState(c0, xs)), {"lengths": [5, 3]})
        return y, s.c, s.x

    assert torch.autograd.gradcheck(f, (x, c0, xs, *[p.detach().clone().requires_grad_() for p in m.parameters()]))


@pytest.mark.parametrize("window", [1, 2, 3])
@pytest.mark.parametrize("mode", ["parallel", "sequential", "fused"])
def test_stepping_one_step_at_a_time_equals_the_full_run(window, mode):
    """T = 1 calls with the state carried (c and the last window − 1 inputs of every layer)."""
    m = make(num_layers=2, window=window, mode=mode)
    x = torch.randn(T, B, D, dtype=f64)
    y, s_n = m(x)
    s, ys = None, []
    for t in range(T):
        y_t, s = m(x[t:t + 1], s)
        ys.append(y_t)
    torch.testing.assert_close(torch.cat(ys), y, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(s.c, s_n.c, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(s.x, s_n.x, rtol=1e-12, atol=1e-12)       # layer 1 reads layer 0's h
    assert s_n.x.shape == (window - 1, B, D + H)


def test_carried_inputs_matter():
    """Without the carried window, a split run differs from the whole: the convolution reads it."""
    m = make()
    x = torch.randn(T, B, D, dtype=f64)
    y, _ = m(x)
    _, s = m(x[:6])
    y2, _ = m(x[6:], QRNNState(s.c, torch.zeros_like(s.x)))
    assert (y2 - y[6:]).abs().max().item() > 1e-3


def test_lengths_equal_running_each_sequence_alone():
    m = make(num_layers=2, window=3)
    x = torch.randn(T, B, D, dtype=f64)
    s0 = state(2, 3, f64, torch.Generator().manual_seed(3))
    lengths = [T, 6, 1]
    y, s_n = m(x, s0, lengths=lengths)
    for b, n in enumerate(lengths):
        y_b, s_b = m(x[:n, b:b + 1], QRNNState(s0.c[:, b:b + 1], s0.x[:, b:b + 1]))
        torch.testing.assert_close(y[:n, b:b + 1], y_b)
        torch.testing.assert_close(s_n.c[:, b:b + 1], s_b.c)
        torch.testing.assert_close(s_n.x[:, b:b + 1], s_b.x)          # n = 1: one carried input, one new
        assert bool((y[n:, b] == 0).all())


def test_unbatched_and_batch_first():
    m = make(num_layers=2)
    x = torch.randn(T, B, D, dtype=f64)
    s0 = state(2, 2, f64, torch.Generator().manual_seed(4))
    y, s_n = m(x, s0)
    y1, s1 = m(x[:, 0], QRNNState(s0.c[:, 0], s0.x[:, 0]))
    assert y1.shape == (T, H) and s1.c.shape == (2, H) and s1.x.shape == (1, D + H)
    torch.testing.assert_close(y1, y[:, 0])
    torch.testing.assert_close(s1.c, s_n.c[:, 0])
    m.batch_first = True
    yb, sb = m(x.transpose(0, 1), s0)
    torch.testing.assert_close(yb, y.transpose(0, 1))
    torch.testing.assert_close(sb.c, s_n.c)


def test_parameters_follow_conv1d_layout():
    m = make(num_layers=2, window=3)
    assert {n: tuple(p.shape) for n, p in m.named_parameters()} == {
        "weight_ih_l0": (3 * H, D, 3), "bias_ih_l0": (3 * H,), "weight_ih_l1": (3 * H, H, 3), "bias_ih_l1": (3 * H,)}
    assert "window=3" in repr(m)


def test_trace_records_gates_c_and_h():
    m = make(num_layers=2)
    x = torch.randn(T, B, D, dtype=f64)
    with lstmkit.trace(m) as tr:
        y, _ = m(x, lengths=[T, 5, 2])
    assert "".join(tr[1]) == "zfoch"
    torch.testing.assert_close(tr[1].h, y)
    torch.testing.assert_close(tr[1].h, tr[1].o * tr[1].c)
    assert bool((tr[0].z[5:, 1] == 0).all())


def test_long_inputs_of_50_stay_finite_in_every_mode():
    x = 50 * torch.randn(2000, 2, D)
    outs = []
    for mode in ("parallel", "fused", "sequential"):
        m = make(torch.float32, mode=mode)
        xi = x.clone().requires_grad_()
        y, s = m(xi)
        (y.sum() + s.c.sum()).backward()
        assert bool(torch.isfinite(y).all()) and bool(torch.isfinite(xi.grad).all())
        outs.append(y)
    torch.testing.assert_close(outs[0], outs[2], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(outs[1], outs[2], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kw,exc,word", [
    ({"window": 0}, ValueError, "window"), ({"window": 2.0}, TypeError, "window"),
    ({"mode": "fast"}, ValueError, "mode"), ({"chunk_size": 0}, ValueError, "chunk_size"),
])
def test_bad_constructor_arguments(kw, exc, word):
    with pytest.raises(exc, match=word):
        QRNN(D, H, **kw)


@pytest.mark.parametrize("bad,exc,word", [
    (torch.zeros(1, B, H, dtype=f64), TypeError, "state"),
    (QRNNState(torch.zeros(1, B + 1, H, dtype=f64), torch.zeros(1, B, D, dtype=f64)), ValueError, "state.c"),
    (QRNNState(torch.zeros(1, B, H, dtype=f64), torch.zeros(2, B, D, dtype=f64)), ValueError, "state.x"),
    (QRNNState(torch.zeros(1, B, H), torch.zeros(1, B, D)), TypeError, "dtype"),
])
def test_bad_state(bad, exc, word):
    with pytest.raises(exc, match=word):
        make()(torch.randn(T, B, D, dtype=f64), bad)


def test_registry_and_memory_lab():
    from lstmkit.tasks.memory import make_task
    from lstmkit.tasks.memory.models import SequenceModel
    from lstmkit.variants import PARALLEL_VARIANTS, VARIANTS, variant

    assert type(variant("qrnn").build(D, H)) is QRNN
    assert "qrnn" in PARALLEL_VARIANTS and "qrnn" not in VARIANTS
    task = make_task("adding", 8)
    model = SequenceModel("qrnn", task, 6)
    out = model(task.sample(4, torch.Generator().manual_seed(0)))
    out.sum().backward()
    assert out.shape == (4, task.output_size)
    assert all(p.grad is not None for p in model.rnn.parameters())
