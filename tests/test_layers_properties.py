"""Property-based parity with torch.nn over random shapes and options (hypothesis)."""
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lstmkit

from .helpers import TOL, assert_close_all, run_with_grads


@st.composite
def configs(draw):
    kind = draw(st.sampled_from(["LSTM", "GRU", "RNN"]))
    H = draw(st.integers(1, 7))
    cfg = dict(kind=kind, T=draw(st.integers(1, 6)), B=draw(st.integers(1, 4)), D=draw(st.integers(1, 6)), H=H,
               num_layers=draw(st.integers(1, 3)), bidirectional=draw(st.booleans()),
               batch_first=draw(st.booleans()), bias=draw(st.booleans()),
               proj_size=draw(st.integers(0, H - 1)) if kind == "LSTM" else 0,
               with_state=draw(st.booleans()), seed=draw(st.integers(0, 2**16)))
    if kind == "RNN":
        cfg["nonlinearity"] = draw(st.sampled_from(["tanh", "relu"]))
    return cfg


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs())
def test_random_configs_match_torch(cfg):
    torch.manual_seed(cfg["seed"])
    kw = dict(num_layers=cfg["num_layers"], bidirectional=cfg["bidirectional"], bias=cfg["bias"],
              batch_first=cfg["batch_first"], dtype=torch.float64)
    if cfg["proj_size"]:
        kw["proj_size"] = cfg["proj_size"]
    if "nonlinearity" in cfg:
        kw["nonlinearity"] = cfg["nonlinearity"]
    ref = getattr(torch.nn, cfg["kind"])(cfg["D"], cfg["H"], **kw)
    ours = lstmkit.from_torch(ref)
    T, B = cfg["T"], cfg["B"]
    x = torch.randn((B, T, cfg["D"]) if cfg["batch_first"] else (T, B, cfg["D"]), dtype=torch.float64)
    hx = None
    if cfg["with_state"]:
        n = cfg["num_layers"] * (2 if cfg["bidirectional"] else 1)
        h = torch.randn(n, B, cfg["proj_size"] or cfg["H"], dtype=torch.float64)
        hx = (h, torch.randn(n, B, cfg["H"], dtype=torch.float64)) if cfg["kind"] == "LSTM" else h
    assert_close_all(run_with_grads(ours, x, hx), run_with_grads(ref, x, hx), TOL[torch.float64])


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 5), st.integers(1, 4), st.sampled_from(["", "i", "f", "o", "if", "fo", "ifo"]),
       st.booleans(), st.booleans(), st.integers(0, 2**16))
def test_random_variants_are_consistent_and_finite(T, B, peep, coupled, layer_norm, seed):
    """Any valid option mix runs, is finite, and gives per-step outputs equal to its trace."""
    if coupled:
        peep = peep.replace("i", "")
    torch.manual_seed(seed)
    m = lstmkit.LSTM(3, 4, peepholes=peep, coupled=coupled, layer_norm=layer_norm).eval()
    x = torch.randn(T, B, 3) * 10
    with lstmkit.trace(m) as tr:
        y, (h, c) = m(x)
    assert torch.isfinite(y).all()
    torch.testing.assert_close(tr[0].h, y)
    torch.testing.assert_close(tr[0].c[-1], c[0])
    if coupled:
        torch.testing.assert_close(tr[0].i, 1 - tr[0].f)
