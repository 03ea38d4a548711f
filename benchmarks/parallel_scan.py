"""Training-step time of MinLSTM / MinGRU (scan, fused loop, step loop) against torch.nn.LSTM/GRU
and the floor: the cells' own input projection, nn.Linear(D, 3H), forward and backward.

    python benchmarks/parallel_scan.py                    # T = 512, B 16, D = H = 256
    python benchmarks/parallel_scan.py --T 512 2048 --repeats 5 --json out.json

Validates first (parallel and fused vs sequential: outputs and input gradient, float32), then
times one training step (forward + backward of sum(output)) per implementation, median of
``--repeats``, all in one process; ratios are to torch.nn.LSTM of the same size and to the
floor. The environment (CPU, vector extensions, load) is recorded.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from torch import nn

import lstmkit
from lstmkit.cli.env import environment
from lstmkit.parallel import MinGRU, MinLSTM


def step_time(module, x, repeats: int) -> float:
    """Median seconds of forward + backward (one warm-up run first)."""
    times = []
    for k in range(repeats + 1):
        x.grad = None
        module.zero_grad(set_to_none=True)
        t0 = time.perf_counter()
        y = module(x)
        (y[0] if isinstance(y, tuple) else y).sum().backward()
        if k:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def validate(cls, x) -> float:
    """Max |parallel or fused − sequential| over output and input gradient (relative to their scale)."""
    torch.manual_seed(0)
    m = cls(x.shape[-1], x.shape[-1])
    res = []
    for mode in ("sequential", "parallel", "fused"):
        m.mode = mode
        xi = x.detach().clone().requires_grad_()
        y, _ = m(xi)
        y.sum().backward()
        res.append((y.detach(), xi.grad))
    err = max(((a - b).abs().max() / b.abs().max().clamp(min=1)).item()
              for other in res[1:] for a, b in zip(other, res[0]))
    if err > 1e-4:
        raise AssertionError(f"{cls.__name__}: parallel or fused and sequential disagree by {err:.2e}")
    return err


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--T", type=int, nargs="+", default=[512])
    ap.add_argument("--B", type=int, default=16)
    ap.add_argument("--H", type=int, default=256, help="D = H")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    env = {**environment(), "B": args.B, "D": args.H, "H": args.H, "repeats": args.repeats}
    rows = []
    for T in args.T:
        x = torch.randn(T, args.B, args.H, requires_grad=True)
        errs = {cls.__name__: validate(cls, x[:64]) for cls in (MinLSTM, MinGRU)}
        impls = {
            "nn.LSTM": nn.LSTM(args.H, args.H), "nn.GRU": nn.GRU(args.H, args.H),
            "lstmkit LSTM": lstmkit.LSTM(args.H, args.H), "floor": nn.Linear(args.H, 3 * args.H),
            "MinLSTM fused": MinLSTM(args.H, args.H, mode="fused"),
            "MinGRU fused": MinGRU(args.H, args.H, mode="fused"),
            "MinLSTM parallel": MinLSTM(args.H, args.H, mode="parallel"),
            "MinLSTM sequential": MinLSTM(args.H, args.H, mode="sequential"),
            "MinGRU parallel": MinGRU(args.H, args.H, mode="parallel"),
            "MinGRU sequential": MinGRU(args.H, args.H, mode="sequential"),
        }
        times = {name: step_time(m, x, args.repeats) for name, m in impls.items()}
        for name, s in times.items():
            rows.append({"T": T, "impl": name, "ms": 1e3 * s, "to_nn_lstm": s / times["nn.LSTM"],
                         "to_floor": s / times["floor"],
                         "to_nn_gru": s / times["nn.GRU"], "max_rel_err_vs_sequential": errs.get(name.split()[0])})
    print(f"{'T':>6} {'impl':<20} {'fwd+bwd ms':>11} {'/ floor':>8} {'/ nn.LSTM':>10} {'/ nn.GRU':>9}")
    for r in rows:
        print(f"{r['T']:>6} {r['impl']:<20} {r['ms']:>11.1f} {r['to_floor']:>8.2f} {r['to_nn_lstm']:>10.3f} "
              f"{r['to_nn_gru']:>9.3f}")
    print("env:", env)
    out = {"env": env, "rows": rows}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return out


if __name__ == "__main__":
    main()
