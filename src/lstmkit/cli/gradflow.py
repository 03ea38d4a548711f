"""Show how far the loss gradient reaches back in time: ‖∂L/∂h_t‖ per step, at initialisation
and after some training, for gated and plain cells (PNG on a log scale and a table)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from ..report.memory_plots import plot_gradflow
from ..tasks.memory import TASKS, make_task
from ..tasks.memory.gradflow import measure
from ..tasks.memory.models import SequenceModel, default_hidden_size
from ..tasks.memory.training import LabConfig, MemoryTraining
from ..train import fit
from ._common import (UsageError, add_batch_size, add_cell, add_json, add_model_arguments, add_out, add_quiet,
                      add_seed, cells as cell_names, set_threads)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_cell(p, "lstm,gru,rnn", many=True, help_="the cells to measure")
    p.add_argument("--length", type=int, default=100, help="sequence length T (default 100)")
    p.add_argument("--task", default="adding", help="task whose loss is differentiated (default adding)")
    p.add_argument("--train", type=int, default=5000, metavar="SEQUENCES",
                   help="training sequences before the second measurement (default 5000; 0 skips it)")
    add_batch_size(p, 128, "sequences the norms are averaged over")
    add_seed(p)
    add_model_arguments(p)
    add_quiet(p)
    add_out(p, "gradflow_out", "folder of the PNG, gradflow_T<length>.png")
    add_json(p, "the norms")


def run(args) -> int:
    if args.task not in TASKS:
        raise UsageError(f"--task: expected one of {', '.join(TASKS)}, got {args.task!r}")
    if args.length < 2:
        raise UsageError(f"--length: expected >= 2, got {args.length}")
    set_threads(args)
    if args.train < 0 or args.batch_size < 1:
        raise UsageError(f"--train, --batch-size: expected >= 0 and >= 1, got {args.train}, {args.batch_size}")
    cells = cell_names(args.cell, many=True)
    try:
        task = make_task(args.task, args.length)
        if hasattr(task, "jitter"):
            task.jitter = False             # one length, so "k steps back" means the same step for all
    except ValueError as e:
        raise UsageError(f"--length: {e}") from None
    batch = task.sample(args.batch_size, torch.Generator().manual_seed(args.seed + 7))
    flows = []
    for cell in cells:
        model = SequenceModel(cell, task, default_hidden_size(task), chrono=not args.no_chrono, seed=args.seed)
        flows.append(measure(cell, model, task, batch, "at initialisation"))
        if args.train:
            cfg = LabConfig(budget=args.train, seed=args.seed, test_size=256)
            lab = MemoryTraining(task, cfg)
            fit(lab, model, cfg.train_config(), desc=cell, progress=not args.quiet)
            flows.append(measure(cell, model, task, batch, f"after {lab.seen} sequences"))
    T = task.horizon
    ks = sorted({0, 1, 10, T // 4, T // 2, T - 1} & set(range(T)))
    print(f"‖∂L/∂h‖ (mean over {args.batch_size} sequences) k steps back from the loss, {task.name}, T = {T}")
    print(f"{'cell':<9}{'phase':<26}" + "".join(f"{'k=' + str(k):>11}" for k in ks) + f"{'ratio':>11}")
    for f in flows:
        print(f"{f.cell:<9}{f.phase:<26}" + "".join(f"{f.grad_h[k]:>11.3g}" for k in ks)
              + f"{f.grad_h[-1] / f.grad_h[0] if f.grad_h[0] else float('nan'):>11.2g}")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    plot = Path(args.out) / f"gradflow_T{T}.png"
    plot_gradflow(flows, title=f"{task.name}, T = {T}", path=plot)
    print(f"ratio = ‖∂L/∂h‖ at k = T-1 over k = 0; figure: {plot}")
    if args.json:
        Path(args.json).write_text(json.dumps({"task": task.name, "length": T, "flows": [f.__dict__ for f in flows]}) + "\n")
        print(f"norms: {args.json}")
    return 0
