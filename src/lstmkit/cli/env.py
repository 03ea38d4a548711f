"""Print versions and the machine, for bug reports."""
from __future__ import annotations

import argparse
import json
import os
import platform


def environment() -> dict:
    """Versions, the CPU (model, vector extensions: what the speed figures depend on), the load."""
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
        **_cpu(), "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def _cpu() -> dict:
    """cpu_model and vector_flags (the avx*, amx*, fma extensions) from /proc/cpuinfo, where it exists."""
    model, flags = platform.processor() or "unknown", []
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
        model = next(line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name"))
        flags = sorted({w for w in info.split() if w.startswith(("avx", "amx", "fma"))})
    except (OSError, StopIteration):
        pass
    return {"cpu_model": model, "vector_flags": flags}


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
