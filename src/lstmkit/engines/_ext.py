"""The C++ time loops (csrc/), compiled once per machine on first use.

``ops()`` is ``torch.ops.lstmkit_fused`` or None: None when ``LSTMKIT_NO_EXT=1`` is set or
the build fails (no C++ compiler, no ninja), and then the fused engine runs its PyTorch
loops (_fused_lstm_py.py, _fused_gru.py), which compute the same results, more slowly. The
build takes about 15 s and is cached under ``$TORCH_EXTENSIONS_DIR`` (default
``~/.cache/torch_extensions``) in a folder named by a hash of the sources, the flags and
the torch and Python versions, so a changed source never meets an old object file.

Concurrent first uses (pytest-xdist workers, two training runs) build once: the builder
holds an ``flock`` on ``build.flock``, which the kernel releases when the process dies, so
a build killed half-way never blocks the next one. torch's own baton (a ``lock`` file that
a killed build leaves behind, after which every later load waits forever) is cleared
under that flock before each load. A waiter gives up after ``BUILD_WAIT_S`` and uses the
PyTorch loops.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import platform
import shutil
import sys
import time
import warnings
from pathlib import Path

import torch
from torch import Tensor

CSRC = Path(__file__).with_name("csrc")
SOURCES = ("lstm.cpp", "gru.cpp", "input_ln.cpp")
HEADERS = ("common.h",)
FLAGS = ["-O3", "-march=native", "-fopenmp"]     # OpenMP: torch's own libgomp, already loaded
BUILD_WAIT_S = 600.0


def ops(device: torch.device | None = None):
    """torch.ops.lstmkit_fused after building csrc/, or None (see the module docstring);
    None too for tensors off the CPU: the loops read host memory."""
    if device is not None and torch.device(device).type != "cpu":
        return None
    return _build()


def build_dir() -> Path:
    """This machine's build folder for the current sources, flags and versions."""
    key = hashlib.sha256()
    for name in SOURCES + HEADERS:
        key.update(name.encode() + b"\0" + (CSRC / name).read_bytes())
    key.update(" ".join([*FLAGS, torch.__version__, sys.version, platform.machine()]).encode())
    root = os.environ.get("TORCH_EXTENSIONS_DIR") or Path.home() / ".cache" / "torch_extensions"
    return Path(root) / f"lstmkit_fused-{key.hexdigest()[:16]}"


@contextlib.contextmanager
def exclusive(path: Path, wait_s: float):
    """Hold an exclusive flock on ``path`` (created if missing) for the block; raise
    TimeoutError after ``wait_s`` seconds of another holder."""
    import fcntl
    with open(path, "a") as f:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{path} held by another process for over {wait_s:.0f} s") from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@functools.cache
def _build():
    if os.environ.get("LSTMKIT_NO_EXT", "") not in ("", "0"):
        return None
    from torch.utils import cpp_extension
    if shutil.which("ninja") is None:     # the ninja wheel puts it beside this Python
        os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    try:
        where = build_dir()
        where.mkdir(parents=True, exist_ok=True)
        with exclusive(where / "build.flock", BUILD_WAIT_S):
            (where / "lock").unlink(missing_ok=True)      # torch's baton: stale if we hold the flock
            cpp_extension.load(name="lstmkit_fused", sources=[str(CSRC / s) for s in SOURCES],
                               extra_cflags=FLAGS, extra_ldflags=["-fopenmp"],
                               extra_include_paths=[str(CSRC)], build_directory=str(where),
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
