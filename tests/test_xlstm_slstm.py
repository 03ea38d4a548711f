"""sLSTM: the stabilised step against the unstabilised formula, the block-diagonal heads, the fused
engine (C++ loop and its PyTorch twin) against the reference (outputs, final states, every
gradient, the initial state's included), gradcheck, long and extreme inputs, stepping, lengths,
trace, errors."""
import pytest
import torch

import lstmkit
from lstmkit.cells.xlstm import M_FRESH, SLSTMState
from lstmkit.engines.fused import slstm as fused
from lstmkit.xlstm import sLSTM

from .helpers import TOL, assert_close_all, run_with_grads

T, B, D, H, NH = 13, 3, 5, 8, 2
d = H // NH
ENGINES = ["fused_cpp", "fused_torch"]


def make(dtype=torch.float64, seed=0, **kw):
    torch.manual_seed(seed)
    kw.setdefault("num_heads", NH)
    return sLSTM(D, H, dtype=dtype, **kw)


def random_state(L, dtype, g, batch=B, size=H):
    h, c, n, m = (torch.randn(L, batch, size, generator=g, dtype=dtype) for _ in range(4))
    return SLSTMState(h, c, n.abs() + 0.5, m)


def with_engine(engine, monkeypatch):
    if engine == "fused_torch":
        monkeypatch.setattr(fused, "ops", lambda device=None: None)
    elif fused.ops() is None:
        pytest.skip("the sLSTM's C++ loops are not built here")


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("case", ["plain", "state_layers2", "lengths", "batch_first_nobias_exp", "one_head"])
def test_fused_equals_reference_with_every_gradient(engine, dtype, case, monkeypatch):
    with_engine(engine, monkeypatch)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(T, B, D, generator=g, dtype=dtype)
    kw, state, lengths = {}, None, None
    if case == "state_layers2":
        kw, state = {"num_layers": 2}, random_state(2, dtype, g)
    elif case == "lengths":
        kw, lengths, state = {"num_layers": 2}, {"lengths": torch.tensor([T, 4, 1])}, random_state(2, dtype, g)
    elif case == "batch_first_nobias_exp":
        kw, x = {"batch_first": True, "bias": False, "forget": "exp"}, x.transpose(0, 1)
    elif case == "one_head":
        kw = {"num_heads": 1}
    m = make(dtype, backend="reference", **kw)
    ref = run_with_grads(m, x, state, **(lengths or {}))
    m.backend = "fused"
    out = run_with_grads(m, x, state, **(lengths or {}))
    if state is not None:
        assert {"d_hx0", "d_hx1", "d_hx2", "d_hx3"} <= set(ref)
    scale = max(1.0, max(t.abs().max().item() for t in ref.values()))
    assert_close_all(out, ref, TOL[dtype] * scale)


def test_agreement_can_fail():
    x = torch.randn(T, B, D, dtype=torch.float64)
    m = make(backend="reference")
    a = run_with_grads(m, x)
    with torch.no_grad():
        m.weight_hh_l0[0, 0] += 1e-6
    m.backend = "fused"
    with pytest.raises(AssertionError):
        assert_close_all(run_with_grads(m, x), a, 1e-10)


@pytest.mark.parametrize("backend", ["reference", "fused"])
def test_gradcheck(backend):
    torch.manual_seed(0)
    m = sLSTM(2, 4, num_layers=2, num_heads=2, dtype=torch.float64, backend=backend)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(5, 2, 2, dtype=torch.float64, generator=g, requires_grad=True)
    st = [t.requires_grad_() for t in random_state(2, torch.float64, g, batch=2, size=4)]
    names = [n for n, _ in m.named_parameters()]

    def f(x, h, c, n, mm, *ps):
        y, s = torch.func.functional_call(m, dict(zip(names, ps)), (x, SLSTMState(h, c, n, mm)), {"lengths": [5, 3]})
        return y, *s

    ps = [p.detach().clone().requires_grad_() for p in m.parameters()]
    assert torch.autograd.gradcheck(f, (x, *st, *ps))


def unstabilised(m: sLSTM, x: torch.Tensor) -> torch.Tensor:
    """The paper's sLSTM without m: c̄' = f c̄ + e^ĩ z, n̄' = f n̄ + e^ĩ, h' = o c̄'/n̄' (fresh state)."""
    spec, p = m.specs[0], m.layer_params(0)
    u = spec.project(x, p)
    h = c = n = x.new_zeros(x.shape[1], H)
    ys = []
    for t in range(x.shape[0]):
        i_t, f_t, g_t, o_t = (u[t] + spec.recurrent(h, p["w_hh"])).chunk(4, -1)
        f = torch.exp(f_t) if m.forget == "exp" else torch.sigmoid(f_t)
        c = f * c + torch.exp(i_t) * torch.tanh(g_t)
        n = f * n + torch.exp(i_t)
        h = torch.sigmoid(o_t) * c / n
        ys.append(h)
    return torch.stack(ys)


@pytest.mark.parametrize("backend", ["reference", "fused"])
@pytest.mark.parametrize("forget", ["sigmoid", "exp"])
def test_stabilised_equals_the_unstabilised_formula(backend, forget):
    m = make(backend=backend, forget=forget)
    x = 2 * torch.randn(T, B, D, dtype=torch.float64)       # e^ĩ, e^f̃ stay far from overflow
    y, s = m(x)
    torch.testing.assert_close(y, unstabilised(m, x), rtol=1e-10, atol=1e-12)
    assert bool((s.m != 0).all())                           # m did move: the two are not trivially equal


def test_the_unstabilised_formula_overflows_where_the_stabilised_does_not():
    m = make(forget="exp")
    x = 400 * torch.randn(T, B, D, dtype=torch.float64)
    assert not torch.isfinite(unstabilised(m, x)).all()
    assert torch.isfinite(m(x)[0]).all()


def test_recurrent_weights_are_block_diagonal():
    m = make()
    spec, w = m.specs[0], m.weight_hh_l0
    h = torch.randn(B, H, dtype=torch.float64)
    blocks = [torch.block_diag(*w.view(4, NH, d, d)[gate]) for gate in range(4)]
    torch.testing.assert_close(spec.recurrent(h, w), h @ torch.cat(blocks).t())
    torch.testing.assert_close(fused.slstm_torch.heads_in(h, fused.slstm_torch.head_weights(w, NH)[0]),
                               h @ torch.cat(blocks).t())
    da = torch.randn(B, 4 * H, dtype=torch.float64)
    torch.testing.assert_close(fused.slstm_torch.heads_out(da, fused.slstm_torch.head_weights(w, NH)[1]),
                               da @ torch.cat(blocks))


@pytest.mark.parametrize("backend", ["reference", "fused"])
def test_stepping_equals_the_full_run(backend):
    m = make(num_layers=2, backend=backend)
    x = torch.randn(T, B, D, dtype=torch.float64)
    y, s_n = m(x)
    s, ys = None, []
    for a, b in [(0, 1), (1, 6), (6, T)]:
        y_t, s = m(x[a:b], s)
        ys.append(y_t)
    torch.testing.assert_close(torch.cat(ys), y, rtol=1e-12, atol=1e-12)
    for a, b in zip(s, s_n):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype,forget", [(torch.float64, "sigmoid"), (torch.float32, "exp")])
def test_long_sequence_and_extreme_inputs_stay_finite(dtype, forget):
    """T = 16,384, inputs of ±50, through the fused engine: finite outputs, states and gradients."""
    torch.manual_seed(0)
    m = sLSTM(3, 8, num_heads=2, dtype=dtype, forget=forget, backend="fused")
    x = (50 * torch.sign(torch.randn(16384, 2, 3, dtype=dtype))).requires_grad_()
    y, s = m(x)
    (y.sum() + sum(t.sum() for t in s[:3])).backward()
    assert torch.isfinite(y).all() and all(torch.isfinite(t).all() for t in s)
    assert torch.isfinite(x.grad).all() and all(torch.isfinite(p.grad).all() for p in m.parameters())


def test_fresh_state_avoids_zero_over_zero():
    """A very negative first ĩ: with m₀ = 0 the first n' would underflow to 0 (0/0); the fresh m₀ does not."""
    m = make()
    with torch.no_grad():
        m.bias_ih_l0[:H] = -2000.0
    y, s = m(torch.randn(T, B, D, dtype=torch.float64))
    assert torch.isfinite(y).all()
    zero_m = SLSTMState(*(torch.zeros(1, B, H, dtype=torch.float64) for _ in range(4)))
    assert not torch.isfinite(m(torch.randn(T, B, D, dtype=torch.float64), zero_m)[0]).all()
    assert M_FRESH < -1000


def test_lengths_equal_running_each_sequence_alone():
    m = make(num_layers=2)
    x = torch.randn(T, B, D, dtype=torch.float64)
    lengths = [T, 6, 1]
    y, s_n = m(x, lengths=lengths)
    for b, n in enumerate(lengths):
        y_b, s_b = m(x[:n, b:b + 1])
        torch.testing.assert_close(y[:n, b:b + 1], y_b)
        for a, c in zip(s_n, s_b):
            torch.testing.assert_close(a[:, b:b + 1], c)
        assert bool((y[n:, b] == 0).all())


def test_shapes_unbatched_batch_first_and_parameters():
    m = make(num_layers=2, dropout=0.5)
    assert {n: tuple(p.shape) for n, p in m.named_parameters()} == {
        "weight_ih_l0": (4 * H, D), "weight_hh_l0": (4 * H, d), "bias_ih_l0": (4 * H,),
        "weight_ih_l1": (4 * H, H), "weight_hh_l1": (4 * H, d), "bias_ih_l1": (4 * H,)}
    m.eval()
    x = torch.randn(T, B, D, dtype=torch.float64)
    y, s = m(x)
    assert type(s) is SLSTMState and s._fields == ("h", "c", "n", "m")
    assert all(tuple(t.shape) == (2, B, H) for t in s)
    y1, s1 = m(x[:, 1])
    torch.testing.assert_close(y1, y[:, 1])
    assert s1.h.shape == (2, H)
    m.batch_first = True
    torch.testing.assert_close(m(x.transpose(0, 1))[0], y.transpose(0, 1))
    m.train()
    torch.manual_seed(0)
    a = m(x.transpose(0, 1))[0]
    torch.manual_seed(1)
    assert not torch.equal(a, m(x.transpose(0, 1))[0])     # dropout between layers acts in training


def test_bfloat16_computes_in_float32():
    m32, m16 = make(torch.float32), make(torch.bfloat16)
    x = torch.randn(T, B, D)
    y16, s16 = m16(x.bfloat16())
    assert y16.dtype == s16.h.dtype == torch.bfloat16
    assert (y16.float() - m32(x)[0]).abs().max().item() < 5e-2


@pytest.mark.parametrize("backend", ["reference", "fused"])
def test_trace_records_gates_and_states(backend):
    m = make(num_layers=2, backend=backend)
    x = torch.randn(T, B, D, dtype=torch.float64)
    with lstmkit.trace(m) as tr:
        y, s = m(x, lengths=[T, 5, 2])
    assert "".join(tr[1]) == "ifgocnmh"
    torch.testing.assert_close(tr[1].h, y)
    torch.testing.assert_close(tr[0].m[-1, 0], s.m[0, 0])
    assert all(tuple(v.shape) == (T, B, H) for v in tr[0].values())
    assert bool((tr[0].i[5:, 1] == 0).all())


def test_traces_of_both_engines_agree():
    x = torch.randn(T, B, D, dtype=torch.float64)
    recs = []
    for backend in ("reference", "fused"):
        m = make(backend=backend)
        with lstmkit.trace(m) as tr:
            m(x)
        recs.append(tr[0])
    for k in recs[0]:
        torch.testing.assert_close(recs[1][k], recs[0][k], rtol=1e-10, atol=1e-12)


BAD = [
    ({"backend": "cuda"}, ValueError, "backend"),
    ({"forget": "tanh"}, ValueError, "forget"),
    ({"dropout": 1.5}, ValueError, "dropout"),
    ({"num_heads": 3}, ValueError, "num_heads"),
    ({"num_heads": 0}, ValueError, "num_heads"),
    ({"hidden_size": 8.0}, TypeError, "hidden_size"),
]


@pytest.mark.parametrize("kw,exc,word", BAD)
def test_bad_constructor_arguments(kw, exc, word):
    with pytest.raises(exc, match=word):
        sLSTM(**{"input_size": D, "hidden_size": H, **kw})


@pytest.mark.parametrize("call,exc,word", [
    (lambda m: m(torch.randn(T, B, D + 1, dtype=torch.float64)), ValueError, "input_size"),
    (lambda m: m(torch.randn(T, B, D)), TypeError, "dtype"),
    (lambda m: m(torch.randn(T, B, D, dtype=torch.float64), torch.zeros(1, B, H)), TypeError, "state"),
    (lambda m: m(torch.randn(T, B, D, dtype=torch.float64),
                 SLSTMState(*(torch.zeros(1, B + 1, H, dtype=torch.float64) for _ in range(4)))), ValueError, "state.h"),
    (lambda m: m(torch.randn(T, B, D, dtype=torch.float64), lengths=[1, 1]), ValueError, "lengths"),
])
def test_bad_forward_arguments(call, exc, word):
    with pytest.raises(exc, match=word):
        call(make())


def test_float32_fused_stays_near_float64_over_a_long_sequence():
    """T = 512: the float32 C++ loop's outputs and every parameter gradient within 1e-5 (relative
    to their scale) of the float64 reference (measured: about 2e-7)."""
    torch.manual_seed(0)
    m32 = sLSTM(16, 32, num_heads=4, backend="fused")
    m64 = sLSTM(16, 32, num_heads=4, dtype=torch.float64, backend="reference")
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
