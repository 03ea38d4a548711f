"""Quality in the same wall-clock budget: MinLSTM, MinGRU, QRNN against the LSTM on the memory
lab's tasks (adding, selective copy).

    nice -n 19 python benchmarks/parallel_quality.py --minutes 1 --json out.json

Each (task, cell) trains the lab's model (one recurrent layer, linear readout:
``tasks.memory.models.SequenceModel``, the lab's chrono initialisation for the LSTM) through
the shared loop with the lab's settings (Adam 1e-2, batch 16, clip 1, a test screen every
1024 sequences, stop when the test set passes) for at most ``--minutes`` of wall-clock, then
scores the lab's test set against the task's chance baseline. The copy tasks train for the
whole budget (their pass mark, 1 % below the memoryless baseline, is met long before any
sequence is recalled) and also report the fraction of recalled symbols that are right. The machine is shared: the load
is recorded with every row, and the CPU seconds the process got. The cells run in the modes
``auto`` picks (on the CPU: the fused loop).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import time

import torch

from lstmkit.cli.env import environment
from lstmkit.tasks.memory import make_task
from lstmkit.tasks.memory.models import SequenceModel
from lstmkit.tasks.memory.training import LabConfig, MemoryTraining
from lstmkit.train import TrainConfig, fit

CELLS = ("lstm", "minlstm", "mingru", "qrnn")
TASKS = {"adding100": ("adding-arjovsky", 100), "adding1000": ("adding-arjovsky", 1000),
         "selective-copy100": ("selective-copy", 100)}


def train_one(task_name: str, T: int, cell: str, minutes: float, seed: int, test_size: int) -> dict:
    task = make_task(task_name, T)
    hidden = 64 if "copy" in task_name else 32
    lab = LabConfig(budget=10**9, test_size=test_size, seed=seed)
    job = MemoryTraining(task, lab)
    model = SequenceModel(cell, task, hidden, seed=seed)
    if "copy" in task_name:
        job.should_stop = lambda: False
    every = math.ceil(lab.eval_every / lab.batch_size)
    cfg = TrainConfig(minutes=minutes, lr=lab.lr, clip=lab.clip, optimizer="adam", schedule="constant",
                      weight_decay=0.0, seed=seed, eval_every=every, log_every=every, ckpt_every=10**9)
    t0, w0 = time.process_time(), time.perf_counter()
    fit(job, model, cfg, progress=False)
    cpu, wall = time.process_time() - t0, time.perf_counter() - w0
    s = job.test_score(model)
    with torch.no_grad():
        out = model.eval()(job.test)
    symbols = (out[-10:].argmax(-1) == job.test.y[-10:]).float().mean().item() if "copy" in task_name else None
    return {"symbol_accuracy": symbols, "task": task_name, "T": T, "cell": cell, "hidden": hidden, "sequences": job.seen,
            "solved_at": job.solved_at, "cpu_s": cpu, "wall_s": wall, "test_error": s.error,
            "baseline": task.baseline, "to_baseline": s.error / task.baseline, "wrong_rate": s.wrong_rate,
            "solved": bool(task.solved(s))}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=1.0, help="wall-clock budget per (task, cell)")
    ap.add_argument("--cells", nargs="+", default=list(CELLS))
    ap.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--test-size", type=int, default=1000)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    out = {"env": environment(), "budget_minutes": args.minutes, "rows": []}
    for task_name, T in (TASKS[k] for k in args.tasks):
        for cell in args.cells:
            r = train_one(task_name, T, cell, args.minutes, args.seed, args.test_size)
            r["load"] = list(os.getloadavg())
            out["rows"].append(r)
            print(f"{task_name:<16}{T:>6} {cell:<8} seqs {r['sequences']:>7}  test {r['test_error']:.4f}  "
                  f"/ baseline {r['to_baseline']:.3f}  wrong {r['wrong_rate']:.3f}  symbols {r['symbol_accuracy']}  "
                  f"(cpu {r['cpu_s']:.0f} s, wall {r['wall_s']:.0f} s)", flush=True)
            if args.json:
                with open(args.json, "w") as f:
                    json.dump(out, f, indent=1)
    return out


if __name__ == "__main__":
    main()
