"""A short tour of the API on random data: variants, parity with torch.nn.LSTM, a trace."""
from __future__ import annotations

import argparse

import torch

import lstmkit
from lstmkit import variants


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")


def run(args) -> int:
    torch.manual_seed(args.seed)
    x = torch.randn(20, 4, 8)
    ref = torch.nn.LSTM(8, 16, num_layers=2)
    ours = lstmkit.from_torch(ref)
    (y0, _), (y1, _) = ref(x), ours(x)
    print(f"torch.nn.LSTM vs lstmkit.LSTM, same weights: max |Δoutput| = {(y0 - y1).abs().max():.2e}")
    for name in ("peepholes", "coupled", "no_forget_gate", "layer_norm", "projection", "zoneout"):
        m = variants.build(name, 8, 16)
        y, (h, c) = m(x)
        print(f"  {name:<16} output {tuple(y.shape)}  params {sum(p.numel() for p in m.parameters()):>5}")
    m = lstmkit.LSTM(8, 16, coupled=True).eval()
    with lstmkit.trace(m) as tr:
        m(x)
    rec = tr[0]
    print(f"trace of a CIFG layer: records {list(rec)}; max |i - (1 - f)| = {(rec.i - (1 - rec.f)).abs().max():.1e}")
    print(f"mean forget gate {rec.f.mean():.3f}; mean |c| {rec.c.abs().mean():.3f}")
    return 0
