"""Print versions and the machine, for bug reports."""
from __future__ import annotations

import argparse
import json
import os
import platform


def environment() -> dict:
    import numpy
    import torch

    import lstmkit
    from lstmkit.engines.fused import build
    return {
        "lstmkit": lstmkit.__version__, "python": platform.python_version(), "torch": torch.__version__,
        "numpy": numpy.__version__, "platform": platform.platform(), "machine": platform.machine(),
        "processor": platform.processor() or "unknown", "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(), "cuda": torch.cuda.is_available(),
        "mkldnn": torch.backends.mkldnn.is_available(), "mkl": torch.backends.mkl.is_available(),
        "fused_loops": "C++" if build.ops() is not None else "PyTorch (no C++ build; see engines/fused/build.py)",
    }


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", metavar="PATH", help="also write the report as JSON")


def run(args) -> int:
    env = environment()
    for k, v in env.items():
        print(f"{k:>14}: {v}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(env, f, indent=2)
    return 0
