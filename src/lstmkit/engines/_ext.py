"""The C++ time loops (csrc/), compiled once per machine on first use.

``ops()`` is ``torch.ops.lstmkit_fused`` or None: None when ``LSTMKIT_NO_EXT=1`` is set or
the build fails (no C++ compiler, no ninja), and then the fused engine runs its PyTorch
loops (_fused_lstm_py.py, _fused_gru.py), which compute the same results, more slowly. The
build takes about 15 s and is cached by torch under ``$TORCH_EXTENSIONS_DIR`` (default
``~/.cache/torch_extensions``), keyed by the sources and flags.
"""
from __future__ import annotations

import functools
import os
import shutil
import sys
import warnings
from pathlib import Path

import torch
from torch import Tensor

CSRC = Path(__file__).with_name("csrc")
SOURCES = ("lstm.cpp", "gru.cpp")
FLAGS = ["-O3", "-march=native", "-fopenmp"]     # OpenMP: torch's own libgomp, already loaded


def ops(device: torch.device | None = None):
    """torch.ops.lstmkit_fused after building csrc/, or None (see the module docstring);
    None too for tensors off the CPU: the loops read host memory."""
    if device is not None and torch.device(device).type != "cpu":
        return None
    return _build()


@functools.cache
def _build():
    if os.environ.get("LSTMKIT_NO_EXT", "") not in ("", "0"):
        return None
    from torch.utils import cpp_extension
    if shutil.which("ninja") is None:     # the ninja wheel puts it beside this Python
        os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    try:
        cpp_extension.load(name="lstmkit_fused", sources=[str(CSRC / s) for s in SOURCES],
                           extra_cflags=FLAGS, extra_ldflags=["-fopenmp"],
                           extra_include_paths=[str(CSRC)],
                           is_python_module=False, verbose=False)
    except Exception as e:  # noqa: BLE001  any build failure means: use the PyTorch loops
        warnings.warn(f"lstmkit: the fused engine's C++ loops could not be built, so it runs its "
                      f"PyTorch loops (same results, slower): {str(e).splitlines()[0]}", stacklevel=2)
        return None
    return torch.ops.lstmkit_fused


def packed(w: Tensor | None, batch: int) -> Tensor | None:
    """w (N, K) in MKL's packed layout for x wᵀ with x of ``batch`` rows, or None where
    that GEMM is not available (not float32, or a torch built without MKL): the C++ loops
    then use at::mm. At the per-step shapes (32 × 256 by 256 × 1024) the packed GEMM takes
    about 50 µs against 90 µs for addmm on this project's machine."""
    if w is None or w.dtype != torch.float32 or w.device.type != "cpu" or not torch.backends.mkl.is_available():
        return None
    try:
        return torch.ops.mkl._mkl_reorder_linear_weight(w.detach().contiguous(), batch)
    except (AttributeError, RuntimeError):
        return None
