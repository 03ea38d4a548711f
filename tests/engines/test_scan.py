"""The log-space parallel scan (Heinsen 2023) against its sequential loop: values, every
gradient, chunks, masks."""
import pytest
import torch

from lstmkit.cells.minrnn import MinGRUSpec, MinLSTMSpec
from lstmkit.cells.qrnn import QRNNSpec
from lstmkit.engines import scan

T, B, H = 37, 3, 4
f64 = torch.float64


def coefficients(T, B, H, dtype=f64, seed=0):
    g = torch.Generator().manual_seed(seed)
    log_a = -torch.nn.functional.softplus(torch.randn(T, B, H, generator=g, dtype=dtype))
    log_b = torch.randn(T, B, H, generator=g, dtype=dtype) - 1
    h0 = torch.randn(B, H, generator=g, dtype=dtype)          # any sign: the h0 term is kept out of the log
    return log_a, log_b, h0


def with_grads(fn, *leaves, seed=1):
    leaves = [t.detach().clone().requires_grad_() for t in leaves]
    out = fn(*leaves)
    w = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed), dtype=out.dtype)
    (out * w).sum().backward()
    return [out.detach(), *(t.grad for t in leaves)]


def assert_all_close(a, b, tol):
    for k, (x, y) in enumerate(zip(a, b)):
        err = (x - y).abs().max().item() / max(1.0, y.abs().max().item())
        assert err <= tol, f"tensor {k}: {err:.2e} > {tol:.0e}"


@pytest.mark.parametrize("chunk_size", [1, 5, 64])
def test_scan_equals_loop_with_every_gradient(chunk_size):
    leaves = coefficients(T, B, H)
    par = with_grads(lambda a, b, h: scan.scan(a, b, h, chunk_size=chunk_size), *leaves)
    seq = with_grads(scan.scan_sequential, *leaves)
    assert_all_close(par, seq, 1e-10)


def test_scan_float32_within_1e5():
    leaves = coefficients(T, B, H, torch.float32)
    assert_all_close(with_grads(scan.scan, *leaves), with_grads(scan.scan_sequential, *leaves), 1e-5)


def test_scan_gradcheck():
    leaves = [t.requires_grad_() for t in coefficients(6, 2, 2)]
    assert torch.autograd.gradcheck(lambda a, b, h: scan.scan(a, b, h, chunk_size=4), leaves)


def test_long_sequence_chunked_equals_unchunked_and_loop():
    log_a, log_b, h0 = coefficients(5000, 2, 3)
    small = scan.scan(log_a, log_b, h0, chunk_size=64)
    whole = scan.scan(log_a, log_b, h0, chunk_size=5000)
    loop = scan.scan_sequential(log_a, log_b, h0)
    torch.testing.assert_close(small, loop, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(whole, loop, rtol=1e-9, atol=1e-12)


def test_chunks_keep_float32_precise_over_long_sequences():
    """One cumsum over 5000 steps of log a ≈ −0.7 loses float32's relative precision in
    log b − a*; the default chunk (64 steps) keeps it."""
    log_a, log_b, h0 = coefficients(5000, 2, 3)
    exact = scan.scan_sequential(log_a, log_b, h0)
    args = (log_a.float(), log_b.float(), h0.float())
    err = lambda out: ((out.double() - exact).abs() / exact.abs()).max().item()
    assert err(scan.scan(*args)) < 1e-5
    assert err(scan.scan(*args, chunk_size=5000)) > 1e-4      # the failure chunks prevent


def test_mask_freezes_state_and_gradients_stay_finite():
    leaves = coefficients(T, B, H)
    lengths = torch.tensor([T, 10, 1])
    mask = (torch.arange(T)[:, None] < lengths[None, :]).unsqueeze(-1)
    # chunk_size 4: whole chunks lie past the length of sequences 1 and 2 (all log b masked)
    par = with_grads(lambda a, b, h: scan.scan(a, b, h, mask=mask, chunk_size=4), *leaves)
    seq = with_grads(lambda a, b, h: scan.scan_sequential(a, b, h, mask=mask), *leaves)
    assert all(bool(torch.isfinite(t).all()) for t in par)
    assert_all_close(par, seq, 1e-10)
    h = par[0]
    for b, n in enumerate(lengths.tolist()):
        assert bool((h[n - 1:, b] == h[n - 1, b]).all())
        torch.testing.assert_close(h[:n, b], scan.scan_sequential(*(t[:n, b:b + 1] for t in leaves[:2]),
                                                                  leaves[2][b:b + 1])[:, 0])
    assert bool((par[1][lengths[2]:, 2] == 0).all())      # no gradient reaches masked steps


@pytest.mark.parametrize("spec", [MinGRUSpec(H), MinLSTMSpec(H)], ids=["mingru", "minlstm"])
def test_run_parallel_equals_sequential(spec):
    g = torch.Generator().manual_seed(0)
    x, h0 = torch.randn(T, B, 5, generator=g, dtype=f64), torch.randn(B, H, generator=g, dtype=f64)
    p = {k: torch.randn(s, generator=g, dtype=f64) for k, s in spec.param_shapes(5).items()}
    mask = (torch.arange(T)[:, None] < torch.tensor([T, 3, 20])[None, :]).unsqueeze(-1)
    par = scan.run(spec, x, h0, p, mask=mask, mode="parallel", chunk_size=8, record=True)
    seq = scan.run(spec, x, h0, p, mask=mask, mode="sequential", record=True)
    torch.testing.assert_close(par.output, seq.output, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(par.state, seq.state, rtol=1e-10, atol=1e-12)
    assert bool((par.output[3:, 1] == 0).all())
    assert set(par.record) == set(spec.gates) | {"h"}


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_bad_chunk_size(bad):
    with pytest.raises(ValueError, match="chunk_size"):
        scan.scan(*coefficients(3, 1, 1), chunk_size=bad)


def test_scan_signed_equals_loop_with_every_gradient():
    """b of either sign (QRNN): scan(a, b⁺, h0) − scan(a, b⁻, 0) against h = a ⊙ h + b."""
    g = torch.Generator().manual_seed(3)
    log_a = -torch.nn.functional.softplus(torch.randn(T, B, H, generator=g, dtype=f64))
    b = torch.randn(T, B, H, generator=g, dtype=f64)
    h0 = torch.randn(B, H, generator=g, dtype=f64)

    def signed(la, b, h):
        pos = torch.where(b > 0, torch.log(b.clamp(min=1e-300)), scan._LOG_ZERO)
        neg = torch.where(b < 0, torch.log((-b).clamp(min=1e-300)), scan._LOG_ZERO)
        return scan.scan_signed(la, pos, neg, h, chunk_size=5)

    def loop(la, b, h):
        hs = []
        for a_t, b_t in zip(torch.exp(la), b):
            h = a_t * h + b_t
            hs.append(h)
        return torch.stack(hs)

    assert_all_close(with_grads(signed, log_a, b, h0), with_grads(loop, log_a, b, h0), 1e-10)


SPECS = {"mingru": MinGRUSpec(H), "minlstm": MinLSTMSpec(H), "qrnn": QRNNSpec(H)}


def fused(spec, u, h0, mask, chunk_size):
    return scan.ChunkedRecurrence.apply(spec, u, h0, mask, chunk_size)


@pytest.mark.parametrize("name", SPECS)
@pytest.mark.parametrize("masked", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("chunk_size", [1, 5, 16])
def test_chunked_recurrence_equals_unchunked_with_every_gradient(name, masked, chunk_size):
    """Chunks of time inside the Function (a, b recomputed per chunk in the backward) give the
    one-chunk run: outputs, final state, ∂/∂u and ∂/∂h0, float64 within 1e-10."""
    spec = SPECS[name]
    g = torch.Generator().manual_seed(4)
    u = 2 * torch.randn(T, B, len(spec.gates) * H, generator=g, dtype=f64)
    h0 = torch.randn(B, H, generator=g, dtype=f64)
    mask = (torch.arange(T)[:, None] < torch.tensor([T, 9, 1])[None, :]).unsqueeze(-1) if masked else None

    def run(chunk):
        leaves = [t.detach().clone().requires_grad_() for t in (u, h0)]
        y, h_n = fused(spec, *leaves, mask, chunk)
        wy = torch.randn(y.shape, generator=torch.Generator().manual_seed(5), dtype=f64)
        ((y * wy).sum() + (h_n * h_n).sum()).backward()
        return [y.detach(), h_n.detach(), *(t.grad for t in leaves)]

    assert_all_close(run(chunk_size), run(T), 1e-10)


@pytest.mark.parametrize("name", SPECS)
def test_chunked_recurrence_gradcheck(name):
    spec = SPECS[name]
    u = torch.randn(7, 2, len(spec.gates) * 2, dtype=f64)
    u = (u + 0.1 * u.sign()).requires_grad_()        # away from the kink of minRNN's g at 0
    h0 = torch.randn(2, 2, dtype=f64, requires_grad=True)
    mask = (torch.arange(7)[:, None] < torch.tensor([7, 4])[None, :]).unsqueeze(-1)
    small = type(spec)(2)
    assert torch.autograd.gradcheck(lambda u, h: fused(small, u, h, mask, 3), (u, h0))


def test_fused_saves_only_u_h0_and_the_states():
    """Memory bounded by the chunks: what autograd keeps for the backward of one fused layer is
    x, W_ih (the projection's), u, h0 and c; none of the (T, B, H) gate temporaries (the
    unchunked version kept a dozen)."""
    spec = MinLSTMSpec(H)
    g = torch.Generator().manual_seed(6)
    x = torch.randn(200, B, 5, generator=g, dtype=f64, requires_grad=True)
    p = {k: torch.randn(s, generator=g, dtype=f64, requires_grad=True) for k, s in spec.param_shapes(5).items()}
    h0 = torch.zeros(B, H, dtype=f64)
    saved = []

    def pack(t):
        saved.append(t.numel())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = scan.run(spec, x, h0, p, mode="fused", chunk_size=8).output
    out.sum().backward()
    TBH = 200 * B * H
    allowed = x.numel() + p["w_ih"].numel() + 3 * TBH + B * H + TBH       # x, W, u, h0, c
    assert sum(saved) <= allowed, (sorted(saved), allowed)
    assert sum(1 for n in saved if n >= TBH) <= 3                        # x, u, c: no gate temporaries
