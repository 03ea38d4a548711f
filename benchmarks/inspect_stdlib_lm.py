"""A char LSTM on the standard library source, trained fast with torch.nn.LSTM (oneDNN) and
written as an ordinary lstmkit text run, for the gate report (docs/inspect.md).

Why: on a small, busy CPU the reference engine trains too few characters in the default
5 minutes for Karpathy-style cells to form; torch.nn.LSTM has the same parameters, so the
weights load into lstmkit.LSTM unchanged and ``lstmkit inspect`` then records the gates
with lstmkit's own engine. Training text: the top-level ``*.py`` files of the stdlib;
validation (what ``inspect`` reads by default): the default run's held-out files that lie
in sub-packages, so the report is read on code the model never saw. Trained by the shared
loop (``lstmkit.train.fit``, plain Adam at a constant 2e-3, clip 1): ``--out`` gets its
checkpoint and metrics.csv besides the run files.

    python benchmarks/inspect_stdlib_lm.py --minutes 12 --out runs/stdlib-2x256
    lstmkit inspect runs/stdlib-2x256 --out report.html
"""
from __future__ import annotations

import argparse
import zlib
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from lstmkit import __version__
from lstmkit.interop import checkpoint as ckpt
from lstmkit.specs import LSTMState
from lstmkit.tasks.text import CORPUS, VOCAB, LMConfig, TextTask, Vocab
from lstmkit.tasks.text.corpus import TEST_DIRS, VAL_PERCENT, _stdlib_files, stdlib_root
from lstmkit.train import TrainConfig, fit


def corpus() -> tuple[str, str, dict]:
    """-> (training text, validation text, corpus.json record)."""
    root = stdlib_root()
    files = _stdlib_files(root)
    names = [p.relative_to(root).as_posix() for p in files]
    train = [n for n in names if "/" not in n]
    val = [n for n in names if "/" in n and zlib.crc32(n.encode()) % 100 < VAL_PERCENT]

    def read(group):
        return "".join((t := (root / n).read_text(encoding="utf-8")) + ("" if t.endswith("\n") else "\n")
                       for n in group)
    text = read(train)
    record = {"kind": "stdlib", "root": str(root), "excluded_dirs": sorted(TEST_DIRS), "rule": "files",
              "detail": "train: top-level *.py; val: sub-package files with crc32(name) % 100 < 5",
              "files": [[n, "train"] for n in train] + [[n, "val"] for n in val], "train_chars": len(text)}
    return text, read(val), record


class TorchCharLM(nn.Module):
    """The parameters of ``lstmkit.tasks.text.LanguageModel`` (embed, rnn, decoder), same
    names and shapes, on torch.nn.LSTM; forward(x, state) -> (logits, LSTMState) as the LM's."""

    def __init__(self, cfg: LMConfig):
        super().__init__()
        self.embed = nn.Embedding(cfg.vocab_size, cfg.embed)
        self.rnn = nn.LSTM(cfg.embed, cfg.hidden, cfg.layers)
        self.decoder = nn.Linear(cfg.hidden, cfg.vocab_size)

    def forward(self, x, state=None):
        y, state = self.rnn(self.embed(x), state)
        return self.decoder(y), LSTMState(*state)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=12.0)
    ap.add_argument("--out", required=True)
    ap.add_argument("--init", help="model.safetensors of an earlier run of this script to continue from")
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=2)
    args = ap.parse_args()
    torch.manual_seed(0)
    text, val, record = corpus()
    vocab = Vocab.build(text, "char", 512)
    cfg = LMConfig(vocab_size=len(vocab), embed=64, hidden=args.hidden, layers=args.layers)
    model = TorchCharLM(cfg)
    if args.init:
        model.load_state_dict(load_file(args.init))
    T, B = 128, 32                                  # truncated BPTT, B parallel streams
    task = TextTask(vocab.encode(text), vocab.encode(val), kind="char", batch_size=B, bptt=T, eval_tokens=16384)
    train = TrainConfig(minutes=args.minutes, lr=2e-3, optimizer="adam", schedule="constant", weight_decay=0.0,
                        clip=1.0, eval_every=500, ckpt_every=500, log_every=50)
    out = Path(args.out)
    result = fit(task, model, train, out)           # checkpoints, model.safetensors, metrics.csv
    ckpt.write_json(out / VOCAB, vocab.to_json())
    ckpt.write_json(out / CORPUS, record)
    ckpt.write_json(out / ckpt.CONFIG, {
        "lstmkit_format": ckpt.FORMAT, "lstmkit_version": __version__, "task": "text", "model": asdict(cfg),
        "train": {"script": "benchmarks/inspect_stdlib_lm.py", "steps": result.step, "bptt": T, "batch_size": B,
                  "minutes": args.minutes, "init": args.init, "loop": asdict(train)}})
    figures = ", ".join(f"{k} {v:.4f}" for k, v in result.metrics.items())
    print(f"wrote {out}: {result.step} steps this session; {figures}")


if __name__ == "__main__":
    main()
