"""Bits per character (or perplexity) of a trained run on any text, beside an n-gram yardstick."""
from __future__ import annotations

import argparse
import json

from ..interop.checkpoint import CheckpointError
from ..tasks.runs import load_run
from ..tasks.text.run import evaluate
from ._common import UsageError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", metavar="RUN", help="run directory written by lstmkit train")
    p.add_argument("--text", metavar="PATH", help="UTF-8 file or folder (default: the run's validation split)")
    p.add_argument("--ngram-order", type=int, default=0,
                   help="order of the Kneser-Ney yardstick fit on the run's training text (default 5 char, 3 word)")
    p.add_argument("--json", metavar="PATH", help="also write the figures as JSON")


def run(args) -> int:
    try:
        if args.ngram_order < 0:
            raise ValueError(f"--ngram-order: expected an int >= 1, got {args.ngram_order}")
        model, info = load_run(args.run)
        r = evaluate(model, info, args.text, ngram_order=args.ngram_order)
    except (ValueError, CheckpointError) as e:
        raise UsageError(str(e)) from None
    key = "bits_per_char" if "bits_per_char" in r else "perplexity"
    label = key.replace("_", "/").replace("bits/per/char", "bits/char")
    print(f"{r['text']}: {r['tokens']:,} tokens ({r['unknown_tokens']:,} <unk>)")
    print(f"  model ({info.model_config.cell}) {label}: {r[key]:.4f}")
    print(f"  {r['ngram']['model']} {label}: {r['ngram'][key]:.4f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(r, f, indent=2)
    return 0
