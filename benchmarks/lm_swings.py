"""Why does the internal validation figure of a text run swing between evaluations?

Trains a char LM with the library's own loop (``lstmkit.train.fit``) on one text file with
a tail split (the last 5 % of the file is the validation text, as ``lstmkit train`` does),
evaluates every few steps and records, for each evaluation, the step's position in the
epoch (the segment index j that the loop's batch(step) reads) beside the validation figure.
A figure that depends on j, and not on the step, is a data-order effect; one that is
the same for repeated evaluations of the same weights rules the evaluation out.

    python benchmarks/lm_swings.py --text FILE --steps 1600 --eval-every 25 --order fixed
    python benchmarks/lm_swings.py --text FILE --steps 1600 --eval-every 25 --order shuffled

Writes one JSON file (rows + the settings + the machine) to --out.

    python benchmarks/lm_swings.py --probe RUN [RUN ...] --out probe.json

scores each run's model on its validation text from zero states in 32, 4 and 1 streams
(1/32 of the text, 1/4, all of it per stream), with the loss by position in the stream:
a model trained on streams whose state was carried for a whole epoch and reset only at
its start meets, in the 32-stream evaluation, states younger than nearly all it trained on.
"""
from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import torch

from lstmkit.tasks.text import LanguageModel, LMConfig, TextTask, Vocab, evaluate_ids, load_corpus
from lstmkit.train import TrainConfig, fit


def probe(runs: list[str], out: str, threads: int) -> None:
    from lstmkit.tasks.runs import load_run
    from lstmkit.tasks.text import reload_corpus
    from lstmkit.tasks.text.task import token_losses
    torch.set_num_threads(threads)
    res = {}
    for run in runs:
        model, info = load_run(run)
        ids = info.vocab.encode(reload_corpus(info.corpus).val)
        r = {"order": info.config["data"].get("order", "fixed"), "hidden": info.model_config.hidden}
        for streams in (32, 4, 1):
            nats, pos = token_losses(model, ids, streams=streams)
            r[f"bpc_{streams}_streams"] = float(nats.mean() / np.log(2))
            if streams == 32:
                L = (len(ids) - 1) // 32
                age = (pos - 1) % L                      # tokens since the stream's zero state
                r["bpc_by_age"] = {f"{a}-{b}": float(nats[(age >= a) & (age < b)].mean() / np.log(2))
                                   for a, b in ((0, 64), (64, 256), (256, 1024), (1024, L))}
        res[run] = r
        print(run, json.dumps(r), flush=True)
    with open(out, "w") as f:
        json.dump(res, f, indent=1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--probe", nargs="+", metavar="RUN", help="score trained runs as above instead")
    p.add_argument("--text")
    p.add_argument("--steps", type=int, default=1600)
    p.add_argument("--eval-every", type=int, default=25)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--bptt", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--schedule", default="constant")
    p.add_argument("--order", default="fixed", help="the TextTask data order: fixed | shuffled")
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--ema", type=float, default=0.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--checks", type=int, default=3, help="evaluations that also re-score the same weights "
                   "(twice, and as one uncut stream)")
    p.add_argument("--out", required=True)
    a = p.parse_args()
    if a.probe:
        return probe(a.probe, a.out, a.threads)
    torch.set_num_threads(a.threads)
    corpus = load_corpus([a.text])
    vocab = Vocab.build(corpus.train, "char", 512)
    train_ids, val_ids = vocab.encode(corpus.train), vocab.encode(corpus.val)
    kw = {"order": a.order, "seed": a.seed} if a.order != "fixed" else {}
    task = TextTask(train_ids, val_ids, kind="char", batch_size=a.batch_size, bptt=a.bptt,
                    eval_tokens=len(val_ids), **kw)
    torch.manual_seed(a.seed)
    model = LanguageModel(LMConfig(vocab_size=len(vocab), hidden=a.hidden, dropout=a.dropout))
    rows, t0 = [], time.monotonic()
    evaluate = task.evaluate

    def logged(m):
        r = evaluate(m)
        row = {"eval": len(rows), **r, "elapsed_s": time.monotonic() - t0}
        if len(rows) < a.checks:
            again, _ = evaluate_ids(m, task.val)          # the same weights, scored a second time
            one, _ = evaluate_ids(m, task.val, streams=1, bptt=len(task.val))   # one stream, no cuts
            row.update(val_bpc_again=again / np.log(2), val_bpc_one_stream=one / np.log(2))
        rows.append(row)
        return r

    task.evaluate = logged
    cfg = TrainConfig(steps=a.steps, lr=a.lr, schedule=a.schedule, eval_every=a.eval_every,
                      log_every=a.eval_every, seed=a.seed, ema=a.ema)
    r = fit(task, model, cfg, None, progress=False)
    for row, h in zip(rows, [h for h in r.history if "val_loss" in h]):
        row["step"], row["train_loss"] = h["step"], h.get("train_loss")
        row["epoch_phase"] = h["step"] % task.segments
    out = {"settings": vars(a), "segments_per_epoch": task.segments, "train_chars": len(corpus.train),
           "val_chars": len(corpus.val), "machine": {"python": platform.python_version(),
           "torch": torch.__version__, "threads": a.threads, "cpu": platform.processor() or platform.machine()},
           "rows": rows}
    with open(a.out, "w") as f:
        json.dump(out, f, indent=1)
    for row in rows:
        extra = (f" (again {row['val_bpc_again']:.3f}, one stream {row['val_bpc_one_stream']:.3f})"
                 if "val_bpc_again" in row else "")
        print(f"step {row['step']:5d} phase {row['epoch_phase']:4d} train {row['train_loss'] / np.log(2):.3f} "
              f"val {row['val_bpc']:.3f}{extra}", flush=True)


if __name__ == "__main__":
    main()
