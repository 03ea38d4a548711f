"""Time every variant against torch.nn (forward, forward+backward, peak memory, a streaming
step), same process."""
from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from ._common import UsageError, add_cell, add_json, add_quiet, add_threads, cells


def _names(value: str, allowed, what: str) -> tuple:
    names = tuple(v for v in value.split(",") if v)
    bad = [v for v in names if v not in allowed]
    if bad or not names:
        raise UsageError(f"--{what}: expected a comma-separated subset of {','.join(allowed)}, got {value!r}")
    return names


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sizes", default="S", help="comma-separated of XS,S,M,L (default S; the full table: S,M,L; XS: a smoke run)")
    add_cell(p, "all", many=True, help_="comma-separated variant names, or 'all'")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per implementation; medians (default 5)")
    add_threads(p, 2)
    p.add_argument("--reference-sizes", default="S,M", help="sizes at which the slow reference engine is timed "
                   "(default S,M; '' for none)")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    p.add_argument("--no-streaming", action="store_true",
                   help="skip the streaming-step column (T = 1 per call, state carried, inference mode)")
    p.add_argument("--compile", action="store_true",
                   help="also time fused and torch under torch.compile (validated against eager first)")
    p.add_argument("--bf16", action="store_true",
                   help="also time fused and torch in bfloat16 (validated against float32 first)")
    p.add_argument("--long", default=None, metavar="T[,T...]",
                   help="instead: MinGRU, MinLSTM and QRNN (fused, scan, step loop) against nn.LSTM, lstmkit's LSTM "
                        "and their floor, one training step at these lengths, B 8, D = H = 256 ('all': 256,1024,4096,"
                        "16384,65536; lstmkit.benchmark_long)")
    p.add_argument("--latency", default=None, metavar="H[,H...]",
                   help="instead: one LSTM step per call (T = 1, state carried) at these hidden sizes (D = H), "
                        "lstmkit float32/bfloat16/int8 against nn.LSTM and ONNX Runtime float32/int8, with the "
                        "files' sizes (lstmkit.benchmark_latency; docs/deploy.md)")
    p.add_argument("--batch", default="1,32", metavar="B[,B...]",
                   help="with --latency: batch sizes (default 1,32: latency, throughput)")
    p.add_argument("--steps", type=int, default=20, help="with --latency: steps per timed block (default 20)")
    p.add_argument("--gemm", action="store_true", help="with --latency: also time the int8 GEMM candidates at B 1")
    add_quiet(p)
    add_json(p, "the rows and the environment")


def _ints(value: str, what: str) -> tuple[int, ...]:
    try:
        out = tuple(int(v) for v in value.split(",") if v)
    except ValueError:
        out = ()
    if not out or min(out) < 1:
        raise UsageError(f"--{what}: expected comma-separated integers >= 1, got {value!r}")
    return out


def _latency(args) -> int:
    from .. import benchmark_latency as bl
    from .env import environment
    hidden, batch = _ints(args.latency, "latency"), _ints(args.batch, "batch")
    if args.repeats < 1 or args.steps < 1:
        raise UsageError(f"--repeats and --steps: expected >= 1, got {args.repeats} and {args.steps}")
    import torch
    torch.set_num_threads(1)                        # a real-time step runs on one core
    rows = bl.run(hidden, batch, args.repeats, args.steps)
    print(bl.table(rows))
    gemm = [r for H in hidden for r in bl.gemm_rows(H, args.repeats)] if args.gemm else []
    for r in gemm:
        print(f"gemm H {r['H']}: {r['impl']:<42}{r['us']:8.2f} µs  relative error {r['rel_err']:.1e}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"environment": environment(), "rows": rows, "gemm": gemm}, f, indent=2)
    return 0


def _long(args) -> int:
    from .. import benchmark_long as bl
    from .env import environment
    try:
        Ts = bl.LONG_T if args.long == "all" else tuple(int(v) for v in args.long.split(",") if v)
    except ValueError:
        Ts = ()
    if not Ts or min(Ts) < 1 or args.threads < 1:
        raise UsageError(f"--long: expected 'all' or comma-separated lengths >= 1, got {args.long!r}")
    import torch
    torch.set_num_threads(args.threads)
    errs = bl.validate(256, 8)
    rows = bl.run(Ts, progress=None if args.quiet else print)
    print(bl.table(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"environment": environment(), "validation": errs, "rows": rows}, f, indent=2)
    return 0


def run(args) -> int:
    if args.long is not None:
        return _long(args)
    if args.latency is not None:
        return _latency(args)
    from tqdm import tqdm

    from .. import benchmark as bm
    from .env import environment
    sizes = _names(args.sizes, tuple(bm.SIZES), "sizes")
    variants = tuple(bm.VARIANTS) if args.cell == "all" else tuple(cells(args.cell, many=True))
    ref_sizes = tuple(v for v in args.reference_sizes.split(",") if v)
    _names(args.reference_sizes, tuple(bm.SIZES), "reference-sizes") if ref_sizes else None
    if args.repeats < 1 or args.threads < 1:
        raise UsageError(f"--repeats and --threads: expected >= 1, got {args.repeats} and {args.threads}")
    extras = tuple(k for k in bm.EXTRAS if getattr(args, k))
    cfg = bm.BenchConfig(sizes, variants, args.repeats, args.threads, ref_sizes, not args.no_memory,
                         not args.no_streaming, extras)
    with tqdm(total=len(sizes) * len(variants), desc="bench", unit="case", disable=args.quiet) as bar:
        rows = bm.run(cfg, progress=bar.update)
    print(bm.table(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"environment": environment(), "config": asdict(cfg),
                       "rows": [asdict(r) for r in rows]}, f, indent=2)
    return 0
