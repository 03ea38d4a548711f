"""The fused engine in float32 is as accurate as the reference engine, at realistic sizes.

test_fused.py compares the engines at tiny sizes, where a long float32 sum or a less
accurate activation does not show. Here, for every variant of the registry and both time
loops of the fused engine (the C++ loops and their PyTorch twins), a float32 model and its
float64 twin run the same input at T = 100, H = 256 (B = 4, D = 32: seconds), and every
result is measured against the float64 reference engine: the output, the final states and
every gradient (input, initial states, each parameter). The fused engine's float32 error
must stay within a small factor of the reference engine's own:

- RMS error relative to the float64 result's RMS, within RMS_FACTOR: averaged over every
  entry, this measure is stable (equally accurate code lands within 1.15 of the reference),
  so the bound is tight;
- max error relative to the float64 result's largest entry, within MAX_FACTOR: one entry's
  rounding is chance (1.9 seen), so the bound is loose.

What they caught (issue 13): tanh as 2σ(2x) − 1, whose error is absolute (1e-7), so many
ulp near 0, put the LSTM's float32 states 2.8-3.3 times as far (RMS) from float64 as the
reference's, the GRU's 1.7-1.9, the Elman RNN's 1.5-1.6 (now common.h tanh_v and common.py
tanh, checked directly by test_tanh_within_2_ulp). dW_hh as one GEMM over all T·B rows erred
up to 2.6 times as much as the reference's one GEMM per step (test_outer_sum_*; end to end
1.2-1.4 times, below RMS_FACTOR).

The LN-LSTM at its default init (γ = 1) is chaotic at T = 100: the float32 rounding of
either engine grows about 300-fold along the sequence (1e-7 at the first step, 2e-5 at the
last), so which engine ends nearer float64 is chance (0.3 to 4 times, seed to seed, for
equally accurate code). The sweep runs it with γ_hh halved, which keeps every code path
and makes the rounding stay put; ``test_issue_13_case`` runs issue 13's own case (default
init) with a factor loose enough for that chance and far below the 750 reported there.
"""
from __future__ import annotations

import copy
import functools

import numpy as np
import pytest
import torch

import lstmkit
from lstmkit import variants
from lstmkit.engines.fused import build
from lstmkit.engines.fused.common import outer_sum
from lstmkit.engines.fused.common import tanh as twin_tanh

T, B, D, H = 100, 4, 32, 256
RMS_FACTOR = 1.5
MAX_FACTOR = 4.0
CHAOTIC_FACTOR = 10.0
REFERENCE_RMS = 1e-4        # the reference's own float32 error: a larger one means a broken comparison
FAST = ("lstm", "layer_norm", "gru_layer_norm")
NAMES = [n if n in FAST else pytest.param(n, marks=pytest.mark.slow) for n in variants.VARIANTS]


@pytest.fixture(params=["cpp", "torch"])
def loops(request, monkeypatch):
    """The fused engine's C++ loops, or their PyTorch twins (as off the CPU)."""
    if request.param == "cpp":
        if build.ops() is None:
            pytest.skip("the C++ loops are not built here")
    else:
        monkeypatch.setattr(build, "ops", lambda device=None: None)
    return request.param


def _bernoulli64(p, *args, **kwargs):
    """torch.bernoulli drawn in float64: the same zoneout / dropout masks in both dtypes."""
    return _BERNOULLI(p.double(), *args, **kwargs).to(p.dtype)


_BERNOULLI = torch.bernoulli


def _models(name: str) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(float64 model, float32 copy); the LN-LSTM's γ_hh halved (see the module docstring)."""
    torch.manual_seed(0)
    m64 = variants.build(name, D, H, dtype=torch.float64).train()
    v = variants.variant(name)
    if v.family == "lstm" and v.options.get("layer_norm"):
        with torch.no_grad():
            for n, p in m64.named_parameters():
                if n.startswith("weight_ln_hh"):
                    p.mul_(0.5)
    return m64, copy.deepcopy(m64).float()


def _inputs(m: torch.nn.Module):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(T, B, D, generator=g, dtype=torch.float64)
    L = m.num_layers * (2 if m.bidirectional else 1)
    hx = [0.5 * torch.randn(L, B, s, generator=g, dtype=torch.float64) for s in m.specs[0].state_sizes]
    return x, hx


def _run(m: torch.nn.Module, backend: str, x64, hx64) -> dict[str, torch.Tensor]:
    """Forward and backward of ⟨y, g⟩ + Σ⟨h_n, g'⟩ in the model's dtype; every result and
    gradient, in float64."""
    dtype = next(m.parameters()).dtype
    m.backend = backend
    m.zero_grad()
    x = x64.to(dtype, copy=True).requires_grad_()
    hx = [h.to(dtype, copy=True).requires_grad_() for h in hx64]
    torch.manual_seed(5)                          # the same noise for every run
    y, hn = m(x, tuple(hx) if len(hx) == 2 else hx[0])
    hn = tuple(hn) if isinstance(hn, tuple) else (hn,)
    g = torch.Generator().manual_seed(2)
    loss = (y * torch.randn(y.shape, generator=g, dtype=torch.float64).to(dtype)).sum()
    for s in hn:
        loss = loss + (s * torch.randn(s.shape, generator=g, dtype=torch.float64).to(dtype)).sum()
    loss.backward()
    out = {"output": y, **{f"final state {j}": s for j, s in enumerate(hn)}, "grad input": x.grad,
           **{f"grad initial state {j}": s.grad for j, s in enumerate(hx)},
           **{f"grad {n}": p.grad for n, p in m.named_parameters()}}
    return {k: v.detach().double() for k, v in out.items()}


def _errors(got: dict, want: dict) -> dict[str, tuple[float, float]]:
    """Per result: (RMS error / RMS, max error / max) against ``want``."""
    assert got.keys() == want.keys()
    out = {}
    for k, w in want.items():
        d = got[k] - w
        out[k] = (d.norm().item() / max(w.norm().item(), 1e-300),
                  d.abs().max().item() / max(w.abs().max().item(), 1e-300))
    return out


@functools.cache
def _reference(name: str):
    """float64 and float32 results of the reference engine (shared by both loops)."""
    mp = pytest.MonkeyPatch()
    mp.setattr(torch, "bernoulli", _bernoulli64)
    try:
        m64, m32 = _models(name)
        x, hx = _inputs(m64)
        return _run(m64, "reference", x, hx), _run(m32, "reference", x, hx)
    finally:
        mp.undo()


def _check(fused: dict, want: dict, ref: dict, rms_factor: float, max_factor: float,
           reference_rms: float | None):
    fe, re = _errors(fused, want), _errors(ref, want)
    if reference_rms is not None:
        off = {k: e[0] for k, e in re.items() if e[0] > reference_rms}
        assert not off, f"the reference engine's own float32 error is too large (a broken comparison?): {off}"
    bad = [f"{k}: RMS {f[0]:.2e} vs reference {r[0]:.2e} ({f[0] / max(r[0], 1e-12):.2f}x), "
           f"max {f[1]:.2e} vs {r[1]:.2e} ({f[1] / max(r[1], 1e-12):.2f}x)"
           for k in want for f, r in [(fe[k], re[k])]
           if f[0] > rms_factor * max(r[0], 1e-9) or f[1] > max_factor * max(r[1], 1e-9)]
    assert not bad, ("fused float32 further from float64 than the reference engine's float32:\n  "
                     + "\n  ".join(bad))


@pytest.mark.parametrize("name", NAMES)
def test_fused_float32_as_accurate_as_reference(name, loops, monkeypatch):
    want, ref = _reference(name)
    monkeypatch.setattr(torch, "bernoulli", _bernoulli64)
    m64, m32 = _models(name)
    x, hx = _inputs(m64)
    _check(_run(m32, "fused", x, hx), want, ref, RMS_FACTOR, MAX_FACTOR, REFERENCE_RMS)


@pytest.mark.slow
def test_issue_13_case(loops):
    """Issue 13's case: lstmkit.LSTM(128, 256, layer_norm=True) at its default init, T 100,
    B 32, loss ⟨y, g⟩ (zero initial state). Chaotic (module docstring): a loose factor."""
    torch.manual_seed(0)
    m64 = lstmkit.LSTM(128, 256, layer_norm=True, dtype=torch.float64)
    m32 = copy.deepcopy(m64).float()
    x64 = torch.randn(100, 32, 128, dtype=torch.float64)
    g64 = torch.randn(100, 32, 256, generator=torch.Generator().manual_seed(1), dtype=torch.float64)

    def run(m, backend):
        dtype = next(m.parameters()).dtype
        m.backend = backend
        m.zero_grad()
        x = x64.to(dtype, copy=True).requires_grad_()
        y, _ = m(x)
        (y * g64.to(dtype)).sum().backward()
        return {"output": y.detach().double(), "grad input": x.grad.double(),
                **{f"grad {n}": p.grad.double() for n, p in m.named_parameters()}}

    want = run(m64, "reference")
    _check(run(m32, "fused"), want, run(m32, "reference"), CHAOTIC_FACTOR, CHAOTIC_FACTOR, None)


def _ulps(got: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """|got − tanh(x)| in float32 ulps of tanh(x)."""
    want = torch.tanh(x.double())
    ulp = torch.from_numpy(np.spacing(want.float().abs().numpy())).double()
    return (got.double() - want).abs() / ulp


def _tanh_inputs() -> torch.Tensor:
    """(8, 4, 256) float32: small, moderate and saturating values of both signs."""
    mag = torch.cat([torch.logspace(-8, 0, 2048), torch.linspace(0, 10, 2048)])
    return torch.cat([mag, -mag]).view(8, 4, 256)


def test_tanh_within_2_ulp(loops):
    """The loops' tanh (common.h tanh_v, common.py tanh): within 2 ulp everywhere (2σ(2x) − 1
    was off by millions of ulp near 0). Read through the Elman RNN with W_ih = I and W_hh = 0,
    where h_t = tanh(x_t), x_t passing the GEMMs exactly."""
    x = _tanh_inputs()
    m = lstmkit.RNN(256, 256, backend="fused")
    with torch.no_grad():
        m.weight_ih_l0.copy_(torch.eye(256))
        m.weight_hh_l0.zero_()
        m.bias_ih_l0.zero_()
        m.bias_hh_l0.zero_()
        y, _ = m(x)
    assert _ulps(y, x).max().item() <= 2.0
    assert torch.equal(torch.sign(y), torch.sign(x))
    if loops == "torch":
        assert _ulps(twin_tanh(x), x).max().item() <= 2.0
        special = torch.tensor([-0.0, 0.0, float("inf"), -float("inf"), float("nan")])
        got = twin_tanh(special)
        assert torch.equal(got[:4], torch.tensor([0.0, 0.0, 1.0, -1.0])) and got[4].isnan()
        assert torch.equal(torch.signbit(got[:2]), torch.tensor([True, False]))


@pytest.mark.parametrize("batch", [4, 32])
@pytest.mark.parametrize("growth", [1.03, 0.97])
@pytest.mark.parametrize("reverse", [False, True])
def test_outer_sum_as_accurate_as_per_step_gemms(batch, growth, reverse):
    """dW_hh = Σ_t dY_tᵀ h̃_t by outer_sum errs (RMS) no more than the reference engine's way,
    one GEMM per step summed as the backward goes, also where the gradient grows or fades
    back through time; one GEMM over all T·B rows erred up to 2.6 times as much."""
    g = torch.Generator().manual_seed(0)
    scale = growth ** torch.arange(1, T + 1, dtype=torch.float32)      # by the backward's step
    dY = torch.randn(T, batch, 1024, generator=g) * (scale if reverse else scale.flip(0)).view(T, 1, 1)
    X = torch.tanh(torch.randn(T, batch, 256, generator=g))
    want = torch.einsum("tbm,tbn->mn", dY.double(), X.double())
    per_step = torch.zeros(1024, 256)
    for t in (range(T) if reverse else reversed(range(T))):
        per_step = per_step + dY[t].t() @ X[t]

    def err(v):
        return (v.double() - want).norm().item() / want.norm().item()

    assert err(outer_sum(dY, X, reverse)) <= 1.1 * err(per_step)
