"""ParaLSTM / ParaGRU: the Newton solver's iteration counts, and its time against the step loop.

    python benchmarks/newton.py                                   # the defaults below
    python benchmarks/newton.py --T 256 1024 --repeats 3 --json out.json

1. Iterations: at B 8, D = H = 256, float32 and float64, for each weight setting (torch's
   initialisation; every weight × 4; the recurrent diagonals and peepholes × 32, a strongly
   coupled recurrence), the iterations to reach the default tolerance against T, and at one T
   the iterations and the error left against the tolerance.
2. Time: forward (no graph) and forward + backward of sum(output), Newton against the step loop
   with the same parameters, at each --T; median of --repeats, the two interleaved in one
   process after one warm-up each. Validated first: output and input gradient against the step
   loop at every T. The environment (CPU, vector extensions, load before and after) is recorded.
3. Operations: the number of tensor operations (kernels, one after another) in a forward and in
   a training step at each --T: what bounds the time where each one is short, as on a GPU
   whose lanes the loop's (B, H)-sized steps leave idle.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from lstmkit.cli.env import environment
from lstmkit.pararnn import ParaGRU, ParaLSTM

CLASSES = {"ParaLSTM": ParaLSTM, "ParaGRU": ParaGRU}


# weight settings for the counts: name -> (factor on every weight, extra factor on the recurrent
# diagonals a and the peepholes); torch's init draws U(−1/16, 1/16) at H = 256
SETTINGS = {"torch init": (1.0, 1.0), "all weights x4": (4.0, 1.0), "recurrent x32": (1.0, 32.0)}


def make(cls, H: int, dtype=torch.float32, scale: float = 1.0, recurrent: float = 1.0, **kw):
    torch.manual_seed(0)
    m = cls(H, H, dtype=dtype, **kw)
    with torch.no_grad():
        for name, p in m.named_parameters():
            p.mul_(scale * (recurrent if name.startswith(("weight_hh", "weight_c")) else 1.0))
    return m


def rel_err(a, b) -> float:
    return ((a - b).abs().max() / b.abs().max().clamp(min=1)).item()


def iterations(args) -> list[dict]:
    """Iteration counts against T (default tol), and against tol at T = args.tol_T."""
    rows = []
    for name, cls in CLASSES.items():
        for setting in args.settings:
            for dtype, tols in ((torch.float32, (None, 1e-2, 1e-3, 1e-4, 1e-6)),
                                (torch.float64, (None, 1e-6, 1e-8, 1e-12))):
                m = make(cls, args.H, dtype, *SETTINGS[setting])
                for T in args.iter_T:
                    for tol in (tols if T == args.tol_T else (None,)):
                        x = torch.randn(T, args.B, args.H, generator=torch.Generator().manual_seed(1), dtype=dtype)
                        with torch.no_grad():
                            m.mode, m.tol = "sequential", None
                            y_seq = m(x)[0]
                            m.mode, m.tol = "newton", tol
                            t0 = time.perf_counter()
                            y = m(x)[0]
                            secs = time.perf_counter() - t0
                        st = m.last_solve[0]
                        rows.append({"cell": name, "weights": setting, "dtype": str(dtype).split(".")[1],
                                     "T": T, "tol": tol if tol is not None else "default",
                                     "iterations": st.iterations, "last_change": st.change,
                                     "max_rel_err_vs_sequential": rel_err(y, y_seq), "newton_fwd_s": secs})
                        print(rows[-1], flush=True)
    return rows


def one_run(m, x, train: bool) -> float:
    x.grad = None
    m.zero_grad(set_to_none=True)
    t0 = time.perf_counter()
    if train:
        m(x)[0].sum().backward()
    else:
        with torch.no_grad():
            m(x)
    return time.perf_counter() - t0


def validate(m, x) -> float:
    """Max relative |Newton − step loop| over the output and the input gradient."""
    res = []
    for mode in ("sequential", "newton"):
        m.mode = mode
        xi = x.detach().clone().requires_grad_()
        y = m(xi)[0]
        y.sum().backward()
        res.append((y.detach(), xi.grad))
    err = max(rel_err(a, b) for a, b in zip(res[1], res[0]))
    if err > 1e-4:
        raise AssertionError(f"{type(m).__name__}: Newton and the step loop disagree by {err:.2e}")
    return err


def timings(args) -> list[dict]:
    rows = []
    for T in args.T:
        x = torch.randn(T, args.B, args.H, requires_grad=True)
        for name, cls in CLASSES.items():
            m = make(cls, args.H)
            err = validate(m, x)
            for train in (False, True):
                times = {"newton": [], "sequential": []}
                for k in range(args.repeats + 1):
                    for mode in times:
                        m.mode = mode
                        s = one_run(m, x, train)
                        if k:
                            times[mode].append(s)
                med = {mode: statistics.median(v) for mode, v in times.items()}
                rows.append({"cell": name, "T": T, "pass": "forward+backward" if train else "forward",
                             "newton_ms": 1e3 * med["newton"], "sequential_ms": 1e3 * med["sequential"],
                             "newton_over_sequential": med["newton"] / med["sequential"],
                             "iterations": [s.iterations for s in m.last_solve],
                             "max_rel_err_vs_sequential": err})
                print(rows[-1], flush=True)
    return rows


class _CountOps(TorchDispatchMode):
    """Counts the tensor operations (kernels) dispatched inside it."""

    def __init__(self):
        super().__init__()
        self.n = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.n += 1
        return func(*args, **(kwargs or {}))


def op_counts(args) -> list[dict]:
    """Tensor operations per forward and per forward + backward: the loop's grow as T, the
    solver's as iterations × log T. Sizes do not change the counts, so B 1, D = H = 8."""
    rows = []
    for name, cls in CLASSES.items():
        m = make(cls, 8)
        for T in args.T:
            x = torch.randn(T, 1, 8, requires_grad=True)
            row = {"cell": name, "T": T}
            for mode in ("sequential", "newton"):
                m.mode = mode
                with torch.no_grad(), _CountOps() as fwd:
                    m(x)
                with _CountOps() as train:
                    m(x)[0].sum().backward()
                row.update({f"{mode}_forward_ops": fwd.n, f"{mode}_train_ops": train.n})
            row["iterations"] = [s.iterations for s in m.last_solve]
            rows.append(row)
            print(row, flush=True)
    return rows


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--T", type=int, nargs="+", default=[256, 1024, 4096], help="timed lengths")
    ap.add_argument("--iter-T", type=int, nargs="+", default=[64, 256, 1024, 4096], help="lengths for the counts")
    ap.add_argument("--tol-T", type=int, default=1024, help="the length of the sweep over tol")
    ap.add_argument("--B", type=int, default=8)
    ap.add_argument("--H", type=int, default=256, help="D = H")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS),
                    help="weight settings for the counts")
    ap.add_argument("--skip-iterations", action="store_true")
    ap.add_argument("--skip-times", action="store_true")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    env = {**environment(), "B": args.B, "D": args.H, "H": args.H, "repeats": args.repeats}
    out = {"env": env, "iterations": [] if args.skip_iterations else iterations(args),
           "op_counts": op_counts(args), "times": [] if args.skip_times else timings(args),
           "load_average_after": list(os.getloadavg())}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return out


if __name__ == "__main__":
    main()
