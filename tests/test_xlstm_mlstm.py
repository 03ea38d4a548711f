"""mLSTM: the parallel and chunkwise forms against the recurrent step (outputs, final states,
every gradient, the initial state's included), the stabilised step against the unstabilised
formula, gradcheck, long and extreme inputs, state carried across calls, lengths, errors."""
import math

import pytest
import torch

import lstmkit
from lstmkit.cells.xlstm import MLSTMState
from lstmkit.xlstm import mLSTM

from .helpers import TOL, assert_close_all, run_with_grads

T, B, D, H, NH = 13, 3, 5, 8, 2
d = H // NH


def make(dtype=torch.float64, seed=0, **kw):
    torch.manual_seed(seed)
    kw.setdefault("num_heads", NH)
    return mLSTM(D, H, dtype=dtype, **kw)


def random_state(L, dtype, g, batch=B, heads=NH, size=d):
    return MLSTMState(torch.randn(L, batch, heads, size, size, generator=g, dtype=dtype),
                      torch.randn(L, batch, heads, size, generator=g, dtype=dtype),
                      torch.randn(L, batch, heads, generator=g, dtype=dtype))


def all_modes(x, state=None, dtype=torch.float64, lengths=None, **kw):
    m = make(dtype, **kw)
    out = {}
    for mode in ("recurrent", "parallel", "chunkwise"):
        m.mode = mode
        out[mode] = run_with_grads(m, x, state, **({"lengths": lengths} if lengths is not None else {}))
    return out


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("case", ["plain", "state_layers2", "lengths_chunk3", "batch_first_nobias_1head", "chunk1"])
def test_modes_agree_with_every_gradient(dtype, case):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(T, B, D, generator=g, dtype=dtype)
    kw, state, lengths = {}, None, None
    if case == "state_layers2":
        kw, state = {"num_layers": 2, "chunk_size": 4}, random_state(2, dtype, g)
    elif case == "lengths_chunk3":
        kw, lengths, state = {"chunk_size": 3, "num_layers": 2}, torch.tensor([T, 4, 1]), random_state(2, dtype, g)
    elif case == "batch_first_nobias_1head":
        kw, x = {"batch_first": True, "bias": False, "num_heads": 1}, x.transpose(0, 1)
    elif case == "chunk1":
        kw = {"chunk_size": 1}
    out = all_modes(x, state, dtype, lengths, **kw)
    ref = out["recurrent"]
    if state is not None:
        assert {"d_hx0", "d_hx1", "d_hx2"} <= set(ref)
    scale = max(1.0, max(t.abs().max().item() for t in ref.values()))
    for mode in ("parallel", "chunkwise"):
        assert_close_all(out[mode], ref, TOL[dtype] * scale)


def test_agreement_can_fail():
    """The comparison sees a change of one forget bias in one mode only."""
    x = torch.randn(T, B, D, dtype=torch.float64)
    m = make()
    a = run_with_grads(m, x)
    with torch.no_grad():
        m.bias_ih_l0[-1] += 1e-6
    m.mode = "recurrent"
    with pytest.raises(AssertionError):
        assert_close_all(run_with_grads(m, x), a, 1e-10)


@pytest.mark.parametrize("mode", ["recurrent", "parallel", "chunkwise"])
def test_gradcheck(mode):
    torch.manual_seed(0)
    m = mLSTM(2, 4, num_layers=2, num_heads=2, dtype=torch.float64, chunk_size=2, mode=mode)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(5, 2, 2, dtype=torch.float64, generator=g, requires_grad=True)
    st = [t.requires_grad_() for t in random_state(2, torch.float64, g, batch=2, size=2)]
    names = [n for n, _ in m.named_parameters()]

    def f(x, C, n, mm, *ps):
        y, s = torch.func.functional_call(m, dict(zip(names, ps)), (x, MLSTMState(C, n, mm)), {"lengths": [5, 3]})
        return y, *s

    ps = [p.detach().clone().requires_grad_() for p in m.parameters()]
    assert torch.autograd.gradcheck(f, (x, *st, *ps))


def unstabilised(m: mLSTM, x: torch.Tensor) -> torch.Tensor:
    """The paper's mLSTM without m: C̄' = f C̄ + e^ĩ v kᵀ, n̄' = f n̄ + e^ĩ k, h̃ = C̄q / max(|n̄ᵀq|, 1)."""
    spec = m.specs[0]
    s = spec.split(spec.project(x, m.layer_params(0)))
    C = x.new_zeros(x.shape[1], NH, d, d)
    n = x.new_zeros(x.shape[1], NH, d)
    ys = []
    for t in range(x.shape[0]):
        f, i = torch.exp(s["log_f"][t]), torch.exp(s["i_tilde"][t])
        C = f[..., None, None] * C + i[..., None, None] * s["v"][t].unsqueeze(-1) * s["k"][t].unsqueeze(-2)
        n = f[..., None] * n + i[..., None] * s["k"][t]
        q = s["q"][t]
        den = (n * q).sum(-1).abs().clamp(min=1.0)
        ys.append((C @ q.unsqueeze(-1)).squeeze(-1) / den[..., None])
    return torch.sigmoid(s["o_tilde"]) * torch.stack(ys).reshape(x.shape[0], x.shape[1], H)


@pytest.mark.parametrize("mode", ["recurrent", "parallel", "chunkwise"])
def test_stabilised_equals_the_unstabilised_formula(mode):
    m = make(mode=mode, chunk_size=4)
    x = 3 * torch.randn(T, B, D, dtype=torch.float64)       # exp(ĩ) up to ~e^5: no overflow
    y, _ = m(x)
    torch.testing.assert_close(y, unstabilised(m, x), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("mode", ["recurrent", "parallel", "chunkwise"])
def test_stepping_equals_the_full_run(mode):
    m = make(num_layers=2, mode=mode, chunk_size=4)
    x = torch.randn(T, B, D, dtype=torch.float64)
    y, s_n = m(x)
    s, ys = None, []
    for a, b in [(0, 1), (1, 6), (6, 7), (7, T)]:           # one step, a few, a chunk's worth
        y_t, s = m(x[a:b], s)
        ys.append(y_t)
    torch.testing.assert_close(torch.cat(ys), y, rtol=1e-12, atol=1e-12)
    for a, b in zip(s, s_n):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_long_sequence_and_extreme_inputs_stay_finite():
    """T = 16,384 with inputs of ±50: chunkwise = recurrent (float64), no inf/NaN, gradients finite."""
    torch.manual_seed(0)
    m = mLSTM(3, 4, num_heads=2, dtype=torch.float64, chunk_size=64)
    x = 50 * torch.sign(torch.randn(16384, 1, 3, dtype=torch.float64))
    m.mode = "chunkwise"
    x.requires_grad_()
    y, s = m(x)
    (y.sum() + sum(t.sum() for t in s)).backward()
    assert torch.isfinite(y).all() and all(torch.isfinite(t).all() for t in s)
    assert torch.isfinite(x.grad).all() and all(torch.isfinite(p.grad).all() for p in m.parameters())
    m.mode = "recurrent"
    with torch.no_grad():
        y_r, s_r = m(x.detach())
    scale = max(1.0, y_r.abs().max().item())
    assert (y.detach() - y_r).abs().max().item() <= 1e-10 * scale
    assert all((a - b).abs().max().item() <= 1e-9 * max(1.0, b.abs().max().item()) for a, b in zip(s, s_r))


@pytest.mark.parametrize("mode", ["parallel", "chunkwise"])
def test_float32_extreme_inputs_finite_with_gradients(mode):
    torch.manual_seed(0)
    m = mLSTM(16, 16, num_heads=4, mode=mode)
    x = (50 * torch.sign(torch.randn(1024, 2, 16))).requires_grad_()
    y, s = m(x)
    (y.square().mean() + sum(t.float().mean() for t in s)).backward()
    assert torch.isfinite(y).all() and torch.isfinite(x.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in m.parameters())


def test_lengths_equal_running_each_sequence_alone():
    m = make(num_layers=2, chunk_size=4)
    x = torch.randn(T, B, D, dtype=torch.float64)
    lengths = [T, 6, 1]
    y, s_n = m(x, lengths=lengths)
    for b, n in enumerate(lengths):
        y_b, s_b = m(x[:n, b:b + 1])
        torch.testing.assert_close(y[:n, b:b + 1], y_b)
        for a, c in zip(s_n, s_b):
            torch.testing.assert_close(a[:, b:b + 1], c)
        assert bool((y[n:, b] == 0).all())


def test_unbatched_batch_first_and_shapes():
    m = make(num_layers=2)
    x = torch.randn(T, B, D, dtype=torch.float64)
    y, s = m(x)
    assert y.shape == (T, B, H)
    assert [tuple(t.shape) for t in s] == [(2, B, NH, d, d), (2, B, NH, d), (2, B, NH)]
    assert type(s) is MLSTMState and s._fields == ("C", "n", "m")
    y1, s1 = m(x[:, 0])
    assert y1.shape == (T, H) and s1.C.shape == (2, NH, d, d)
    torch.testing.assert_close(y1, y[:, 0])
    m.batch_first = True
    yb, _ = m(x.transpose(0, 1))
    torch.testing.assert_close(yb, y.transpose(0, 1))


def test_parameters_and_forget_bias():
    m = make(num_layers=2)
    G = 4 * H + 2 * NH
    assert {n: tuple(p.shape) for n, p in m.named_parameters()} == {
        "weight_ih_l0": (G, D), "bias_ih_l0": (G,), "weight_ih_l1": (G, H), "bias_ih_l1": (G,)}
    torch.testing.assert_close(m.bias_ih_l0[-NH:], torch.linspace(3, 6, NH, dtype=torch.float64))


def test_bfloat16_computes_in_float32():
    m32, m16 = make(torch.float32), make(torch.bfloat16)
    x = torch.randn(T, B, D)
    y16, s16 = m16(x.bfloat16())
    assert y16.dtype == s16.C.dtype == torch.bfloat16
    assert (y16.float() - m32(x)[0]).abs().max().item() < 5e-2


def test_trace_records_gates_and_h():
    m = make(num_layers=2, chunk_size=4)
    x = torch.randn(T, B, D, dtype=torch.float64)
    with lstmkit.trace(m) as tr:
        y, _ = m(x, lengths=[T, 5, 2])
    assert "".join(tr[1]) == "ifomh"
    torch.testing.assert_close(tr[1].h, y)
    assert tr[0].i.shape == (T, B, NH) and tr[0].o.shape == (T, B, H)
    m.mode = "recurrent"
    with lstmkit.trace(m) as tr2:
        m(x, lengths=[T, 5, 2])
    for k in "ifomh":
        torch.testing.assert_close(tr2[0][k], tr[0][k], rtol=1e-10, atol=1e-12)
    assert bool((tr[0].i[5:, 1] == 0).all()) and bool((tr[0].f[1:] <= 1 + 1e-12).all())


BAD = [
    ({"mode": "fast"}, ValueError, "mode"),
    ({"num_layers": 0}, ValueError, "num_layers"),
    ({"chunk_size": 0}, ValueError, "chunk_size"),
    ({"num_heads": 3}, ValueError, "num_heads"),
    ({"hidden_size": 8.0}, TypeError, "hidden_size"),
]


@pytest.mark.parametrize("kw,exc,word", BAD)
def test_bad_constructor_arguments(kw, exc, word):
    with pytest.raises(exc, match=word):
        mLSTM(**{"input_size": D, "hidden_size": H, **kw})


@pytest.mark.parametrize("call,exc,word", [
    (lambda m: m(torch.randn(T, B, D + 1, dtype=torch.float64)), ValueError, "input_size"),
    (lambda m: m(torch.randn(T, B, D)), TypeError, "dtype"),
    (lambda m: m(torch.randn(T, B, D, dtype=torch.float64), (torch.zeros(1),)), TypeError, "state"),
    (lambda m: m(torch.randn(T, B, D, dtype=torch.float64),
                 MLSTMState(torch.zeros(1, B, NH, d, d + 1, dtype=torch.float64),
                            torch.zeros(1, B, NH, d, dtype=torch.float64),
                            torch.zeros(1, B, NH, dtype=torch.float64))), ValueError, "state.C"),
    (lambda m: m(torch.randn(T, B, D, dtype=torch.float64), lengths=[T + 1, 1, 1]), ValueError, "lengths"),
])
def test_bad_forward_arguments(call, exc, word):
    with pytest.raises(exc, match=word):
        call(make())


def test_head_scaling_of_keys():
    """k enters as k/√d (the paper's scaling of the keys)."""
    spec = make().specs[0]
    u = torch.randn(2, 4 * H + 2 * NH, dtype=torch.float64)
    s = spec.split(u)
    torch.testing.assert_close(s["k"] * math.sqrt(d), u[:, H:2 * H].reshape(2, NH, d))


@pytest.mark.parametrize("mode", ["chunkwise", "parallel"])
def test_float32_stays_near_float64_over_a_long_sequence(mode):
    """T = 512: float32 outputs and every parameter gradient within 1e-5 (relative to their
    scale) of the float64 recurrent oracle (measured: about 6e-7)."""
    torch.manual_seed(0)
    m32 = mLSTM(16, 32, num_heads=4, mode=mode)
    m64 = mLSTM(16, 32, num_heads=4, dtype=torch.float64, mode="recurrent")
    m64.load_state_dict({k: v.double() for k, v in m32.state_dict().items()})
    x = torch.randn(512, 2, 16)
    w = torch.randn(512, 2, 32, dtype=torch.float64)
    res = []
    for m, xx in ((m32, x), (m64, x.double())):
        y, _ = m(xx)
        (y * w.to(y.dtype)).sum().backward()
        res.append([y.detach().double(), *(p.grad.double() for p in m.parameters())])
    for a, b in zip(*res):
        assert (a - b).abs().max().item() <= 1e-5 * max(1.0, b.abs().max().item())
