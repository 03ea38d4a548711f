"""Training-step time and peak memory of MinGRU / MinLSTM / QRNN (fused loop, scan, step loop)
against nn.LSTM, lstmkit's LSTM and the floor (the cells' input projection, nn.Linear(D, 3H)),
at long T: ``lstmkit.benchmark_long`` (validates first, all in one process, interleaved).

    python benchmarks/parallel_scan.py --threads 1 --json benchmarks/results_parallel_long_DATE.json
    python benchmarks/parallel_scan.py --T 1024 4096 --impls floor "MinGRU fused" "MinLSTM fused"

The environment (CPU model, vector extensions, load before and after) is recorded.
"""
from __future__ import annotations

import argparse
import json
import os

import torch

from lstmkit import benchmark_long as bl
from lstmkit.cli.env import environment


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--T", type=int, nargs="+", default=list(bl.LONG_T))
    ap.add_argument("--B", type=int, default=8)
    ap.add_argument("--H", type=int, default=256, help="D = H")
    ap.add_argument("--impls", nargs="+", default=None, help=f"from: {', '.join(bl.LONG_IMPLS)}")
    ap.add_argument("--repeats", type=int, default=None, help="runs per T (default 3 to 1k, 2 to 16k, 1 beyond)")
    ap.add_argument("--chunk-size", type=int, default=None, help="chunk of the fused and scan modes")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    env = {**environment(), "B": args.B, "D": args.H, "H": args.H, "chunk_size": args.chunk_size}
    errs = bl.validate(args.H, args.B)
    print("validated (max rel. error vs the step loop):", {k: f"{v:.1e}" for k, v in errs.items()})
    rep = {T: args.repeats for T in args.T} if args.repeats else None
    rows = bl.run(args.T, args.B, args.H, rep, args.impls, chunk_size=args.chunk_size)
    print(bl.table(rows))
    out = {"env": env, "load_after": list(os.getloadavg()), "validation": errs, "rows": rows}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return out


if __name__ == "__main__":
    main()
