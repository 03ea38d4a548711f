"""What every subcommand shares: the usage error and the one vocabulary of flags.

The same flag means the same thing in every command that has it:

    --cell NAME[,NAME]   names from ``lstmkit.variants.VARIANTS`` (one, or a comma-separated list)
    --batch-size N       sequences per batch          --seed N     the random seed
    --threads N          torch CPU threads            --quiet      no progress bar, fewer lines
    --out DIR/PATH       where the outputs go         --json PATH  the figures as JSON
"""
from __future__ import annotations

import argparse

import torch

from ..variants import ALL_VARIANTS, VARIANTS


class UsageError(Exception):
    """A problem the user can fix: printed as one line, exit code 2."""


def add_cell(p, default: str, *, many: bool = False, help_: str = "", parallel: bool = False) -> None:
    """parallel: also offer ``variants.PARALLEL_VARIANTS`` (minlstm, mingru) and ``XLSTM_VARIANTS`` (slstm, mlstm)."""
    what = "comma-separated variant names" if many else "a variant name"
    names = ALL_VARIANTS if parallel else VARIANTS
    p.add_argument("--cell", default=default, metavar="NAME[,NAME]" if many else "NAME",
                   help=f"{help_ or what} from: {', '.join(names)} (default {default})")


def cells(value: str, *, many: bool = False, parallel: bool = False) -> list[str]:
    """The --cell value as a list of registry names; UsageError naming the choices otherwise.
    parallel: also accept ``PARALLEL_VARIANTS`` and ``XLSTM_VARIANTS`` (commands whose models take them)."""
    known = ALL_VARIANTS if parallel else VARIANTS
    names = [c.strip() for c in value.split(",") if c.strip()] if many else [value]
    if not names or any(c not in known for c in names) or (not many and "," in value):
        raise UsageError(f"--cell: expected {'comma-separated names' if many else 'one name'} from "
                         f"{', '.join(known)}, got {value!r}")
    return names


def add_seed(p, default: int = 0) -> None:
    p.add_argument("--seed", type=int, default=default, help=f"random seed (default {default})")


def add_batch_size(p, default: int | None, what: str) -> None:
    p.add_argument("--batch-size", type=int, default=default,
                   help=f"{what} (default {default})" if default is not None else what)


def add_threads(p, default: int | None = None, why: str = "") -> None:
    shown = "torch's, one per core" if default is None else default
    p.add_argument("--threads", type=int, default=default,
                   help=f"torch CPU threads (default {shown}{'; ' + why if why else ''})")


def add_quiet(p) -> None:
    p.add_argument("--quiet", action="store_true", help="no progress bar, only the results")


def add_json(p, what: str = "the results") -> None:
    p.add_argument("--json", metavar="PATH", help=f"also write {what} as JSON")


def add_out(p, default, what: str) -> None:
    p.add_argument("--out", default=default, metavar="DIR", help=f"{what} (default {default})")


def set_threads(args) -> None:
    """Apply --threads after checking it (None: torch's default)."""
    if args.threads is None:
        return
    if args.threads < 1:
        raise UsageError(f"--threads: expected >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    """Options shared by ``memory`` and ``gradflow``: initialisation and torch threads."""
    p.add_argument("--no-chrono", action="store_true", help="torch's init instead of chrono initialisation")
    add_threads(p, 1, "these small recurrent steps gain nothing from more, and spare threads "
                      "spin and slow down on a busy machine")
