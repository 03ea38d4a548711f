"""ParaLSTM / ParaGRU modules: the Newton solver against the step loop (outputs, final states,
every gradient), gradcheck, state carried across calls, unbatched, batch_first, iteration
records, errors."""
import pytest
import torch

import lstmkit
from lstmkit.pararnn import ParaGRU, ParaLSTM

from .helpers import TOL, assert_close_all, run_with_grads

CLASSES = {"paralstm": ParaLSTM, "paragru": ParaGRU}
T, B, D, H = 13, 3, 5, 4


def make(name, dtype=torch.float64, seed=0, **kw):
    torch.manual_seed(seed)
    return CLASSES[name](D, H, dtype=dtype, **kw)


def initial_state(name, layers, dtype, g, batch=B):
    h0 = torch.randn(layers, batch, H, generator=g, dtype=dtype)
    return (h0, torch.randn(layers, batch, H, generator=g, dtype=dtype)) if name == "paralstm" else h0


def both_modes(name, x, hx=None, dtype=torch.float64, **kw):
    """(the Newton run, the step loop's): outputs, final states and every gradient; the same
    dropout masks in both (the same seed before each run)."""
    m = make(name, dtype, mode="newton", **kw)
    torch.manual_seed(7)
    new = run_with_grads(m, x, hx)
    m.mode = "sequential"
    torch.manual_seed(7)
    seq = run_with_grads(m, x, hx)
    return new, seq


@pytest.mark.parametrize("name", CLASSES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("case", ["plain", "hx_layers2_dropout", "batch_first_nobias", "long"])
def test_newton_equals_sequential_with_every_gradient(name, dtype, case):
    g = torch.Generator().manual_seed(1)
    steps = 300 if case == "long" else T
    x = torch.randn(steps, B, D, generator=g, dtype=dtype)
    kw, hx = {}, None
    if case == "hx_layers2_dropout":
        kw, hx = {"num_layers": 2, "dropout": 0.3}, initial_state(name, 2, dtype, g)
    elif case == "batch_first_nobias":
        kw, x = {"batch_first": True, "bias": False}, x.transpose(0, 1)
    new, seq = both_modes(name, x, hx, dtype, **kw)
    if hx is not None:
        assert "d_hx0" in new
    scale = max(1.0, max(t.abs().max().item() for t in seq.values()))
    assert_close_all(new, seq, TOL[dtype] * scale)


@pytest.mark.parametrize("name", CLASSES)
def test_gradcheck(name):
    torch.manual_seed(0)
    m = CLASSES[name](2, 2, num_layers=2, dtype=torch.float64, mode="newton")
    x = torch.randn(5, 1, 2, dtype=torch.float64, requires_grad=True)
    hx = [torch.randn(2, 1, 2, dtype=torch.float64, requires_grad=True) for _ in m.spec.state_names]
    names = [n for n, _ in m.named_parameters()]

    def f(x, *rest):            # functional_call: the parameters are inputs of the checked function
        states, ps = rest[:len(hx)], rest[len(hx):]
        y, s = torch.func.functional_call(m, dict(zip(names, ps)), (x, tuple(states) if len(hx) > 1 else states[0]))
        return (y, *s) if len(hx) > 1 else (y, s)

    ps = [p.detach().clone().requires_grad_() for p in m.parameters()]
    assert torch.autograd.gradcheck(f, (x, *hx, *ps), fast_mode=True)


@pytest.mark.parametrize("name", CLASSES)
def test_stepping_with_carried_state_equals_the_full_run(name):
    m = make(name, num_layers=2, mode="newton")
    x = torch.randn(T, B, D, dtype=torch.float64)
    y, s_n = m(x)
    s, ys = None, []
    for t in range(0, T, 4):                                       # chunks of 4, 4, 4, 1
        y_t, s = m(x[t:t + 4], s)
        ys.append(y_t)
    torch.testing.assert_close(torch.cat(ys), y, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(s, s_n, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", CLASSES)
def test_unbatched_equals_a_batch_of_one_and_no_grad_equals_grad(name):
    m = make(name, mode="newton")
    x = torch.randn(T, D, dtype=torch.float64)
    y1, s1 = m(x)
    with torch.no_grad():
        yb, sb = m(x.unsqueeze(1))
    torch.testing.assert_close(y1, yb.squeeze(1), rtol=1e-12, atol=1e-12)
    for a, b in zip(s1 if name == "paralstm" else (s1,), sb if name == "paralstm" else (sb,)):
        torch.testing.assert_close(a, b.squeeze(1), rtol=1e-12, atol=1e-12)
    assert y1.requires_grad and not yb.requires_grad


def test_iteration_record_and_limits():
    m = make("paralstm", num_layers=2, mode="newton")
    x = torch.randn(50, B, D, dtype=torch.float64)
    m(x)
    assert [type(s).__name__ for s in m.last_solve] == ["NewtonStats"] * 2
    assert all(2 <= s.iterations < 50 and s.change <= 1e-10 for s in m.last_solve)
    m.max_iters = 1
    m(x)
    assert [s.iterations for s in m.last_solve] == [1, 1]
    m.tol, m.max_iters = 1e-3, None
    m(x)
    loose = [s.iterations for s in m.last_solve]
    m.tol = 1e-14
    m(x)
    assert all(a < b for a, b in zip(loose, [s.iterations for s in m.last_solve]))


@pytest.mark.parametrize("name", CLASSES)
def test_a_non_finite_iteration_falls_back_to_the_step_loop(name):
    """A NaN in the input at step 5: the Newton change is NaN, so the step loop solves the layer:
    finite outputs before step 5 (one iteration alone would leave them inexact), NaN from it on."""
    m = make(name, mode="newton")
    x = torch.randn(T, B, D, dtype=torch.float64)
    x[5, 1, 0] = float("nan")
    y, _ = m(x)
    assert m.last_solve[0].fallback and m.last_solve[0].iterations == 1
    m.mode = "sequential"
    torch.testing.assert_close(y, m(x)[0], rtol=1e-12, atol=1e-12, equal_nan=True)
    assert y[:5].isfinite().all() and y[5:, 1].isnan().all()


def test_public_names_and_parameters():
    assert lstmkit.ParaLSTM is ParaLSTM and lstmkit.ParaGRU is ParaGRU
    shapes = {n: tuple(p.shape) for n, p in ParaLSTM(D, H, num_layers=2).named_parameters()}
    assert shapes == {"weight_ih_l0": (3 * H, D), "weight_hh_l0": (3 * H,), "bias_ih_l0": (3 * H,),
                      "weight_cf_l0": (H,), "weight_co_l0": (H,), "weight_ih_l1": (3 * H, H),
                      "weight_hh_l1": (3 * H,), "bias_ih_l1": (3 * H,), "weight_cf_l1": (H,),
                      "weight_co_l1": (H,)}
    assert sorted(n for n, _ in ParaGRU(D, H, bias=False).named_parameters()) == ["weight_hh_l0", "weight_ih_l0"]


@pytest.mark.parametrize("kw, exc, words", [
    ({"mode": "parallel"}, ValueError, "mode: expected one of 'auto', 'newton', 'sequential'"),
    ({"tol": 0}, ValueError, "tol: expected None or a number > 0, got 0"),
    ({"tol": "small"}, ValueError, "tol: expected None or a number > 0"),
    ({"max_iters": 0}, ValueError, "max_iters: expected an int >= 1, got 0"),
    ({"max_iters": 2.5}, TypeError, "max_iters: expected an int"),
    ({"dropout": 1.0}, ValueError, "dropout: expected a float in [0, 1)"),
])
def test_bad_options_name_the_argument(kw, exc, words):
    with pytest.raises(exc) as e:
        ParaLSTM(D, H, **kw)
    assert words in str(e.value)


def test_bad_inputs_name_the_argument():
    m = ParaLSTM(D, H)
    x = torch.randn(T, B, D)
    with pytest.raises(ValueError, match=r"input: expected 5 features"):
        m(torch.randn(T, B, D + 1))
    with pytest.raises(TypeError, match=r"hx: expected a tuple \(h0, c0\)"):
        m(x, torch.zeros(1, B, H))
    with pytest.raises(ValueError, match=r"c0: expected shape \(1, 3, 4\)"):
        m(x, (torch.zeros(1, B, H), torch.zeros(2, B, H)))
    with pytest.raises(TypeError, match=r"input: expected dtype torch.float32"):
        m(x.double())
    with pytest.raises(ValueError, match=r"h0: expected shape \(1, 3, 4\)"):
        ParaGRU(D, H)(x, torch.zeros(B, H))
