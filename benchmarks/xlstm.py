"""Training-step time of the xLSTM layers: the sLSTM (fused vs reference) against lstmkit's fused
LSTM and torch.nn.LSTM at the reference sizes, and the mLSTM's three modes over T.

    python benchmarks/xlstm.py                                   # S and M, T 256 .. 16k
    python benchmarks/xlstm.py --sizes S --T 256 1024 4096 --threads 1 --json out.json

Validates first (sLSTM fused vs reference; mLSTM chunkwise and parallel vs recurrent: outputs and
input gradient, float32), then times one training step (forward + backward of sum(output)) per
implementation, median of ``--repeats``, all in one process. Ratios: the sLSTM's to lstmkit's
fused LSTM of the same (T, B, D, H); the mLSTM's to its recurrent mode at the same T. The
recurrent mode is timed up to ``--recurrent-max`` steps, the parallel one up to ``--parallel-max``
(its T × T matrices: 4 GB per matrix at 16k, B 8, 4 heads). The environment is recorded.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import torch
from torch import nn

import lstmkit
from lstmkit.engines.fused import slstm as fused_slstm

SIZES = {"S": (100, 32, 128, 256), "M": (100, 64, 256, 512), "L": (50, 128, 512, 1024)}


def step_time(module, x, repeats: int, warm_up: bool = True) -> float:
    """Median seconds of forward + backward (one warm-up run first, unless ``warm_up`` is False:
    the mLSTM's recurrent mode, whose thousands of steps amortise any first-call cost)."""
    times = []
    for k in range(repeats + int(warm_up)):
        x.grad = None
        module.zero_grad(set_to_none=True)
        t0 = time.perf_counter()
        module(x)[0].sum().backward()
        if k >= int(warm_up):
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def agreement(m, x, modes: dict) -> float:
    """Max |a − b| / max(1, |b|) over output and input gradient, each mode against the first."""
    res = []
    for attr, value in modes.items():
        setattr(m, attr.split(":")[0], value)
        xi = x.detach().clone().requires_grad_()
        y, _ = m(xi)
        y.sum().backward()
        res.append((y.detach(), xi.grad))
    return max(((a - b).abs().max() / b.abs().max().clamp(min=1)).item()
               for other in res[1:] for a, b in zip(other, res[0]))


def bench_slstm(sizes, repeats: int) -> list[dict]:
    rows = []
    for name in sizes:
        T, B, D, H = SIZES[name]
        x = torch.randn(T, B, D, requires_grad=True)
        torch.manual_seed(0)
        err = agreement(lstmkit.sLSTM(D, H), x[:20, :4], {"backend:r": "reference", "backend:f": "fused"})
        if err > 1e-4:
            raise AssertionError(f"sLSTM fused and reference disagree by {err:.2e}")
        impls = {"lstmkit.LSTM fused": lstmkit.LSTM(D, H, backend="fused"), "nn.LSTM": nn.LSTM(D, H),
                 "sLSTM fused": lstmkit.sLSTM(D, H, backend="fused"),
                 "sLSTM reference": lstmkit.sLSTM(D, H, backend="reference")}
        times = {k: step_time(m, x, repeats) for k, m in impls.items()}
        for k, s in times.items():
            rows.append({"size": name, "T": T, "B": B, "D": D, "H": H, "impl": k, "ms": 1e3 * s,
                         "to_lstmkit_lstm_fused": s / times["lstmkit.LSTM fused"], "to_nn_lstm": s / times["nn.LSTM"],
                         "max_rel_err_vs_reference": err if k.startswith("sLSTM") else None})
    return rows


def bench_mlstm(Ts, B: int, H: int, repeats: int, recurrent_max: int, parallel_max: int) -> list[dict]:
    torch.manual_seed(0)
    m = lstmkit.mLSTM(H, H)
    x0 = torch.randn(256, B, H)
    err = agreement(m, x0, {"mode:r": "recurrent", "mode:c": "chunkwise", "mode:p": "parallel"})
    if err > 1e-4:
        raise AssertionError(f"mLSTM modes disagree by {err:.2e}")
    rows = []
    for T in Ts:
        x = torch.randn(T, B, H, requires_grad=True)
        times = {}
        for mode in ("recurrent", "chunkwise", "parallel"):
            if (mode == "recurrent" and T > recurrent_max) or (mode == "parallel" and T > parallel_max):
                continue
            m.mode = mode
            times[mode] = step_time(m, x, repeats, True) if mode != "recurrent" else \
                step_time(m, x, max(1, repeats // 2), warm_up=False)
        for mode, s in times.items():
            rows.append({"T": T, "B": B, "D": H, "H": H, "impl": f"mLSTM {mode}", "ms": 1e3 * s,
                         "us_per_step": 1e6 * s / T, "recurrent_over_this": times["recurrent"] / s
                         if "recurrent" in times else None, "max_rel_err_vs_recurrent": err})
    return rows


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="*", default=["S", "M"], choices=list(SIZES))
    ap.add_argument("--T", type=int, nargs="*", default=[256, 1024, 4096, 16384])
    ap.add_argument("--B", type=int, default=8, help="mLSTM batch (D = H)")
    ap.add_argument("--H", type=int, default=256)
    ap.add_argument("--recurrent-max", type=int, default=4096)
    ap.add_argument("--parallel-max", type=int, default=2048)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    env = {"torch": torch.__version__, "python": platform.python_version(), "machine": platform.machine(),
           "processor": platform.processor(), "cpus": os.cpu_count(), "threads": torch.get_num_threads(),
           "repeats": args.repeats, "slstm_cpp": fused_slstm.ops() is not None, "num_heads": 4}
    rows = bench_slstm(args.sizes, args.repeats)
    print(f"{'size':>4} {'impl':<20} {'fwd+bwd ms':>11} {'/ LSTM fused':>13} {'/ nn.LSTM':>10}")
    for r in rows:
        print(f"{r['size']:>4} {r['impl']:<20} {r['ms']:>11.1f} {r['to_lstmkit_lstm_fused']:>13.2f} {r['to_nn_lstm']:>10.2f}")
    mrows = bench_mlstm(args.T, args.B, args.H, args.repeats, args.recurrent_max, args.parallel_max) if args.T else []
    print(f"{'T':>6} {'impl':<18} {'fwd+bwd ms':>11} {'us/step':>8} {'recurrent / this':>17}")
    for r in mrows:
        ratio = f"{r['recurrent_over_this']:.1f}" if r["recurrent_over_this"] else "-"
        print(f"{r['T']:>6} {r['impl']:<18} {r['ms']:>11.1f} {r['us_per_step']:>8.1f} {ratio:>17}")
    print("env:", env)
    out = {"env": env, "slstm": rows, "mlstm": mrows}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return out


if __name__ == "__main__":
    main()
