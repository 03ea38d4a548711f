"""Held-out quality of char language models on one text, its END held out (issue 14).

For a text file: the last ``--holdout`` share is the held-out text (never seen in
training, not even as validation), the rest is the training file, which ``lstmkit train``
splits again (its own last 5 % is the run's internal validation). Then, each for the
same time budget, on the same machine, one after another:

- ``lstmkit``: ``lstmkit train --text TRAIN`` with this version's defaults (plus --extra);
- ``before``: ``lstmkit train`` of the commit before issue 14 (``--before``: a source
  tree of it, e.g. ``git worktree add /tmp/before 5c9eafe``), with its defaults;
- ``torch``: a plain ``torch.nn.LSTM`` char model (1 × 512, no dropout) trained by the
  same loop (AdamW 3e-3, cosine) on batch 64 × bptt 128, its last weights;
- ``ngram``: the interpolated Kneser-Ney 5-gram fit on the training file.

All are scored on the held-out text with ``evaluate_ids`` (bits/char); the lstmkit and
before arms also mixed with their 5-gram (``lstmkit evaluate``'s "mixture"). Writes JSON
(settings, figures, machine) to --out and prints a Markdown row.

    python benchmarks/lm_quality.py --text FILE --minutes 5 --threads 1 --out results.json
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lstmkit.cli.env import environment
from lstmkit.tasks.runs import load_run
from lstmkit.tasks.text.run import evaluate
from lstmkit.tasks.text import LN2, KneserNey, TextTask, Vocab, evaluate_ids, load_corpus, read_text
from lstmkit.train import TrainConfig, fit


class TorchLM(nn.Module):
    """embedding -> torch.nn.LSTM -> linear decoder, the LanguageModel's forward signature."""

    def __init__(self, vocab_size: int, embed: int = 64, hidden: int = 512):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed)
        self.rnn = nn.LSTM(embed, hidden)
        self.decoder = nn.Linear(hidden, vocab_size)

    def forward(self, tokens, state=None):
        y, state = self.rnn(self.embed(tokens), state)
        return self.decoder(y), state


def split(text_path: str, holdout: float, folder: Path) -> tuple[Path, Path]:
    text = read_text(text_path)
    cut = int(len(text) * (1 - holdout))
    train, rest = folder / "train.txt", folder / "heldout.txt"
    train.write_text(text[:cut], encoding="utf-8")
    rest.write_text(text[cut:], encoding="utf-8")
    return train, rest


def lstmkit_arm(train: Path, rest: Path, out: Path, minutes: float, threads: int, extra: list[str],
                src: str | None = None) -> dict:
    cmd = [sys.executable, "-m", "lstmkit", "train", "--text", str(train), "--out", str(out), "--minutes",
           str(minutes), "--threads", str(threads), "--quiet", "--sample-length", "0", "--seed", "1",
           "--json", str(out) + ".json", *extra]
    t0 = time.monotonic()
    env = {**os.environ, **({"PYTHONPATH": str(Path(src) / "src")} if src else {})}
    subprocess.run(cmd, check=True, env=env)
    info = json.loads(Path(str(out) + ".json").read_text())
    model, run = load_run(out)
    r = evaluate(model, run, str(rest))             # the model, and the model mixed with its 5-gram
    return {"bits_per_char": r["bits_per_char"], "mixture_bits_per_char": r["mixture"]["bits_per_char"],
            "tokens": r["tokens"], "wall_s": time.monotonic() - t0, "steps": info["steps"],
            "train_tokens": info["tokens"], "best": info.get("best"), "plan": info.get("plan"),
            "args": extra, "config": run.config}


def torch_arm(train: Path, rest: Path, minutes: float, threads: int) -> dict:
    torch.set_num_threads(threads)
    corpus = load_corpus([str(train)])
    vocab = Vocab.build(corpus.train, "char", 512)
    task = TextTask(vocab.encode(corpus.train), vocab.encode(corpus.val), kind="char", batch_size=64, bptt=128,
                    eval_tokens=65536, order="fixed")
    torch.manual_seed(1)
    model = TorchLM(len(vocab))
    r = fit(task, model, TrainConfig(minutes=minutes, lr=3e-3, seed=1, eval_every=10 ** 9), progress=False)
    nats, n = evaluate_ids(model, vocab.encode(rest.read_text(encoding="utf-8")))
    return {"bits_per_char": nats / LN2, "tokens": n, "steps": r.step, "train_tokens": r.items,
            "model": "torch.nn.LSTM 1x512, embed 64, no dropout, AdamW 3e-3 cosine, batch 64 x 128"}


def ngram_arm(train: Path, rest: Path) -> dict:
    corpus = load_corpus([str(train)])
    text = corpus.train + corpus.val
    vocab = Vocab.build(corpus.train, "char", 512)
    kn = KneserNey(5, len(vocab)).fit(vocab.encode(text))
    lp = kn.log_probs(vocab.encode(rest.read_text(encoding="utf-8")))[1:]
    return {"bits_per_char": float(-np.mean(lp)) / LN2, "tokens": len(lp),
            "model": "interpolated Kneser-Ney 5-gram on the whole training file"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--text", required=True, help="a UTF-8 file (or folder)")
    p.add_argument("--name", default="", help="the corpus's name in the table")
    p.add_argument("--holdout", type=float, default=0.1, help="share of the end held out (default 0.1)")
    p.add_argument("--heldout", help="the held-out text instead (then --text is the training text as it "
                   "is, e.g. --text corpus:kjv --heldout corpus:kjv:heldout)")
    p.add_argument("--minutes", type=float, default=15.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--arms", default="ngram,lstmkit,before,torch")
    p.add_argument("--extra", default="", help="extra flags for the lstmkit arm, one string")
    p.add_argument("--before", default="/tmp/lm_before", help="source tree of lstmkit before issue 14")
    p.add_argument("--out", required=True)
    p.add_argument("--keep", help="keep the lstmkit/before run folders here (default: a temporary folder)")
    a = p.parse_args()
    arms = a.arms.split(",")
    res = {"text": a.text, "name": a.name or Path(a.text).name, "holdout": a.holdout, "minutes": a.minutes,
           "threads": a.threads, "machine": environment(), "arms": {}}
    with tempfile.TemporaryDirectory() as scratch:
        tmp = a.keep or scratch
        Path(tmp).mkdir(parents=True, exist_ok=True)
        if a.heldout:
            train, rest = Path(tmp) / "train.txt", Path(tmp) / "heldout.txt"
            train.write_text(read_text(a.text), encoding="utf-8")
            rest.write_text(read_text(a.heldout), encoding="utf-8")
        else:
            train, rest = split(a.text, a.holdout, Path(tmp))
        res["train_chars"], res["heldout_chars"] = len(train.read_text()), len(rest.read_text())
        for arm in arms:
            if arm == "ngram":
                r = ngram_arm(train, rest)
            elif arm == "lstmkit":
                r = lstmkit_arm(train, rest, Path(tmp) / "lstmkit", a.minutes, a.threads, a.extra.split())
            elif arm == "before":
                r = lstmkit_arm(train, rest, Path(tmp) / "before", a.minutes, a.threads, [], a.before)
            elif arm == "torch":
                r = torch_arm(train, rest, a.minutes, a.threads)
            else:
                raise SystemExit(f"--arms: unknown arm {arm!r}")
            res["arms"][arm] = r
            print(f"{arm}: {r['bits_per_char']:.3f} bits/char", flush=True)
            Path(a.out).write_text(json.dumps(res, indent=1) + "\n")
    row = " | ".join(f"{res['arms'][k]['bits_per_char']:.3f}" if k in res["arms"] else "–"
                     for k in ("before", "lstmkit", "torch", "ngram"))
    print(f"| {res['name']} | {res['train_chars']:,} / {res['heldout_chars']:,} | {row} |")


if __name__ == "__main__":
    main()
