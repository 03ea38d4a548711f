"""Train gated and plain recurrent cells on a long-time-lag task and report who solves it.

Tasks (``lstmkit.tasks.memory``): adding, adding-arjovsky, copy, order, reber, and the xLSTM
paper's parity (state tracking) and mqar (multi-query associative recall). Each cell
gets the same initial seed, training sequences and test set; training stops as soon as the
test set passes the paper's criterion or the budget of training sequences is spent.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from ..report.memory_plots import plot_learning_curves
from ..tasks.memory import TASKS, make_task
from ..tasks.memory.models import SequenceModel, default_hidden_size
from ..tasks.memory.training import LabConfig, MemoryTraining, make_test_set
from ..train import fit
from ._common import (UsageError, add_batch_size, add_cell, add_json, add_model_arguments, add_out, add_quiet,
                      add_seed, cells as cell_names, set_threads)


def add_arguments(p: argparse.ArgumentParser) -> None:
    names = list(TASKS)
    p.add_argument("--task", default="adding", help=f"{', '.join(names[:-1])} or {names[-1]} (default adding)")
    p.add_argument("--length", type=int, default=100, help="sequence length T (default 100)")
    add_cell(p, "lstm,gru,rnn", many=True, help_="the cells to compare", parallel=True)
    p.add_argument("--budget", type=int, default=20_000, help="training sequences per cell at most (default 20000)")
    add_seed(p)
    p.add_argument("--hidden", type=int, default=None, help="hidden units (default: 32; 64 for copy)")
    p.add_argument("--lr", type=float, default=None, help="Adam learning rate (default 1e-2)")
    add_batch_size(p, None, "sequences per update (default 16)")
    p.add_argument("--clip", type=float, default=None, help="max gradient norm (default 1.0)")
    p.add_argument("--average", type=float, default=None,
                   help="decay of the weight average that is tested (default 0: the raw weights)")
    p.add_argument("--test-size", type=int, default=2560, help="test sequences (default 2560, as in 1997)")
    add_model_arguments(p)
    add_quiet(p)
    add_out(p, "memory_out", "folder of the learning-curve PNG, memory_<task>_T<length>.png")
    add_json(p)


def _positive(name: str, value, minimum=1):
    if value is not None and value < minimum:
        raise UsageError(f"{name}: expected >= {minimum}, got {value}")


def _config(args):
    """Validate the arguments; return (task, cells, LabConfig, hidden size)."""
    if args.task not in TASKS:
        raise UsageError(f"--task: expected one of {', '.join(TASKS)}, got {args.task!r}")
    _positive("--length", args.length, 2)
    _positive("--budget", args.budget)
    _positive("--hidden", args.hidden)
    _positive("--batch-size", args.batch_size)
    _positive("--test-size", args.test_size)
    for name in ("lr", "clip"):
        v = getattr(args, name)
        if v is not None and not v > 0:
            raise UsageError(f"--{name}: expected a positive number, got {v}")
    cells = cell_names(args.cell, many=True, parallel=True)
    try:
        task = make_task(args.task, args.length)
    except ValueError as e:
        raise UsageError(f"--length: {e}") from None
    if args.average is not None and not 0 <= args.average < 1:
        raise UsageError(f"--average: expected a number in [0, 1), got {args.average}")
    given = {k: v for k, v in (("lr", args.lr), ("batch_size", args.batch_size), ("clip", args.clip),
                               ("average", args.average)) if v is not None}
    cfg = LabConfig(budget=args.budget, seed=args.seed, test_size=args.test_size, **given)
    return task, cells, cfg, args.hidden or default_hidden_size(task)


def run(args) -> int:
    task, cells, cfg, hidden = _config(args)
    set_threads(args)
    test = make_test_set(task, cfg)
    print(f"{task.name}, T = {task.length}: {len(cells)} cell(s), up to {cfg.budget} sequences each, "
          f"H = {hidden}, Adam lr {cfg.lr}, batch {cfg.batch_size}, clip {cfg.clip}, "
          f"{'torch init' if args.no_chrono else 'chrono init'}, seed {cfg.seed}")
    results = {}
    for cell in cells:
        model = SequenceModel(cell, task, hidden, chrono=not args.no_chrono, seed=cfg.seed)
        lab = MemoryTraining(task, cfg, test)
        fitted = fit(lab, model, cfg.train_config(), desc=cell, progress=not args.quiet)
        final = lab.test_score(fitted.averaged if fitted.averaged is not None else model)
        results[cell] = r = {
            "cell": cell, "solved": lab.solved_at is not None, "sequences_to_solve": lab.solved_at,
            "test_error": final.error, "baseline": task.baseline, "test_wrong": final.wrong,
            "sequences_seen": lab.seen, "seconds": round(fitted.elapsed_s, 1), "curve": lab.curve}
        print(f"  {cell:<9} {'solved' if r['solved'] else 'not solved'} after {r['sequences_seen']} sequences, "
              f"test error {r['test_error']:.4g} {task.unit} ({r['seconds']:.0f} s)", flush=True)
    print()
    print(f"{'cell':<10}{'solved':<8}{'seqs to solve':>14}{'test error':>12}{'wrong/' + str(cfg.test_size):>12}"
          f"{'baseline':>10}")
    for cell, r in results.items():
        print(f"{cell:<10}{'yes' if r['solved'] else 'no':<8}{r['sequences_to_solve'] or '-':>14}"
              f"{r['test_error']:>12.4g}{r['test_wrong']:>12}{task.baseline:>10.4g}")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    plot = Path(args.out) / f"memory_{task.name}_T{task.length}.png"
    plot_learning_curves({c: r["curve"] for c, r in results.items()}, baseline=task.baseline, unit=task.unit,
                         title=f"{task.name}, T = {task.length}, seed {cfg.seed}", path=plot,
                         solved_at={c: r["sequences_to_solve"] for c, r in results.items()})
    print(f"learning curves: {plot}")
    if args.json:
        doc = {"task": task.name, "length": task.length, "unit": task.unit, "seed": cfg.seed,
               "hidden_size": hidden, "chrono": not args.no_chrono,
               "config": {k: getattr(cfg, k) for k in ("budget", "batch_size", "lr", "clip", "average", "eval_every",
                                                      "test_size")},
               "results": list(results.values())}
        Path(args.json).write_text(json.dumps(doc, indent=1) + "\n")
        print(f"results: {args.json}")
    return 0

