"""MinLSTM / MinGRU modules: the scan against the step loop (outputs, final states, every
gradient), state carried across calls, lengths, unbatched, batch_first, errors."""
import pytest
import torch

import lstmkit
from lstmkit.parallel import MinGRU, MinLSTM

from .helpers import TOL, assert_close_all, run_with_grads

CLASSES = {"mingru": MinGRU, "minlstm": MinLSTM}
T, B, D, H = 13, 3, 5, 4


def make(name, dtype=torch.float64, seed=0, **kw):
    torch.manual_seed(seed)
    return CLASSES[name](D, H, dtype=dtype, **kw)


def both_modes(name, x, h0=None, dtype=torch.float64, mode="parallel", **kw):
    """(the run in ``mode``, the step loop's): outputs, final states and every gradient."""
    lengths = kw.pop("lengths", None)
    m = make(name, dtype, mode=mode, **kw)
    par = run_with_grads(m, x, h0, **({"lengths": lengths} if lengths is not None else {}))
    m.mode = "sequential"
    seq = run_with_grads(m, x, h0, **({"lengths": lengths} if lengths is not None else {}))
    return par, seq


@pytest.mark.parametrize("name", CLASSES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("case", ["plain", "h0_layers2", "lengths_chunks", "batch_first_nobias"])
@pytest.mark.parametrize("mode", ["parallel", "fused"])
def test_parallel_equals_sequential_with_every_gradient(name, dtype, case, mode):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(T, B, D, generator=g, dtype=dtype)
    kw, h0 = {}, None
    if case == "h0_layers2":
        kw, h0 = {"num_layers": 2}, torch.randn(2, B, H, generator=g, dtype=dtype)
    elif case == "lengths_chunks":
        kw = {"lengths": torch.tensor([T, 4, 1]), "chunk_size": 3, "num_layers": 2}
    elif case == "batch_first_nobias":
        kw, x = {"batch_first": True, "bias": False}, x.transpose(0, 1)
    par, seq = both_modes(name, x, h0, dtype, mode, **kw)
    if h0 is not None:
        assert "d_hx0" in par
    scale = max(1.0, max(t.abs().max().item() for t in seq.values()))
    assert_close_all(par, seq, TOL[dtype] * scale)


@pytest.mark.parametrize("name", CLASSES)
@pytest.mark.parametrize("mode", ["parallel", "fused"])
def test_gradcheck(name, mode):
    m = make(name, num_layers=2, chunk_size=2, mode=mode)
    x = torch.randn(5, 2, D, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, 2, H, dtype=torch.float64, requires_grad=True)
    names = [n for n, _ in m.named_parameters()]

    def f(x, h0, *ps):          # functional_call: the parameters are inputs of the checked function
        return torch.func.functional_call(m, dict(zip(names, ps)), (x, h0), {"lengths": [5, 3]})

    assert torch.autograd.gradcheck(f, (x, h0, *[p.detach().clone().requires_grad_() for p in m.parameters()]))


@pytest.mark.parametrize("name", CLASSES)
@pytest.mark.parametrize("mode", ["parallel", "sequential", "fused"])
def test_stepping_one_step_at_a_time_equals_the_full_run(name, mode):
    m = make(name, num_layers=2, mode=mode)
    x = torch.randn(T, B, D, dtype=torch.float64)
    y, h_n = m(x)
    h, ys = None, []
    for t in range(T):
        y_t, h = m(x[t:t + 1], h)
        ys.append(y_t)
    torch.testing.assert_close(torch.cat(ys), y, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(h, h_n, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", CLASSES)
def test_lengths_equal_running_each_sequence_alone(name):
    m = make(name, num_layers=2)
    x = torch.randn(T, B, D, dtype=torch.float64)
    h0 = torch.randn(2, B, H, dtype=torch.float64)
    lengths = [T, 6, 1]
    y, h_n = m(x, h0, lengths=lengths)
    for b, n in enumerate(lengths):
        y_b, h_b = m(x[:n, b:b + 1], h0[:, b:b + 1])
        torch.testing.assert_close(y[:n, b:b + 1], y_b)
        torch.testing.assert_close(h_n[:, b:b + 1], h_b)
        assert bool((y[n:, b] == 0).all())


@pytest.mark.parametrize("name", CLASSES)
def test_unbatched_and_batch_first(name):
    m = make(name, num_layers=2)
    x = torch.randn(T, B, D, dtype=torch.float64)
    h0 = torch.randn(2, B, H, dtype=torch.float64)
    y, h_n = m(x, h0)
    y1, h1 = m(x[:, 0], h0[:, 0])
    assert y1.shape == (T, H) and h1.shape == (2, H)
    torch.testing.assert_close(y1, y[:, 0])
    torch.testing.assert_close(h1, h_n[:, 0])
    m.batch_first = True
    yb, hb = m(x.transpose(0, 1), h0)
    assert yb.shape == (B, T, H)
    torch.testing.assert_close(yb, y.transpose(0, 1))
    torch.testing.assert_close(hb, h_n)


@pytest.mark.parametrize("name", CLASSES)
def test_parameters_and_dropout(name):
    m = make(name, num_layers=3, dropout=0.5)
    G = {"mingru": 2, "minlstm": 3}[name] * H
    assert {n: tuple(p.shape) for n, p in m.named_parameters()} == {
        "weight_ih_l0": (G, D), "bias_ih_l0": (G,), "weight_ih_l1": (G, H), "bias_ih_l1": (G,),
        "weight_ih_l2": (G, H), "bias_ih_l2": (G,)}
    x = torch.randn(T, B, D, dtype=torch.float64)
    m.eval()
    torch.testing.assert_close(m(x)[0], m(x)[0])
    m.train()
    torch.manual_seed(0)
    a = m(x)[0]
    torch.manual_seed(1)
    assert not torch.equal(a, m(x)[0])          # dropout between layers acts in training


@pytest.mark.parametrize("name", CLASSES)
def test_bfloat16_computes_in_float32(name):
    m32 = make(name, torch.float32)
    m16 = make(name, torch.bfloat16)
    x = torch.randn(T, B, D)
    y16, h16 = m16(x.bfloat16())
    assert y16.dtype == h16.dtype == torch.bfloat16
    y32, _ = m32(x)
    assert (y16.float() - y32).abs().max().item() < 5e-2


@pytest.mark.parametrize("name", CLASSES)
def test_trace_records_gates_and_h(name):
    m = make(name, num_layers=2)
    x = torch.randn(T, B, D, dtype=torch.float64)
    with lstmkit.trace(m) as tr:
        y, _ = m(x, lengths=[T, 5, 2])
    letters = {"mingru": "zgh", "minlstm": "ifgh"}[name]
    assert "".join(tr[1]) == letters
    torch.testing.assert_close(tr[1].h, y)
    assert all(tuple(v.shape) == (T, B, H) for v in tr[0].values())
    assert bool((tr[0][letters[0]][5:, 1] == 0).all())


BAD = [
    ({"mode": "fast"}, ValueError, "mode"),
    ({"dropout": 1.5}, ValueError, "dropout"),
    ({"num_layers": 0}, ValueError, "num_layers"),
    ({"chunk_size": 0}, ValueError, "chunk_size"),
    ({"hidden_size": 2.0}, TypeError, "hidden_size"),
]


@pytest.mark.parametrize("kw,exc,word", BAD)
def test_bad_constructor_arguments(kw, exc, word):
    args = {"input_size": D, "hidden_size": H, **kw}
    with pytest.raises(exc, match=word):
        MinLSTM(**args)


@pytest.mark.parametrize("call,exc,word", [
    (lambda m: m(torch.randn(T, B, D + 1, dtype=torch.float64)), ValueError, "input_size"),
    (lambda m: m(torch.randn(T, dtype=torch.float64)), ValueError, "input"),
    (lambda m: m(torch.randn(T, B, D)), TypeError, "dtype"),
    (lambda m: m(torch.randn(T, B, D, dtype=torch.float64), torch.zeros(1, B + 1, H, dtype=torch.float64)),
     ValueError, "h0"),
    (lambda m: m(torch.randn(T, B, D, dtype=torch.float64), lengths=[T + 1, 1, 1]), ValueError, "lengths"),
    (lambda m: m(torch.randn(T, B, D, dtype=torch.float64), lengths=[1, 1]), ValueError, "lengths"),
    (lambda m: m([1.0, 2.0]), TypeError, "input"),
])
def test_bad_forward_arguments(call, exc, word):
    with pytest.raises(exc, match=word):
        call(make("minlstm"))


@pytest.mark.parametrize("name", CLASSES)
def test_registry_and_memory_lab(name):
    """``variant(name)`` builds the module; the drop-in sweeps (``VARIANTS``) leave it out; the
    memory lab's model trains it (no backend passed, chrono init skipped)."""
    from lstmkit.tasks.memory import make_task
    from lstmkit.tasks.memory.models import SequenceModel
    from lstmkit.variants import PARALLEL_VARIANTS, VARIANTS, variant

    assert type(variant(name).build(D, H)) is CLASSES[name]
    assert name in PARALLEL_VARIANTS and name not in VARIANTS
    task = make_task("adding", 8)
    model = SequenceModel(name, task, 6)
    assert type(model.rnn) is CLASSES[name]
    batch = task.sample(4, torch.Generator().manual_seed(0))
    out = model(batch)
    out.sum().backward()
    assert out.shape == (4, task.output_size)
    assert all(p.grad is not None for p in model.rnn.parameters())


def test_memory_cli_accepts_parallel_cells_only_there():
    from lstmkit.cli._common import UsageError, cells

    assert cells("minlstm,mingru", many=True, parallel=True) == ["minlstm", "mingru"]
    with pytest.raises(UsageError, match="--cell"):
        cells("minlstm", many=True)


def test_auto_is_the_fused_loop_on_the_cpu(monkeypatch):
    """auto on the CPU: the fused loop, the fastest measured there (docs/parallel.md)."""
    from lstmkit.engines import scan
    seen = []
    real = scan.run
    monkeypatch.setattr(scan, "run", lambda *a, **k: seen.append(k["mode"]) or real(*a, **k))
    make("mingru")(torch.randn(T, B, D, dtype=torch.float64))
    assert seen == ["fused"]


@pytest.mark.slow
@pytest.mark.parametrize("cls", [MinGRU, MinLSTM, lstmkit.QRNN], ids=["mingru", "minlstm", "qrnn"])
def test_t65536_with_inputs_of_50_stays_finite_and_modes_agree(cls):
    """T = 65,536 in float32 with inputs of ±50 (gates saturated): no overflow in log space, no
    NaN in any gradient, the scan's outputs equal the fused loop's; every gradient equal in
    float64 (T 4096: float32's parameter gradients are sums of 65k terms of size ~50, equal only
    to the rounding of such sums)."""
    torch.manual_seed(0)
    m = cls(2, 3)
    x = 50 * torch.randn(65536, 1, 2)
    runs = {}
    for dtype, steps in ((torch.float32, 65536), (torch.float64, 4096)):
        m.to(dtype)
        for mode in ("parallel", "fused"):
            m.mode = mode
            xi = x[:steps].to(dtype, copy=True).requires_grad_()
            m.zero_grad(set_to_none=True)
            y, s = m(xi)
            h_n = s if isinstance(s, torch.Tensor) else s.c
            (y.sum() + h_n.sum()).backward()
            runs[dtype, mode] = [y, h_n, xi.grad, *(p.grad for p in m.parameters())]
            assert all(bool(torch.isfinite(t).all()) for t in runs[dtype, mode]), (dtype, mode)
    # the QRNN's signed scan subtracts two positive parts that grow over a chunk: ~2e−4 here
    tol32 = 1e-3 if cls is lstmkit.QRNN else 1e-4
    for a, b in zip(runs[torch.float32, "parallel"][:2], runs[torch.float32, "fused"][:2]):
        assert (a - b).abs().max().item() <= tol32 * max(1.0, b.abs().max().item())
    for a, b in zip(runs[torch.float64, "parallel"], runs[torch.float64, "fused"]):
        assert (a - b).abs().max().item() <= 1e-10 * max(1.0, b.abs().max().item())


@pytest.mark.parametrize("name", CLASSES)
def test_fused_chunks_equal_one_chunk_with_every_gradient(name):
    """The fused mode's chunks of time (carried state, coefficients recomputed per chunk in the
    backward) against one chunk over the whole sequence: float64 within 1e-10."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(T, B, D, generator=g, dtype=torch.float64)
    h0 = torch.randn(2, B, H, generator=g, dtype=torch.float64)
    m = make(name, num_layers=2, mode="fused", chunk_size=T)
    whole = run_with_grads(m, x, h0, lengths=[T, 7, 2])
    m.chunk_size = 4
    chunked = run_with_grads(m, x, h0, lengths=[T, 7, 2])
    assert_close_all(chunked, whole, 1e-10)
