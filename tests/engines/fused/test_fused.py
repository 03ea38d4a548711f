"""The fused engine against the reference engine (the oracle): outputs, final states and
every gradient (input, each parameter, h0, c0), for every variant of every family."""
from __future__ import annotations

import copy
import os

import pytest
import torch

import lstmkit
from lstmkit.engines import Noise, fused, get_engine, reference
from lstmkit.engines.fused import build

T, B, D, H, P = 7, 5, 3, 5, 3                 # small odd sizes
TOL = {torch.float32: dict(atol=1e-5, rtol=1e-5), torch.float64: dict(atol=1e-10, rtol=1e-10)}

LSTM_VARIANTS = {
    "vanilla": {},
    "peepholes": dict(peepholes=True),
    "peepholes_fo": dict(peepholes="fo"),
    "coupled": dict(coupled=True, peepholes="fo"),
    "no_input_gate": dict(ablate="input_gate"),
    "no_forget_gate": dict(ablate="forget_gate", peepholes="io"),
    "no_output_gate": dict(ablate="output_gate"),
    "no_input_activation": dict(ablate="input_activation"),
    "no_output_activation": dict(ablate="output_activation"),
    "layer_norm": dict(layer_norm=True),
    "projection": dict(proj_size=P),
    "ln_proj_peep": dict(layer_norm=True, proj_size=P, peepholes=True),
    "zoneout": dict(zoneout=0.3),
    "recurrent_dropout": dict(recurrent_dropout=0.4, proj_size=P),
    "no_bias": dict(bias=False, peepholes=True),
}
OTHER_VARIANTS = {
    "depth_gate": (lstmkit.DepthGatedLSTM, dict(peepholes="f")),
    "depth_gate_zoneout": (lstmkit.DepthGatedLSTM, dict(zoneout=0.2, layer_norm=True)),
    "gru": (lstmkit.GRU, {}),
    "gru_reset_before": (lstmkit.GRU, dict(reset_after=False)),
    "gru_ln": (lstmkit.GRU, dict(layer_norm=True)),
    "gru_ln_reset_before": (lstmkit.GRU, dict(layer_norm=True, reset_after=False, recurrent_dropout=0.3)),
    "gru_zoneout_drop": (lstmkit.GRU, dict(zoneout=0.3, recurrent_dropout=0.3)),
    "rnn_tanh": (lstmkit.RNN, {}),
    "rnn_relu": (lstmkit.RNN, dict(nonlinearity="relu")),
}
VARIANTS = {**{k: (lstmkit.LSTM, v) for k, v in LSTM_VARIANTS.items()}, **OTHER_VARIANTS}


@pytest.fixture(autouse=True, params=["cpp", "torch"])
def loops(request, monkeypatch):
    """Every test here runs on both time loops of the fused engine: the C++ ones and their
    PyTorch fallback."""
    if request.param == "torch":
        monkeypatch.setattr(build, "ops", lambda device=None: None)
    return request.param


def test_cpp_loops_build(loops):
    """The C++ loops build on this project's machines (a failure would silently fall back),
    unless LSTMKIT_NO_EXT turns them off."""
    if loops == "cpp" and os.environ.get("LSTMKIT_NO_EXT", "") in ("", "0"):
        assert build.ops() is not None
    assert build.ops(torch.device("meta")) is None       # off the CPU: the PyTorch loops


def _model(name, dtype, num_layers=2):
    cls, kw = VARIANTS[name]
    torch.manual_seed(0)
    m = cls(D, H, num_layers=num_layers, bidirectional=True, dtype=dtype, **kw)
    with torch.no_grad():                         # move LN gains / shifts off their init
        for p in m.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return m


def _run(m, backend, x, hx, lengths, seed=1):
    """Forward + backward of a random linear loss; returns every result and gradient."""
    m.backend = backend
    m.zero_grad()
    x = x.clone().requires_grad_()
    hx = tuple(s.clone().requires_grad_() for s in hx)
    torch.manual_seed(seed)                       # the layer samples the same noise for both
    y, hn = m(x, hx if len(hx) == 2 else hx[0], lengths=lengths)
    hn = tuple(hn) if isinstance(hn, tuple) else (hn,)
    g = torch.Generator().manual_seed(2)                # drawn in float64: the same g in both dtypes
    loss = (y * torch.randn(y.shape, generator=g, dtype=torch.float64).to(y.dtype)).sum()
    for s in hn:
        loss = loss + (s * torch.randn(s.shape, generator=g, dtype=torch.float64).to(s.dtype)).sum()
    loss.backward()
    out = {"y": y, **{f"state{j}": s for j, s in enumerate(hn)}, "dx": x.grad}
    out.update({f"d{k}": s.grad for k, s in zip("hc", hx)})
    out.update({f"d{n}": p.grad for n, p in m.named_parameters()})
    return out


def _inputs(m, dtype, lengths):
    torch.manual_seed(3)
    x = torch.randn(T, B, D, dtype=dtype)
    n = m.num_layers * 2
    hx = tuple(torch.randn(n, B, s, dtype=dtype) for s in m.specs[0].state_sizes)
    return x, hx, None if lengths is None else torch.tensor(lengths)


def _check_same(a, b, tol):
    """Every entry within tol, scaled by the tensor's largest entry when that exceeds 1 (a
    parameter gradient sums T·B terms, whose float32 rounding grows with their size)."""
    assert a.keys() == b.keys()
    for k in a:
        assert a[k] is not None and b[k] is not None, k
        scale = max(1.0, b[k].abs().max().item())
        torch.testing.assert_close(a[k], b[k], atol=tol["atol"] * scale, rtol=tol["rtol"],
                                   msg=lambda s, k=k: f"{k}: {s}")


@pytest.mark.parametrize("name", list(VARIANTS))
@pytest.mark.parametrize("train", [False, True])
def test_fused_matches_reference_float64(name, train):
    m = _model(name, torch.float64).train(train)
    x, hx, lengths = _inputs(m, torch.float64, [7, 3, 5, 1, 6])
    _check_same(_run(m, "fused", x, hx, lengths), _run(m, "reference", x, hx, lengths), TOL[torch.float64])


_BERNOULLI = torch.bernoulli


def _bernoulli64(p, *args, **kwargs):
    """torch.bernoulli drawn in float64: the same zoneout / dropout masks in both dtypes."""
    return _BERNOULLI(p.double(), *args, **kwargs).to(p.dtype)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_fused_matches_reference_float32(name, monkeypatch):
    """float32: each engine against the float64 reference. The fused engine's error must be
    within the float32 tolerance (scaled as in _check_same), or within 4 times the reference
    engine's own float32 error where that is larger.

    Not the two float32 results against each other at the tolerance: an entry that sums
    large terms to a small result carries their rounding, which no tolerance scaled by the
    result covers. The reverse direction's dβ_c of layer_norm (at most 0.96, summed from terms
    up to 17) differs from float64 by 1.4e-5 in the reference engine itself, beyond the 1e-5
    allowed; the fused engine's was 2.6e-5 (C++ loops: 2.7e-6), so the two differed by 1.5e-5.
    The accuracy at realistic sizes is test_float32_accuracy.py's."""
    monkeypatch.setattr(torch, "bernoulli", _bernoulli64)
    m = _model(name, torch.float32, num_layers=2 if "depth" in name else 1).train()
    x, hx, _ = _inputs(m, torch.float32, None)
    want = _run(copy.deepcopy(m).double(), "reference", x.double(), tuple(s.double() for s in hx), None)
    fused, ref = _run(m, "fused", x, hx, None), _run(m, "reference", x, hx, None)
    assert fused.keys() == want.keys() == ref.keys()
    for k, w in want.items():
        scale = max(1.0, w.abs().max().item())
        err = (fused[k].double() - w).abs().max().item()
        ref_err = (ref[k].double() - w).abs().max().item()
        bound = max(TOL[torch.float32]["atol"] * scale, 4 * ref_err)
        assert err <= bound, f"{k}: fused {err:.2e} from float64, reference {ref_err:.2e}, allowed {bound:.2e}"


def test_packed_sequence_matches_reference():
    m = _model("peepholes", torch.float64)
    x = [torch.randn(n, D, dtype=torch.float64, requires_grad=True) for n in (4, 7, 2)]
    outs = {}
    for backend in ("fused", "reference"):
        m.backend = backend
        m.zero_grad()
        for s in x:
            s.grad = None
        packed = torch.nn.utils.rnn.pack_sequence(x, enforce_sorted=False)
        y, (h, c) = m(packed)
        (y.data.sum() + h.sum() + (c * c).sum()).backward()
        outs[backend] = {"y": y.data, "h": h, "c": c, **{f"dx{j}": s.grad.clone() for j, s in enumerate(x)},
                         **{n: p.grad.clone() for n, p in m.named_parameters()}}
    _check_same(outs["fused"], outs["reference"], TOL[torch.float64])


def test_auto_picks_fused_everywhere():
    for name, (cls, kw) in VARIANTS.items():
        m = cls(D, H, num_layers=2, **kw)
        assert all(get_engine("auto", s) is fused for s in m.specs), name


def _engine_inputs(spec, dtype, zoneout: bool, gen):
    """Direct engine arguments with one shared Noise (training-mode zoneout masks)."""
    shapes = spec.param_shapes(D)
    p = {k: (torch.randn(s, generator=gen, dtype=dtype) * 0.5).requires_grad_() for k, s in shapes.items()}
    x = torch.randn(T, B, D, generator=gen, dtype=dtype, requires_grad=True)
    state = tuple(torch.randn(B, s, generator=gen, dtype=dtype, requires_grad=True) for s in spec.state_sizes)
    keep = [torch.bernoulli(torch.full((T, B, s), 0.4, dtype=dtype), generator=gen) for s in spec.state_sizes]
    drop = torch.bernoulli(torch.full((B, spec.state_sizes[0]), 0.6, dtype=dtype), generator=gen) / 0.6
    noise = Noise(keep_c=keep[-1] if len(keep) == 2 and zoneout else None,
                  keep_h=keep[0] if zoneout else None, drop=drop)
    mask = (torch.arange(T)[:, None] < torch.tensor([T, 2, 5, 1, 4])[None]).unsqueeze(-1)
    return p, x, state, noise, mask


SPECS = {
    "lstm_all": lstmkit.LSTM(D, H, proj_size=P, peepholes=True, layer_norm=True).specs[0],
    "cifg": lstmkit.LSTM(D, H, coupled=True, peepholes="fo").specs[0],
    "depth": lstmkit.DepthGatedLSTM(D, H, peepholes="ifo").specs[1],
    "gru": lstmkit.GRU(D, H, layer_norm=True).specs[0],
    "gru_before": lstmkit.GRU(D, H, reset_after=False, layer_norm=True).specs[0],
    "rnn": lstmkit.RNN(D, H).specs[0],
}


@pytest.mark.parametrize("name", list(SPECS))
@pytest.mark.parametrize("reverse", [False, True])
def test_engine_same_noise_and_trace(name, reverse):
    """Engines called directly with the same Noise: results, gradients and trace records agree."""
    spec = SPECS[name]
    gen = torch.Generator().manual_seed(4)
    p, x, state, noise, mask = _engine_inputs(spec, torch.float64, spec.family != "rnn", gen)
    c_low = torch.randn(T, B, H, dtype=torch.float64, generator=gen, requires_grad=True) \
        if getattr(spec, "depth_gate", False) else None
    res = {}
    for eng in (fused, reference):
        leaves = [x, *state, *p.values()] + ([c_low] if c_low is not None else [])
        for v in leaves:
            v.grad = None
        r = eng.run(spec, x, state, p, mask=mask, reverse=reverse, noise=noise, c_low=c_low,
                    want_cells=len(state) == 2, record=True)
        loss = (r.output ** 2).sum() + sum((s * s).sum() for s in r.state)
        if r.cells is not None:
            loss = loss + r.cells.sin().sum()
        loss.backward()
        res[eng] = {"y": r.output, **{f"s{j}": s for j, s in enumerate(r.state)},
                    **{f"rec_{k}": v for k, v in r.record.items()},
                    **{f"d{j}": v.grad.clone() for j, v in enumerate(leaves)}}
        if r.cells is not None:
            res[eng]["cells"] = r.cells
    _check_same(res[fused], res[reference], TOL[torch.float64])


@pytest.mark.parametrize("name", list(SPECS))
def test_gradcheck(name):
    spec = SPECS[name]
    gen = torch.Generator().manual_seed(5)
    p, x, state, noise, mask = _engine_inputs(spec, torch.float64, spec.family != "rnn", gen)
    x, state = x[:4, :2].detach().requires_grad_(), tuple(s[:2].detach().requires_grad_() for s in state)
    noise = Noise(*(None if v is None else v[:4, :2] if v.dim() == 3 else v[:2] for v in noise))
    mask = mask[:4, :2]
    c_low = torch.randn(4, 2, H, dtype=torch.float64, generator=gen, requires_grad=True) \
        if getattr(spec, "depth_gate", False) else None
    keys = list(p)

    def f(x, *rest):
        n = len(state)
        params = dict(zip(keys, rest[n:n + len(keys)]))
        cl = rest[-1] if c_low is not None else None
        r = fused.run(spec, x, tuple(rest[:n]), params, mask=mask, noise=noise, c_low=cl, want_cells=n == 2)
        return (r.output, *r.state) + ((r.cells,) if r.cells is not None else ())

    args = (x, *state, *p.values()) + ((c_low,) if c_low is not None else ())
    assert torch.autograd.gradcheck(f, args, eps=1e-6, atol=1e-6, fast_mode=True)


def test_long_sequence_no_drift():
    m = lstmkit.LSTM(2, 3, peepholes=True)
    x = torch.randn(2000, 2, 2)
    out = {}
    for backend in ("fused", "reference"):
        m.backend = backend
        m.zero_grad()
        y, (h, c) = m(x)
        (y.sum() + c.sum()).backward()
        out[backend] = {"y": y, "h": h, "c": c, **{n: p.grad.clone() for n, p in m.named_parameters()}}
    _check_same(out["fused"], out["reference"], dict(atol=1e-4, rtol=1e-4))


@pytest.mark.parametrize("name", ["vanilla", "layer_norm", "coupled", "gru", "gru_reset_before", "rnn_tanh"])
def test_saturating_inputs_stay_finite(name):
    m = _model(name, torch.float32, num_layers=1)
    m.backend = "fused"
    x = (torch.randint(0, 2, (T, B, D)) * 100.0 - 50.0).requires_grad_()
    y, _ = m(x)
    y.sum().backward()
    assert torch.isfinite(y).all() and torch.isfinite(x.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in m.parameters())


def test_trace_same_gates_from_either_engine():
    m = _model("coupled", torch.float32)
    x = torch.randn(T, B, D)
    recs = {}
    for backend in ("fused", "reference"):
        m.backend = backend
        with lstmkit.trace(m) as tr:
            m(x)
        recs[backend] = tr
    for key in recs["reference"].keys():
        a, b = recs["fused"].records[key], recs["reference"].records[key]
        assert list(a) == list(b)
        for letter in b:
            torch.testing.assert_close(a[letter], b[letter], **TOL[torch.float32])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_vanilla_fast_path_matches_reference(dtype):
    """No variant, noise or padding: the fused engine takes its fast inner loops."""
    m = _model("vanilla", dtype)
    x, hx, _ = _inputs(m, dtype, None)
    _check_same(_run(m, "fused", x, hx, None), _run(m, "reference", x, hx, None), TOL[dtype])


@pytest.mark.parametrize("name", ["ln_proj_peep", "zoneout", "coupled", "depth_gate_zoneout"])
def test_lstm_rows_split_across_threads(name):
    """B·G·H large enough that the C++ loops split the rows of a step between threads
    (engines/fused/common.h row_grain): per-thread scratch and the cross-row sums (dγ_c, dβ_c, dγ_hh)."""
    cls, kw = VARIANTS[name]
    torch.manual_seed(0)
    m = cls(8, 64, num_layers=2, dtype=torch.float64, **kw).train()
    x = torch.randn(4, 64, 8, dtype=torch.float64)
    hx = tuple(torch.randn(2, 64, s, dtype=torch.float64) for s in m.specs[0].state_sizes)
    lengths = torch.randint(1, 5, (64,))
    _check_same(_run(m, "fused", x, hx, lengths), _run(m, "reference", x, hx, lengths), TOL[torch.float64])


@pytest.mark.parametrize("cls, kw, H_big", [
    (lstmkit.GRU, dict(layer_norm=True, zoneout=0.3), 64),
    (lstmkit.GRU, dict(layer_norm=True, zoneout=0.3, reset_after=False, recurrent_dropout=0.2), 64),
    (lstmkit.RNN, {}, 256),
])
def test_gru_rnn_rows_split_across_threads(cls, kw, H_big):
    """Batch and width large enough that the C++ loops share a step's rows between threads
    (row_grain: about 8k values per thread): fused vs reference with padding, float64."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        torch.manual_seed(0)
        Bb = 64
        m = cls(D, H_big, num_layers=1, bidirectional=True, dtype=torch.float64, **kw).train()
        with torch.no_grad():
            for p in m.parameters():
                p.add_(0.1 * torch.randn_like(p))
        x = torch.randn(T, Bb, D, dtype=torch.float64)
        hx = (torch.randn(2, Bb, H_big, dtype=torch.float64),)
        lengths = torch.randint(1, T + 1, (Bb,))
        lengths[0] = T
        _check_same(_run(m, "fused", x, hx, lengths), _run(m, "reference", x, hx, lengths),
                    TOL[torch.float64])
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("name", ["gru", "gru_reset_before", "gru_ln", "gru_ln_reset_before", "gru_zoneout_drop",
                                  "ln_proj_peep", "zoneout", "coupled", "depth_gate_zoneout"])
def test_forward_without_grad_matches_reference(name):
    """Under no_grad the loops keep only one step of their per-step buffers (nothing to save)."""
    m = _model(name, torch.float64)
    x, hx, lengths = _inputs(m, torch.float64, [7, 3, 5, 1, 6])
    out = {}
    for backend in ("fused", "reference"):
        m.backend = backend
        torch.manual_seed(1)                      # the same zoneout / dropout noise
        with torch.no_grad():
            y, h = m(x, hx if len(hx) == 2 else hx[0], lengths=lengths)
        h = h if isinstance(h, tuple) else (h,)
        out[backend] = {"y": y, **{f"state{j}": s for j, s in enumerate(h)}}
    _check_same(out["fused"], out["reference"], TOL[torch.float64])


@pytest.mark.parametrize("name", ["gru", "gru_ln_reset_before", "rnn_relu"])
def test_loss_on_final_state_only(name):
    """The top layer's output unused: the loops get no output gradient (None, not zeros)."""
    m = _model(name, torch.float64).eval()
    x, hx, lengths = _inputs(m, torch.float64, [7, 3, 5, 1, 6])
    out = {}
    for backend in ("fused", "reference"):
        m.backend = backend
        m.zero_grad()
        xx = x.clone().requires_grad_()
        _, h = m(xx, hx[0], lengths=lengths)
        (h * h).sum().backward()
        out[backend] = {"h": h, "dx": xx.grad, **{n: p.grad for n, p in m.named_parameters()}}
    _check_same(out["fused"], out["reference"], TOL[torch.float64])
