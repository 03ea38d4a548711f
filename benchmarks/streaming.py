"""Streaming latency: one step per call (T = 1, the state carried across calls), lstmkit's
variants against torch.nn.LSTM, GRU and RNN, measured in one process.

    PYTHONPATH=src python benchmarks/streaming.py                  # B 1, 32 x H 128, 512, every variant
    PYTHONPATH=src python benchmarks/streaming.py --variants lstm,gru --batch 1 --hidden 128 --json s.json

Before any timing, at each (B, H): every timed variant stepped one call per step equals one
call over the sequence (outputs and final state), and lstm, gru, rnn equal torch.nn.LSTM, GRU,
RNN with the same weights. Then each module's per-step latency, interleaved (the modules take
turns, one block of steps each; the median of the blocks' means, ``lstmkit.benchmark.step_times``),
under torch.inference_mode() and torch.no_grad(), modules in eval mode, D = H; ratios are to
nn.LSTM of the same (B, H) timed in the same rounds. The environment (CPU and its vector
extensions, torch, threads, load average before and after) is written with the figures.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import torch
from torch import nn

from lstmkit.benchmark import step_times
from lstmkit.cli.env import environment
from lstmkit.variants import VARIANTS, build

MODES = {"inference": torch.inference_mode, "no_grad": torch.no_grad}
TORCH = {"nn.LSTM": nn.LSTM, "nn.GRU": nn.GRU, "nn.RNN": nn.RNN,
         "nn.LSTM 2 layers": lambda D, H: nn.LSTM(D, H, num_layers=2)}    # beside depth_gated
TWINS = {"lstm": "nn.LSTM", "gru": "nn.GRU", "rnn": "nn.RNN"}


def _states(s) -> tuple:
    return tuple(s) if isinstance(s, tuple) else (s,)


def _diff(a, b) -> float:
    return max((x - y).abs().max().item() for x, y in zip(a, b))


def validate(mods: dict[str, nn.Module], B: int, H: int, T: int = 8, tol: float = 1e-4) -> None:
    """Stepping equals one call, for every lstmkit module; lstm/gru/rnn equal torch's numbers."""
    x = torch.randn(T, B, H)
    with torch.no_grad():
        for name, m in mods.items():
            if name in TORCH:
                continue
            y, s = m(x)
            ys, state = [], None
            for t in range(T):
                out, state = m(x[t:t + 1], state)
                ys.append(out)
            d = _diff([torch.cat(ys), *_states(state)], [y, *_states(s)])
            if d > tol:
                raise AssertionError(f"{name} B={B} H={H}: stepping differs from one call by {d:.2e}")
            if name in TWINS:
                yt, st = mods[TWINS[name]](x)
                d = _diff([y, *_states(s)], [yt, *_states(st)])
                if d > tol:
                    raise AssertionError(f"{name} B={B} H={H}: differs from {TWINS[name]} by {d:.2e}")


def measure(variants, B: int, H: int, modes, repeats: int, steps: int) -> list[dict]:
    torch.manual_seed(0)
    mods = {name: cls(H, H).eval() for name, cls in TORCH.items()}
    for name in variants:
        mods[name] = build(name, H, H).eval()
        if name in TWINS:
            mods[name].load_state_dict(mods[TWINS[name]].state_dict())
    validate(mods, B, H)
    xs = list(torch.randn(steps, 1, B, H))
    rows = []
    for mode in modes:
        us = step_times(mods, xs, repeats, MODES[mode])
        rows += [{"B": B, "H": H, "mode": mode, "impl": k, "us": v, "ratio": v / us["nn.LSTM"]}
                 for k, v in us.items()]
    return rows


def table(rows: list[dict]) -> str:
    lines = []
    for key in dict.fromkeys((r["B"], r["H"], r["mode"]) for r in rows):
        lines.append(f"\nB {key[0]}, H {key[1]}, {key[2]}:  µs per step (ratio to nn.LSTM)")
        lines += [f"  {r['impl']:<22}{r['us']:9.0f}{r['ratio']:8.2f}" for r in rows
                  if (r["B"], r["H"], r["mode"]) == key]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", default="1,32", help="comma-separated batch sizes (default 1,32)")
    p.add_argument("--hidden", default="128,512", help="comma-separated hidden sizes, D = H (default 128,512)")
    p.add_argument("--variants", default="all", help="comma-separated registry names, or 'all'")
    p.add_argument("--modes", default="inference,no_grad", help="of inference,no_grad")
    p.add_argument("--repeats", type=int, default=15, help="timed blocks per module; medians (default 15)")
    p.add_argument("--steps", type=int, default=20, help="steps per block (default 20)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--json", metavar="PATH", help="also write the rows and the environment")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    variants = tuple(VARIANTS) if a.variants == "all" else tuple(a.variants.split(","))
    modes = tuple(a.modes.split(","))
    env_before = environment()
    rows = []
    for B in map(int, a.batch.split(",")):
        for H in map(int, a.hidden.split(",")):
            rows += measure(variants, B, H, modes, a.repeats, a.steps)
            print(table([r for r in rows if (r["B"], r["H"]) == (B, H)]), flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"environment": env_before, "load_average_after": os.getloadavg(),
                       "config": vars(a), "rows": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
