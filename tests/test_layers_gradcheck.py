"""torch.autograd.gradcheck in float64 for every variant (the reference engine's autograd
is the thing checked here; fused engines are compared against it elsewhere)."""
import pytest
import torch

from lstmkit.engines import Noise, reference

from .variants import ALL, FAST, make

T, B, D, H = 4, 2, 3, 4


@pytest.mark.parametrize("name,bidirectional", [p if p[0] in FAST and p != ("depth_gated", True)
                                                else pytest.param(*p, marks=pytest.mark.slow) for p in
                                                [(n, False) for n in ALL] + [("lstm", True), ("peepholes", True),
                                                                             ("gru_reset_before", True),
                                                                             ("depth_gated", True)]])
def test_gradcheck_module(name, bidirectional):
    torch.manual_seed(0)
    m = make(name, D, H, bidirectional=bidirectional, dtype=torch.float64, backend="reference").eval()
    x = torch.randn(T, B, D, dtype=torch.float64, requires_grad=True)
    params = list(m.parameters())
    lengths = torch.tensor([4, 3])

    def f(x, *ps):
        with torch.nn.utils.stateless._reparametrize_module(m, dict(zip([n for n, _ in m.named_parameters()], ps))):
            y, s = m(x, lengths=lengths)
        s = s if isinstance(s, tuple) else (s,)
        return (y, *s)

    assert torch.autograd.gradcheck(f, (x, *params), eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", ["zoneout", "recurrent_dropout", "gru_zoneout"])
def test_gradcheck_training_noise_fixed(name):
    """Training-mode zoneout / recurrent dropout with the masks held fixed."""
    torch.manual_seed(0)
    m = make(name, D, H, dtype=torch.float64)
    spec, p = m.specs[0], m.layer_params(0)
    noise = m.train()._noise(spec, T, B, torch.zeros((), dtype=torch.float64))
    assert any(isinstance(v, torch.Tensor) for v in noise)
    x = torch.randn(T, B, D, dtype=torch.float64, requires_grad=True)
    state = tuple(torch.randn(B, s, dtype=torch.float64, requires_grad=True) for s in spec.state_sizes)
    names = list(p)

    def f(x, *rest):
        st, ps = rest[:len(state)], dict(zip(names, rest[len(state):]))
        r = reference.run(spec, x, st, ps, noise=noise)
        return (r.output, *r.state)

    assert torch.autograd.gradcheck(f, (x, *state, *p.values()), eps=1e-6, atol=1e-7)
