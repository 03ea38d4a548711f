"""bfloat16 and float16 against float32 on the CPU: inference and training step time at size S
(T 100, B 32, D 128, H 256), lstmkit and torch.nn, measured in one process.

    PYTHONPATH=src python benchmarks/lowp.py --json lowp.json

lstmkit computes a low-precision module in float32 (the parameters, input and state cast up
as they enter, the results cast back), so its low-precision step costs its float32 step plus
the casts; torch.nn.LSTM runs oneDNN's bf16 kernels where the CPU has them. Before timing,
each low-precision module's output is checked against its float32 twin (same weights, rounded)
within 2e-2 relative (norm-wise). Then forward under no_grad and one training step (forward and
backward of ``output.float().sum()``), the implementations interleaved repeat by repeat,
medians; ratios to nn.LSTM float32. The environment (CPU vector extensions: bf16 arithmetic
needs AVX-512 BF16 or AMX to be fast) is written with the figures.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import torch
from torch import nn

from lstmkit.variants import build
from streaming import machine

T, B, D, H = 100, 32, 128, 256
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def modules(variants, dtypes) -> dict[str, nn.Module]:
    """name -> module; every module of a family shares the float32 weights (rounded)."""
    torch.manual_seed(0)
    out = {}
    base = {"lstm": nn.LSTM(D, H), "gru": nn.GRU(D, H)}
    for dt in dtypes:
        out[f"nn.LSTM {dt}"] = nn.LSTM(D, H).to(DTYPES[dt])
        out[f"nn.LSTM {dt}"].load_state_dict(base["lstm"].state_dict())
        for v in variants:
            m = build(v, D, H, dtype=DTYPES[dt])
            if v in base:
                m.load_state_dict(base[v].state_dict())
            out[f"{v} {dt}"] = m
    return out


def validate(mods: dict[str, nn.Module], x: torch.Tensor) -> dict[str, float]:
    """Relative error of each low-precision module to its float32 twin with the same weights."""
    errs = {}
    with torch.no_grad():
        for name, m in mods.items():
            impl, dt = name.rsplit(" ", 1)
            if dt == "float32":
                continue
            twin = nn.LSTM(D, H) if impl == "nn.LSTM" else build(impl, D, H)
            twin.load_state_dict({k: v.float() for k, v in m.state_dict().items()})
            y, yr = m(x.to(DTYPES[dt]))[0].float(), twin(x.to(DTYPES[dt]).float())[0]
            errs[name] = ((y - yr).norm() / yr.norm()).item()
            if errs[name] > 2e-2:
                raise AssertionError(f"{name}: relative error {errs[name]:.2e} to float32")
    return errs


def measure(mods, x, repeats: int) -> dict[str, tuple[float, float]]:
    """name -> (inference ms, training-step ms), medians of interleaved repeats."""
    xs = {n: x.to(next(m.parameters()).dtype) for n, m in mods.items()}

    def infer(n):
        with torch.no_grad():
            mods[n](xs[n])

    def train(n):
        mods[n].zero_grad(set_to_none=True)
        mods[n](xs[n])[0].float().sum().backward()

    times = {n: ([], []) for n in mods}
    for n in mods:                                    # warm-up
        infer(n)
        train(n)
    for _ in range(repeats):
        for n in mods:
            for fn, acc in zip((infer, train), times[n]):
                t = time.perf_counter()
                fn(n)
                acc.append((time.perf_counter() - t) * 1e3)
    return {n: (statistics.median(a), statistics.median(b)) for n, (a, b) in times.items()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variants", default="lstm,gru,layer_norm", help="comma-separated registry names")
    p.add_argument("--dtypes", default="float32,bfloat16,float16", help=f"of {','.join(DTYPES)}")
    p.add_argument("--repeats", type=int, default=7, help="timed runs per implementation (default 7)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--json", metavar="PATH", help="also write the rows and the environment")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    mods = modules(a.variants.split(","), a.dtypes.split(","))
    x = torch.randn(T, B, D)
    env = machine()
    errs = validate(mods, x)
    times = measure(mods, x, a.repeats)
    base = times["nn.LSTM float32"]
    rows = [{"impl": n, "infer_ms": f, "train_ms": b, "infer_ratio": f / base[0], "train_ratio": b / base[1],
             "rel_err": errs.get(n)} for n, (f, b) in times.items()]
    print(f"T {T}, B {B}, D {D}, H {H}; ratios to nn.LSTM float32; CPU flags {' '.join(env['vector_flags'])}")
    print(f"{'impl':<24}{'infer ms':>10}{'ratio':>7}{'train ms':>10}{'ratio':>7}{'rel err':>9}")
    for r in rows:
        err = f"{r['rel_err']:9.1e}" if r["rel_err"] is not None else ""
        print(f"{r['impl']:<24}{r['infer_ms']:10.2f}{r['infer_ratio']:7.2f}{r['train_ms']:10.2f}"
              f"{r['train_ratio']:7.2f}{err}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"environment": env, "config": vars(a), "size": [T, B, D, H], "rows": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
