"""See inside a trained run: a self-contained HTML page of its gates, unit by unit.

Records every gate (i, f, g, o), the cell state c, tanh(c) and the output h of every layer
and direction over a text, colours the text character by character by any unit, and finds
the units that track a feature of the text (inside a one-line string, a triple-quoted
string, a comment; bracket depth, indentation, position in the line), as Karpathy, Johnson & Fei-Fei 2015 (arXiv 1506.02078).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..interop.checkpoint import CheckpointError
from ..report.inspect import DEFAULT_CHARS, DEFAULT_SHOW, inspect_run, write_report
from ..tasks.runs import load_run
from ..tasks.text import validation_text
from ._common import UsageError, add_json, add_out


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", metavar="RUN", help="a run directory written by `lstmkit train`")
    p.add_argument("--text", metavar="PATH", help="a UTF-8 text file to read (default: the start of "
                   "the run's validation text)")
    add_out(p, "inspect_out", "folder of the HTML page (report.html) and its PNG figures")
    p.add_argument("--chars", type=int, default=DEFAULT_CHARS,
                   help=f"analyse at most this many characters (default {DEFAULT_CHARS})")
    p.add_argument("--show", type=int, default=DEFAULT_SHOW,
                   help=f"colour the first this many of them on the page (default {DEFAULT_SHOW})")
    p.add_argument("--kind", choices=("auto", "code", "prose"), default="auto",
                   help="which text features to correlate with (default: guessed from the text)")
    p.add_argument("--top", type=int, default=3, help="units listed per feature (default 3)")
    add_json(p, "the best unit per feature (layer, direction, quantity, unit, r)")


def run(args) -> int:
    for flag in ("chars", "show", "top"):
        if getattr(args, flag) < 1:
            raise UsageError(f"--{flag}: expected an integer >= 1, got {getattr(args, flag)}")
    text = None
    if args.text is not None:
        try:
            text = Path(args.text).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise UsageError(f"--text {args.text}: cannot read as UTF-8 text ({e})") from None
    try:
        model, info = load_run(args.run)
        text = validation_text(info, args.chars) if text is None else text
        report = inspect_run(model, info.vocab, text, chars=args.chars, kind=args.kind, k=args.top)
    except CheckpointError as e:
        raise UsageError(str(e)) from None
    except (TypeError, ValueError) as e:        # no recurrent module, empty text, unknown chars
        raise UsageError(str(e).splitlines()[0]) from None
    Path(args.out).mkdir(parents=True, exist_ok=True)
    written = write_report(report, Path(args.out) / "report.html", f"lstmkit inspect {Path(args.run).name}",
                           show=args.show)
    print(f"wrote {written.html} and {', '.join(str(p) for p in written.pngs.values())}")
    best = {}
    for name in report.features.names:
        u = report.best(name)
        if u is not None:
            print(f"  {name:<17} best unit: layer {u.layer} dir {u.direction} {u.quantity}[{u.unit}]  r = {u.r:+.3f}")
            best[name] = {"layer": u.layer, "direction": u.direction, "quantity": u.quantity, "unit": u.unit,
                          "r": round(float(u.r), 6)}
    if args.json:
        Path(args.json).write_text(json.dumps({"run": str(args.run), "chars": len(text), "best": best},
                                              indent=1) + "\n")
    return 0
