"""The C++ time loops (the ``*.cpp`` files and ``common.h`` beside this module), compiled
once per machine on first use.

``ops()`` is ``torch.ops.lstmkit_fused`` or None. None when ``LSTMKIT_NO_EXT=1`` is set, when
the build fails (no C++ compiler, no ninja), and for tensors off the CPU (the loops read host
memory). Then every family runs its PyTorch twin (``lstm_torch``, ``gru_torch``,
``rnn_torch``): the same results, more slowly on the CPU, and the only path for CUDA tensors.

The build is cached under ``$TORCH_EXTENSIONS_DIR`` (default ``~/.cache/torch_extensions``)
in a folder named by a hash of everything that goes into the build command (``build_inputs``):
the sources, the flags, the include and library paths, the Python and torch installs and
versions, the compiler, and the CPU (``-march=native``). So a changed source never meets an
old object file, and two checkouts or virtualenvs never take turns rebuilding one folder
with their own paths.

Concurrent first uses (pytest-xdist workers, two training runs) build once: the builder
holds an ``flock`` on ``build.flock``, which the kernel releases when the process dies, so
a build killed half-way never blocks the next one. torch's own baton (a ``lock`` file that
a killed build leaves behind, after which every later load waits forever) is cleared
under that flock before each load. A waiter gives up after ``BUILD_WAIT_S`` and uses the
PyTorch loops.
"""
from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import os
import platform
import shutil
import sys
import sysconfig
import time
import warnings
from pathlib import Path

import torch

CSRC = Path(__file__).parent                       # the C++ sources sit beside this module
SOURCES = ("lstm.cpp", "gru.cpp", "rnn.cpp", "input_ln.cpp")
# Each library: its sources. The sLSTM's loops build apart, so that a failure there leaves the
# other families' loops in place (and the reverse).
LIBRARIES = {"lstmkit_fused": SOURCES, "lstmkit_slstm": ("slstm.cpp",), "lstmkit_int8": ("int8.cpp",)}
HEADERS = ("common.h",)
FLAGS = ["-O3", "-march=native", "-fopenmp"]     # OpenMP: torch's own libgomp, already loaded
LDFLAGS = ["-fopenmp"]
BUILD_WAIT_S = 600.0


def ops(device: torch.device | None = None):
    """torch.ops.lstmkit_fused after building the C++ loops, or None (see the module
    docstring); None too for tensors off the CPU: the loops read host memory."""
    if device is not None and torch.device(device).type != "cpu":
        return None
    return load("lstmkit_fused", "the fused engine's")


def build_inputs() -> dict[str, str]:
    """What goes into the build command, or decides what it produces, besides the sources."""
    from torch.utils import cpp_extension
    cxx = cpp_extension.get_cxx_compiler()
    found = shutil.which(cxx)
    return {
        "flags": " ".join(FLAGS + ["|"] + LDFLAGS),
        "include_paths": os.pathsep.join([str(CSRC), *cpp_extension.include_paths(),
                                          sysconfig.get_path("include", scheme="posix_prefix") or ""]),
        "library_paths": os.pathsep.join(cpp_extension.library_paths()),
        "python": f"{sys.executable} {sys.prefix} {sys.version}",
        "torch": f"{Path(torch.__file__).parent} {torch.__version__}",
        "compiler": f"{cxx} {os.path.realpath(found) if found else '(not found)'}",
        "cpu": f"{platform.machine()} {_cpu_flags()}",
    }


def _cpu_flags() -> str:
    """The instruction sets that -march=native compiles for."""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith(("flags", "Features")):
                return line.split(":", 1)[-1].strip()
    return platform.processor()


def build_dir(library: str = "lstmkit_fused") -> Path:
    """This machine's build folder of ``library`` for its current sources and ``build_inputs()``."""
    key = hashlib.sha256()
    for name in LIBRARIES[library] + HEADERS:
        key.update(name.encode() + b"\0" + (CSRC / name).read_bytes())
    for name, value in sorted(build_inputs().items()):
        key.update(f"{name}={value}\0".encode())
    root = os.environ.get("TORCH_EXTENSIONS_DIR") or Path.home() / ".cache" / "torch_extensions"
    return Path(root) / f"{library}-{key.hexdigest()[:16]}"


@contextlib.contextmanager
def exclusive(path: Path, wait_s: float):
    """Hold an exclusive flock on ``path`` (created if missing) for the block; raise
    TimeoutError after ``wait_s`` seconds of another holder."""
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
def load(library: str, whose: str):
    """torch.ops.<library> after building it (once per machine and source), or None (with a
    warning naming ``whose`` loops) when the build fails or LSTMKIT_NO_EXT=1."""
    if os.environ.get("LSTMKIT_NO_EXT", "") not in ("", "0"):
        return None
    from torch.utils import cpp_extension
    if shutil.which("ninja") is None:     # the ninja wheel puts it beside this Python
        os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    try:
        where = build_dir(library)
        where.mkdir(parents=True, exist_ok=True)
        with exclusive(where / "build.flock", BUILD_WAIT_S):
            (where / "lock").unlink(missing_ok=True)      # torch's baton: stale if we hold the flock
            cpp_extension.load(name=library, sources=[str(CSRC / s) for s in LIBRARIES[library]],
                               extra_cflags=FLAGS, extra_ldflags=LDFLAGS,
                               extra_include_paths=[str(CSRC)], build_directory=str(where),
                               is_python_module=False, verbose=False)
    except Exception as e:  # noqa: BLE001  any build failure means: use the PyTorch loops
        warnings.warn(f"lstmkit: {whose} C++ loops could not be built, so it runs its "
                      f"PyTorch loops (same results, slower): {str(e).splitlines()[0]}", stacklevel=3)
        return None
    return getattr(torch.ops, library)
