"""The Newton solver's pieces (engines.newton): the block scan and the adjoint against their
loops, the Jacobian blocks against autograd's full Jacobian, the solver's exactness after k
iterations, a case that needs many iterations."""
import pytest
import torch

from lstmkit.cells.diagonal import DiagGRUSpec, DiagLSTMSpec
from lstmkit.engines import newton

f64 = torch.float64
B, D, H = 2, 3, 4
SPECS = {"paralstm": DiagLSTMSpec(H), "paragru": DiagGRUSpec(H)}


def blocks(T, K, seed=0, scale=0.6):
    g = torch.Generator().manual_seed(seed)
    A = scale * torch.randn(T, K, K, B, H, generator=g, dtype=f64)
    b = torch.randn(T, K, B, H, generator=g, dtype=f64)
    return A, b


@pytest.mark.parametrize("K", [1, 2])
@pytest.mark.parametrize("T", [1, 2, 3, 8, 37, 100])
def test_block_scan_equals_its_loop(K, T):
    A, b = blocks(T, K)
    torch.testing.assert_close(newton.linear_scan(A, b), newton.linear_scan_sequential(A, b),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("K", [1, 2])
def test_adjoint_equals_the_reverse_loop(K):
    J, g = blocks(29, K, seed=1)
    lam, out = torch.zeros_like(g[0]), []
    for t in range(28, -1, -1):              # λ_t = g_t + J_{t+1}ᵀ λ_{t+1}
        nxt = J[t + 1].transpose(0, 1) if t + 1 < 29 else torch.zeros_like(J[0])
        lam = g[t] + (nxt * lam.unsqueeze(0)).sum(1)
        out.append(lam)
    torch.testing.assert_close(newton.adjoint(J, g), torch.stack(out[::-1]), rtol=1e-12, atol=1e-12)


def params(spec, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return {k: scale * torch.randn(s, generator=g, dtype=f64) for k, s in spec.param_shapes(D).items()}


def jvp_jacobian(fn, prev):
    """The reference twin of ``spec.jacobian``: column k of every per-unit block is the
    forward-mode derivative along a tangent of ones on state component k (the recurrence is
    diagonal, so unit j's image is J[j] e_k)."""
    cols = []
    for k in range(prev.shape[-3]):
        e = torch.zeros_like(prev)
        e[..., k, :, :] = 1
        value, col = torch.func.jvp(fn, (prev,), (e,))
        cols.append(col)
    return value, torch.stack(cols, -3)


@pytest.mark.parametrize("name", SPECS)
def test_jacobian_blocks_are_autograds(name):
    """spec.jacobian equals forward-mode AD over T steps at once, and autograd's full Jacobian of
    one step over (K, B, H) is block-diagonal per unit with those blocks."""
    spec = SPECS[name]
    p, K = params(spec, scale=2.0), len(spec.state_names)
    u = torch.randn(6, B, 3 * H, dtype=f64)
    prev = torch.randn(6, K, B, H, dtype=f64)

    def fn(s):
        return torch.stack(spec.step(u, s.unbind(-3), p)[0], -3)

    value, J = spec.jacobian(u, prev.unbind(-3), p)
    torch.testing.assert_close(torch.stack(value, -3), fn(prev), rtol=1e-14, atol=1e-14)
    ref_value, ref_J = jvp_jacobian(fn, prev)
    torch.testing.assert_close(J, ref_J, rtol=1e-12, atol=1e-12)
    full = torch.autograd.functional.jacobian(fn, prev[:1])[0, :, :, :, 0]     # (K, B, H, K, B, H)
    want = torch.zeros_like(full)
    for bb in range(B):
        for j in range(H):
            want[:, bb, j, :, bb, j] = J[0, :, :, bb, j]
    torch.testing.assert_close(full, want, rtol=1e-12, atol=1e-12)


def trajectories(name, T, scale=1.0, max_iters=None, tol=1e-12):
    """(newton's h and final state with its stats, the step loop's)."""
    spec = SPECS[name]
    p = params(spec, scale=scale)
    x = torch.randn(T, B, D, generator=torch.Generator().manual_seed(3), dtype=f64)
    s0 = tuple(torch.randn(B, H, dtype=f64) for _ in spec.state_names)
    seq = newton.run(spec, x, s0, p, mode="sequential")
    new = newton.run(spec, x, s0, p, mode="newton", tol=tol, max_iters=max_iters)
    return new, seq


@pytest.mark.parametrize("name", SPECS)
def test_first_k_steps_exact_after_k_iterations(name):
    new, seq = trajectories(name, 40, scale=2.0, max_iters=3)
    assert new.stats.iterations == 3
    torch.testing.assert_close(new.output[:3], seq.output[:3], rtol=1e-13, atol=1e-13)
    assert (new.output - seq.output).abs().max() > 1e-6        # not yet converged further on


@pytest.mark.parametrize("name", SPECS)
def test_strongly_nonlinear_case_needs_many_iterations_and_converges(name):
    """Large recurrent and input weights: far from the zero-state guess, many iterations."""
    new, seq = trajectories(name, 120, scale=4.0)
    assert new.stats.iterations >= 8, new.stats
    assert new.stats.change <= 1e-12
    torch.testing.assert_close(new.output, seq.output, rtol=1e-10, atol=1e-10)
    for a, b in zip(new.state, seq.state):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_iterations_never_exceed_T():
    new, seq = trajectories("paralstm", 5, scale=4.0, tol=0.0)  # tol 0 is never met: T stops it
    assert new.stats.iterations == 5
    torch.testing.assert_close(new.output, seq.output, rtol=1e-12, atol=1e-12)
