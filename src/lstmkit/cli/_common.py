"""What every subcommand shares: the usage error and argument groups used by several commands."""
from __future__ import annotations

import argparse


class UsageError(Exception):
    """A problem the user can fix: printed as one line, exit code 2."""


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    """Options shared by ``memory`` and ``gradflow``: initialisation and torch threads."""
    p.add_argument("--no-chrono", action="store_true", help="torch's init instead of chrono initialisation")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1: these small recurrent steps gain nothing from "
                        "more, and spare threads spin and slow down on a busy machine)")
