"""minGRU / minLSTM steps (Feng et al. 2024) against their equations written out here, and
the log-space coefficients against the log of the plain ones."""
import math

import pytest
import torch

from lstmkit.cells.minrnn import MinGRUSpec, MinLSTMSpec, act, log_act

H, B = 4, 3
sig = torch.sigmoid
SPECS = {"mingru": MinGRUSpec(H), "minlstm": MinLSTMSpec(H)}


def g_by_hand(k):
    return torch.tensor([v + 0.5 if v >= 0 else 1 / (1 + math.exp(-v)) for v in k.flatten().tolist()],
                        dtype=k.dtype).reshape(k.shape)


def test_act_is_the_papers_g():
    k = torch.linspace(-8, 8, 101, dtype=torch.float64)
    torch.testing.assert_close(act(k), g_by_hand(k), rtol=0, atol=1e-15)
    assert bool((act(k) > 0).all())


def test_log_act_is_log_g_and_finite_far_out():
    k = torch.linspace(-30, 30, 201, dtype=torch.float64)
    torch.testing.assert_close(log_act(k), torch.log(g_by_hand(k)), rtol=0, atol=1e-12)
    far = torch.tensor([-1e3, 1e3], dtype=torch.float64, requires_grad=True)
    out = log_act(far)
    out.sum().backward()
    assert bool(torch.isfinite(out).all()) and bool(torch.isfinite(far.grad).all())
    assert out[0].item() == pytest.approx(-1e3)          # log σ(k) ≈ k, where σ(k) underflows


def test_mingru_step_by_hand():
    u, h = torch.randn(B, 2 * H, dtype=torch.float64), torch.randn(B, H, dtype=torch.float64)
    k_z, k_g = u[:, :H], u[:, H:]
    z, g = sig(k_z), g_by_hand(k_g)
    h_new, gates = SPECS["mingru"].step(u, h)
    torch.testing.assert_close(h_new, (1 - z) * h + z * g, rtol=0, atol=1e-14)
    assert set(gates) == {"z", "g"}
    torch.testing.assert_close(gates["z"], z)


def test_minlstm_step_by_hand():
    u, h = torch.randn(B, 3 * H, dtype=torch.float64), torch.randn(B, H, dtype=torch.float64)
    i, f, g = sig(u[:, :H]), sig(u[:, H:2 * H]), g_by_hand(u[:, 2 * H:])
    h_new, gates = SPECS["minlstm"].step(u, h)
    torch.testing.assert_close(h_new, f / (f + i) * h + i / (f + i) * g, rtol=0, atol=1e-14)
    assert set(gates) == {"i", "f", "g"}
    torch.testing.assert_close(gates["f"], f)


@pytest.mark.parametrize("name", SPECS)
@pytest.mark.parametrize("scale", [1.0, 20.0])
def test_log_coefficients_give_the_step(name, scale):
    """exp(log a) ⊙ h + exp(log b) is the plain step, gates far into saturation included."""
    spec = SPECS[name]
    u = scale * torch.randn(B, len(spec.gates) * H, dtype=torch.float64)
    h = torch.randn(B, H, dtype=torch.float64)
    log_a, log_b = spec.log_coefficients(u)
    torch.testing.assert_close(torch.exp(log_a) * h + torch.exp(log_b), spec.step(u, h)[0], rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("name", SPECS)
def test_log_coefficients_gradcheck(name):
    spec = SPECS[name]
    u = torch.randn(2, len(spec.gates) * H, dtype=torch.float64)
    u = (u + 0.1 * u.sign()).requires_grad_()        # away from the kink of g at 0
    assert torch.autograd.gradcheck(lambda v: spec.log_coefficients(v), (u,))


@pytest.mark.parametrize("name", SPECS)
def test_param_shapes(name):
    spec = SPECS[name]
    G = len(spec.gates) * H
    assert spec.param_shapes(5) == {"w_ih": (G, 5), "b_ih": (G,)}
    assert type(spec)(H, bias=False).param_shapes(5) == {"w_ih": (G, 5)}


@pytest.mark.parametrize("name", SPECS)
def test_coefficients_backward_equals_autograd(name):
    """The fused engine's hand-written derivative of (a, b) against autograd of ``coefficients``."""
    spec = SPECS[name]
    g = torch.Generator().manual_seed(7)
    u = 3 * torch.randn(6, B, len(spec.gates) * H, generator=g, dtype=torch.float64)
    u = (u + 0.1 * u.sign()).requires_grad_()          # away from the kink of g at 0
    da, db = torch.randn(2, 6, B, H, generator=g, dtype=torch.float64)
    want = torch.autograd.grad(spec.coefficients(u), u, (da, db))[0]
    got = torch.full_like(u, float("nan"))
    spec.coefficients_backward(spec.coefficient_parts(u.detach()), da, db, got)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-13)
