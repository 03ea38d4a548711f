"""Accuracy of lstmkit.quantize where it matters: the same trained model in float32 and int8.

    PYTHONPATH=src python benchmarks/int8_accuracy.py --lm RUN            # bits/char on the run's held-out text
    PYTHONPATH=src python benchmarks/int8_accuracy.py --forecast sunspots  # MASE over the backtest origins
    PYTHONPATH=src python benchmarks/int8_accuracy.py --adding 100         # adding problem: still solved?
    ... --json benchmarks/results_int8_accuracy.json

--lm: a run of ``lstmkit train``; bits/char of its float model and of quantize(model) on the
first --chars characters of its validation split (the same token losses as ``lstmkit evaluate``).
--forecast: the forecaster of ``lstmkit forecast`` (defaults) fitted as the backtest fits it;
MASE of the median over the rolling origins, float32 nets and the same nets quantized.
--adding: the memory lab's LSTM trained on the adding problem until it passes the 1997 test
(at most 1 of 2560 test sequences wrong) or --budget sequences; then the test set scored with
the float32 and the int8 model.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import torch

from lstmkit.cli.env import environment
from lstmkit.quant import quantize


def lm(run_dir: str, chars: int) -> dict:
    from lstmkit.tasks.runs import load_run
    from lstmkit.tasks.text.corpus import reload_corpus
    from lstmkit.tasks.text.task import LN2, token_losses
    model, run = load_run(run_dir)
    ids = run.vocab.encode(reload_corpus(run.corpus).val[:chars])
    out = {"run": run_dir, "tokens": int(len(ids) - 1)}
    for name, m in (("float32", model), ("int8", quantize(model))):
        t = time.perf_counter()
        nats, _ = token_losses(m, ids)
        out[name] = {"bits_per_char": float(nats.mean()) / LN2, "seconds": round(time.perf_counter() - t, 1)}
    out["change"] = out["int8"]["bits_per_char"] - out["float32"]["bits_per_char"]
    return out


def forecast(dataset: str, steps: int) -> dict:
    from lstmkit.tasks import forecast as fc
    from lstmkit.tasks.forecast import metrics
    from lstmkit.tasks.forecast.backtest import origins_for
    data = fc.load_dataset(dataset)
    cfg = fc.ForecastConfig(horizon=data.season if data.season > 1 else 10, steps=steps)
    origins = origins_for(data, cfg)
    model = fc.Forecaster(cfg).fit(data, end=list(origins[:, 0]), progress=False)
    H, m, mid = cfg.horizon, data.season, cfg.quantiles.index(0.5)
    actual = np.stack([[data.values[k][o:o + H] for o in origins[k]] for k in range(len(data))])
    scale = np.array([metrics.mase_scale(data.values[k][:origins[k, 0]], m) for k in range(len(data))])
    out = {"dataset": dataset, "horizon": H, "origins": int(origins.shape[1])}
    nets = list(model.nets)
    for name, members in (("float32", nets), ("int8", [quantize(n) for n in nets])):
        model.nets = members
        q = np.stack([model.predict(data, end=list(origins[:, j])) for j in range(origins.shape[1])], axis=1)
        point = q[..., mid]
        out[name] = {"mase": float(np.mean([metrics.mase(actual[k], point[k], scale[k]) for k in range(len(data))]))}
    out["change"] = out["int8"]["mase"] - out["float32"]["mase"]
    return out


def adding(length: int, budget: int) -> dict:
    from lstmkit.tasks.memory import make_task
    from lstmkit.tasks.memory.models import SequenceModel, default_hidden_size
    from lstmkit.tasks.memory.training import LabConfig, MemoryTraining
    from lstmkit.train import fit
    task = make_task("adding", length)
    cfg = LabConfig(budget=budget)
    model = SequenceModel("lstm", task, default_hidden_size(task), seed=cfg.seed)
    lab = MemoryTraining(task, cfg)
    fit(lab, model, cfg.train_config(), desc="adding", progress=False)
    out = {"length": length, "sequences_to_solve": lab.solved_at, "test_size": cfg.test_size}
    for name, mm in (("float32", model.eval()), ("int8", quantize(model))):
        s = lab.test_score(mm)
        out[name] = {"test_mse": s.error, "wrong": s.wrong, "solved": task.solved(s)}
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lm", metavar="RUN", help="a run directory of lstmkit train")
    p.add_argument("--chars", type=int, default=200_000, help="held-out characters scored (default 200k)")
    p.add_argument("--forecast", metavar="DATASET", help="a bundled series (sunspots, co2, nile, elnino)")
    p.add_argument("--forecast-steps", type=int, default=300, help="training steps of the forecaster (default 300)")
    p.add_argument("--adding", type=int, metavar="T", help="adding problem of length T")
    p.add_argument("--budget", type=int, default=30_000, help="adding: training sequences at most")
    p.add_argument("--json", metavar="PATH", help="also write the results and the environment")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    res = {"environment": environment()}
    if a.lm:
        res["lm"] = lm(a.lm, a.chars)
        print(json.dumps(res["lm"]), flush=True)
    if a.forecast:
        res["forecast"] = forecast(a.forecast, a.forecast_steps)
        print(json.dumps(res["forecast"]), flush=True)
    if a.adding:
        res["adding"] = adding(a.adding, a.budget)
        print(json.dumps(res["adding"]), flush=True)
    res["load_average_after"] = os.getloadavg()
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
