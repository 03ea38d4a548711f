"""The engines graph capture uses, against the reference engine: traced (the scan loop that
torch.export and the ONNX exporter see) and custom_op (the eager engine as the operator
torch.compile calls)."""
from __future__ import annotations

import pytest
import torch

from lstmkit.engines import custom_op, reference, traced

from ..variants import make, sweep

D, H, T, B = 3, 5, 6, 2


def _engine_case(name, dtype=torch.float64, seed=0):
    torch.manual_seed(seed)
    m = make(name, D, H, dtype=dtype).train()
    spec, p = m.specs[0], m.layer_params(0)
    x = torch.randn(T, B, D, dtype=dtype, requires_grad=True)
    state = tuple(torch.randn(B, s, dtype=dtype, requires_grad=True) for s in spec.state_sizes)
    mask = (torch.arange(T)[:, None] < torch.tensor([T, T - 2])[None]).unsqueeze(-1)
    noise = m._noise(spec, T, B, x)
    return spec, p, x, state, mask, noise


def _run_all(run, spec, p, x, state, mask, noise, reverse):
    """Outputs, final states, cells (LSTMs) and the gradient of a weighted sum w.r.t. everything."""
    r = run(spec, x, state, p, mask=mask, reverse=reverse, noise=noise, want_cells=len(state) == 2)
    outs = [r.output, *r.state] + ([r.cells] if r.cells is not None else [])
    gen = torch.Generator().manual_seed(1)
    loss = sum((o * torch.randn(o.shape, generator=gen, dtype=o.dtype)).sum() for o in outs)
    grads = torch.autograd.grad(loss, [x, *state, *p.values()])
    return [o.detach() for o in outs] + list(grads)


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("name", sweep(fast=("lstm", "layer_norm", "gru", "depth_gated")))
def test_traced_and_custom_op_engines_equal_the_reference(name, reverse):
    """The scan loop (export, ONNX) and the operator (compile) give the reference engine's
    outputs, states, cells and every gradient: masks, training noise and both directions."""
    case = _engine_case(name)
    want = _run_all(reference.run, *case, reverse)
    for run in (traced.run, custom_op.run):
        got = _run_all(run, *case, reverse)
        for a, b in zip(want, got):
            torch.testing.assert_close(b, a, atol=1e-10, rtol=1e-10)


def test_custom_op_passes_opcheck():
    """Schema, fake kernel and autograd registration of lstmkit::run, checked by torch."""
    spec, p, x, state, mask, noise = _engine_case("peepholes")
    config = custom_op._config(spec, tuple(p), "fused", False, True, 0.0)
    args = (config, x, list(state), list(p.values()), mask, noise.keep_c, noise.keep_h, noise.drop, None)
    torch.library.opcheck(custom_op.run_op, args)
