"""QRNN fo-pooling (Bradbury et al. 2016, arXiv 1611.01576): the step against the paper's
equations written out here, the causal convolution against torch's conv1d, and the signed
log-space coefficients against the plain ones."""
import pytest
import torch

from lstmkit.cells.qrnn import QRNNSpec

H, B, D = 4, 3, 5
f64 = torch.float64


def test_step_is_fo_pooling():
    u, c = torch.randn(B, 3 * H, dtype=f64), torch.randn(B, H, dtype=f64)
    z, f, o = torch.tanh(u[:, :H]), torch.sigmoid(u[:, H:2 * H]), torch.sigmoid(u[:, 2 * H:])
    c_new, gates = QRNNSpec(H).step(u, c)
    torch.testing.assert_close(c_new, f * c + (1 - f) * z, rtol=0, atol=1e-14)
    torch.testing.assert_close(QRNNSpec(H).readout(u, c_new), o * c_new, rtol=0, atol=1e-14)
    assert list(gates) == ["z", "f", "o"]
    torch.testing.assert_close(gates["o"], o)


@pytest.mark.parametrize("window", [1, 2, 4])
def test_projection_is_a_causal_conv1d(window):
    """u_t = Σ_j W[:, :, j] x_{t−k+1+j} + b: torch's conv1d over the inputs with k − 1 zeros before."""
    spec = QRNNSpec(H, window=window)
    T = 7
    x = torch.randn(T, B, D, dtype=f64)
    p = {"w_ih": torch.randn(3 * H, D, window, dtype=f64), "b_ih": torch.randn(3 * H, dtype=f64)}
    u = spec.project(torch.cat([x.new_zeros(window - 1, B, D), x]), p)
    want = torch.nn.functional.conv1d(x.permute(1, 2, 0), p["w_ih"], p["b_ih"], padding=window - 1)
    torch.testing.assert_close(u, want[..., :T].permute(2, 0, 1), rtol=1e-12, atol=1e-12)
    assert spec.param_shapes(D) == {"w_ih": (3 * H, D, window), "b_ih": (3 * H,)}


@pytest.mark.parametrize("scale", [1.0, 20.0])
def test_log_coefficients_give_the_step_for_either_sign_of_z(scale):
    spec = QRNNSpec(H)
    u = scale * torch.randn(B, 3 * H, dtype=f64)
    c = torch.randn(B, H, dtype=f64)
    log_a, pos, neg = spec.log_coefficients(u)
    z = torch.tanh(u[:, :H])
    assert bool((z > 0).any()) and bool((z < 0).any())
    torch.testing.assert_close(torch.exp(log_a) * c + torch.exp(pos) - torch.exp(neg), spec.step(u, c)[0],
                               rtol=1e-12, atol=1e-13)
    assert bool((torch.exp(pos)[z <= 0] == 0).all()) and bool((torch.exp(neg)[z >= 0] == 0).all())


def test_log_coefficients_gradcheck():
    u = torch.randn(2, 3 * H, dtype=f64)
    u = (u + 0.1 * u.sign()).requires_grad_()          # away from z = 0, where the sign switches
    assert torch.autograd.gradcheck(lambda v: QRNNSpec(H).log_coefficients(v), (u,))


def test_coefficient_and_readout_backward_equal_autograd():
    """The fused engine's hand-written derivatives of (a, b) and of h = o ⊙ c against autograd."""
    spec = QRNNSpec(H)
    g = torch.Generator().manual_seed(7)
    u = (3 * torch.randn(6, B, 3 * H, generator=g, dtype=f64)).requires_grad_()
    c = torch.randn(6, B, H, generator=g, dtype=f64, requires_grad=True)
    da, db, dh = torch.randn(3, 6, B, H, generator=g, dtype=f64)
    parts = spec.coefficient_parts(u.detach())
    torch.testing.assert_close(parts["z"], torch.tanh(u[..., :H]).detach(), rtol=0, atol=1e-15)
    want_u, = torch.autograd.grad(spec.coefficients(u), u, (da, db))
    want_o = torch.autograd.grad(spec.readout(u, c), (u, c), dh)
    got = torch.full_like(u, float("nan"))
    spec.coefficients_backward(parts, da, db, got)
    dc = spec.readout_backward(u.detach(), c.detach(), dh, got)
    torch.testing.assert_close(got[..., :2 * H], want_u[..., :2 * H], rtol=1e-12, atol=1e-13)
    torch.testing.assert_close(got[..., 2 * H:], want_o[0][..., 2 * H:], rtol=1e-12, atol=1e-13)
    torch.testing.assert_close(dc, want_o[1], rtol=1e-12, atol=1e-13)
