"""The ``lstmkit`` command: one module per subcommand, registered in one table.

Each subcommand module has ``add_arguments(parser)`` and ``run(args) -> int``. Library
code never reads ``sys.argv``; errors the user can fix are ``UsageError`` (one line on
stderr, exit code 2).
"""
from __future__ import annotations

import argparse
import importlib
import sys

from ._common import UsageError

# name -> (module, one-line help). Keep in the order a user meets them.
COMMANDS = {
    "train": ("train", "train a language model (default: char LSTM on the stdlib source, ~5 min)"),
    "generate": ("generate", "sample text from a trained run"),
    "evaluate": ("evaluate", "bits/char or perplexity of a run on a text, beside an n-gram yardstick"),
    "inspect": ("inspect", "a gate-by-gate HTML report of a trained run"),
    "forecast": ("forecast", "forecast a time series from a CSV, backtested against classical baselines"),
    "memory": ("memory", "train cells on long-time-lag tasks (adding, copy, order, reber)"),
    "gradflow": ("gradflow", "gradient norm back in time, at init and after training"),
    "export": ("export", "write a trained run as an ONNX graph, checked with ONNX Runtime"),
    "bench": ("bench", "speed and memory of every variant against torch.nn, same process"),
    "demo": ("demo", "a short tour of the API on random data (seconds)"),
    "env": ("env", "versions and machine, for bug reports"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lstmkit", description="Every LSTM variant, as real software.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_) in COMMANDS.items():
        mod = importlib.import_module(f".{module}", __name__)
        p = sub.add_parser(name, help=help_, description=(mod.__doc__ or help_).strip().splitlines()[0])
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except UsageError as e:
        print(f"lstmkit {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"lstmkit {args.command}: interrupted", file=sys.stderr)
        return 130
