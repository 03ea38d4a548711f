"""Bits per character (or perplexity) of a trained run on any text, beside an n-gram yardstick and
the two mixed (tasks/text/mixture.py)."""
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
                   help="order of the Kneser-Ney yardstick, fit on the text the run saw (default 5 char, 3 word; "
                   "the mixture with the model is reported at the run's own order only)")
    p.add_argument("--worst", type=int, default=0, metavar="N",
                   help="also show the N spans of highest loss (64 chars or 16 words each), with their text")
    p.add_argument("--json", metavar="PATH", help="also write the figures as JSON (with the per-token "
                   "losses' summary and the worst spans)")


def run(args) -> int:
    try:
        if args.ngram_order < 0:
            raise ValueError(f"--ngram-order: expected an int >= 1, got {args.ngram_order}")
        if args.worst < 0:
            raise ValueError(f"--worst: expected an int >= 0, got {args.worst}")
        model, info = load_run(args.run)
        r = evaluate(model, info, args.text, ngram_order=args.ngram_order, worst=args.worst)
    except (ValueError, CheckpointError) as e:
        raise UsageError(str(e)) from None
    key = "bits_per_char" if "bits_per_char" in r else "perplexity"
    label = key.replace("_", "/").replace("bits/per/char", "bits/char")
    print(f"{r['text']}: {r['tokens']:,} tokens ({r['unknown_tokens']:,} <unk>)")
    print(f"  model ({info.model_config.cell}) {label}: {r[key]:.4f}")
    print(f"  {r['ngram']['model']} (fit on {r['ngram']['fit_on']}) {label}: {r['ngram'][key]:.4f}")
    if "mixture" in r:
        print(f"  {r['mixture']['model']} {label}: {r['mixture'][key]:.4f}")
    t = r["token_bits"]
    print(f"  per-token loss (bits): median {t['median']:.2f}, 90th percentile {t['p90']:.2f}, "
          f"99th {t['p99']:.2f}, max {t['max']:.2f}; {t['share_over_4_bits']:.1%} of tokens over 4 bits")
    if r["worst"]:
        print(f"the {len(r['worst'])} spans of highest loss (bits per token, text):")
    for w in r["worst"]:
        print(f"  {w['bits_per_token']:6.2f}  at token {w['start']:,}: {w['text']!r}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(r, f, indent=2)
    return 0
