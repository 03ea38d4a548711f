"""A char LSTM on the standard library source, trained fast with torch.nn.LSTM (oneDNN) and
written as an ordinary lstmkit text run, for the gate report (docs/inspect.md).

Why: on a small, busy CPU the reference engine trains too few characters in the default
5 minutes for Karpathy-style cells to form; torch.nn.LSTM has the same parameters, so the
weights load into lstmkit.LSTM unchanged and ``lstmkit inspect`` then records the gates
with lstmkit's own engine. Training text: the top-level ``*.py`` files of the stdlib;
validation (what ``inspect`` reads by default): the default run's held-out files that lie
in sub-packages, so the report is read on code the model never saw.

    python benchmarks/inspect_stdlib_lm.py --minutes 12 --out runs/stdlib-2x256
    lstmkit inspect runs/stdlib-2x256 --out report.html
"""
from __future__ import annotations

import argparse
import time
import zlib
from pathlib import Path
from dataclasses import asdict

import torch
from safetensors.torch import load_file
from torch import nn

from lstmkit import __version__
from lstmkit.interop import checkpoint as ckpt
from lstmkit.tasks.text import CORPUS, VOCAB, LMConfig, Vocab
from lstmkit.tasks.text.corpus import TEST_DIRS, VAL_PERCENT, _stdlib_files, stdlib_root


def corpus() -> tuple[str, dict]:
    root = stdlib_root()
    files = _stdlib_files(root)
    names = [p.relative_to(root).as_posix() for p in files]
    train = [n for n in names if "/" not in n]
    val = [n for n in names if "/" in n and zlib.crc32(n.encode()) % 100 < VAL_PERCENT]
    text = "".join((t := (root / n).read_text(encoding="utf-8")) + ("" if t.endswith("\n") else "\n")
                   for n in train)
    record = {"kind": "stdlib", "root": str(root), "excluded_dirs": sorted(TEST_DIRS), "rule": "files",
              "detail": "train: top-level *.py; val: sub-package files with crc32(name) % 100 < 5",
              "files": [[n, "train"] for n in train] + [[n, "val"] for n in val], "train_chars": len(text)}
    return text, record


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=12.0)
    ap.add_argument("--out", required=True)
    ap.add_argument("--init", help="model.safetensors of an earlier run of this script to continue from")
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=2)
    args = ap.parse_args()
    torch.manual_seed(0)
    text, record = corpus()
    vocab = Vocab.build(text, "char", 512)
    cfg = LMConfig(vocab_size=len(vocab), embed=64, hidden=args.hidden, layers=args.layers)
    emb, rnn = nn.Embedding(len(vocab), cfg.embed), nn.LSTM(cfg.embed, cfg.hidden, cfg.layers)
    dec = nn.Linear(cfg.hidden, len(vocab))
    params = nn.ModuleDict({"embed": emb, "rnn": rnn, "decoder": dec})
    if args.init:
        params.load_state_dict(load_file(args.init))
    data = torch.as_tensor(vocab.encode(text))
    opt = torch.optim.Adam(params.parameters(), lr=2e-3)
    T, B = 128, 32                                  # truncated BPTT, B parallel streams
    N = (len(data) - 1) // B
    state, pos, step, t0 = None, 0, 0, time.time()
    while time.time() - t0 < args.minutes * 60:
        if pos + T + 1 > N:
            pos, state = 0, None
        idx = torch.arange(B)[None, :] * N + pos + torch.arange(T + 1)[:, None]
        y, state = rnn(emb(data[idx[:-1]]), state)
        state = tuple(s.detach() for s in state)
        loss = nn.functional.cross_entropy(dec(y).flatten(0, 1), data[idx[1:]].flatten())
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(params.parameters(), 1.0)
        opt.step()
        pos, step = pos + T, step + 1
        if step % 50 == 0:
            print(f"step {step}  {time.time() - t0:.0f} s  train {loss.item() / 0.693147:.3f} bits/char", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt.save_tensors(out / ckpt.MODEL, params.state_dict(), {"step": step})
    ckpt.write_json(out / VOCAB, vocab.to_json())
    ckpt.write_json(out / CORPUS, record)
    ckpt.write_json(out / ckpt.CONFIG, {
        "lstmkit_format": ckpt.FORMAT, "lstmkit_version": __version__, "task": "text", "model": asdict(cfg),
        "train": {"script": "benchmarks/inspect_stdlib_lm.py", "steps": step, "bptt": T, "batch_size": B,
                  "minutes": args.minutes, "init": args.init}})
    print(f"wrote {out}: {step} steps this session")


if __name__ == "__main__":
    main()
