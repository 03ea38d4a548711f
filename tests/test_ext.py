"""The C++ build's locking: a killed build never blocks the next one, concurrent first
uses wait for one builder, and a failed build falls back to the PyTorch loops. And the one
C++ op that is not a time loop, the input layer norm, against its autograd twin."""
import fcntl
import subprocess
import sys
import time

import pytest
import torch
import torch.nn.functional as F

from lstmkit.cells.common import LN_EPS
from lstmkit.engines import _ext
from lstmkit.engines.fused import _InputLN


@pytest.fixture
def fake_load(monkeypatch, tmp_path):
    """cpp_extension.load replaced by a recorder; the build folder under tmp_path."""
    from torch.utils import cpp_extension
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    monkeypatch.delenv("LSTMKIT_NO_EXT", raising=False)
    calls = []

    def load(**kw):
        calls.append((kw, (_ext.build_dir() / "lock").exists()))
    monkeypatch.setattr(cpp_extension, "load", load)
    return calls


def test_stale_torch_lock_is_cleared(fake_load):
    """torch's baton file left by a build killed half-way would make every later load wait
    forever; under our flock it is known stale and removed before loading."""
    where = _ext.build_dir()
    where.mkdir(parents=True)
    (where / "lock").touch()
    assert _ext._build.__wrapped__() is not None
    (kw, lock_seen), = fake_load
    assert kw["build_directory"] == str(where) and not lock_seen


def test_failed_build_warns_and_falls_back(monkeypatch, tmp_path):
    from torch.utils import cpp_extension
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    monkeypatch.delenv("LSTMKIT_NO_EXT", raising=False)

    def load(**kw):
        raise RuntimeError("Error building extension 'lstmkit_fused'\nmore")
    monkeypatch.setattr(cpp_extension, "load", load)
    with pytest.warns(UserWarning, match="PyTorch loops .*Error building extension 'lstmkit_fused'$"):
        assert _ext._build.__wrapped__() is None


def test_no_ext_env_skips_the_build(fake_load, monkeypatch):
    monkeypatch.setenv("LSTMKIT_NO_EXT", "1")
    assert _ext._build.__wrapped__() is None and fake_load == []


def test_waiter_times_out_while_another_process_builds(tmp_path):
    path = tmp_path / "build.flock"
    with open(path, "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        t0 = time.monotonic()
        with pytest.raises(TimeoutError, match="held by another process for over 0 s"):
            with _ext.exclusive(path, 0.3):
                pass
        assert time.monotonic() - t0 >= 0.3


def test_flock_of_a_killed_builder_is_released(tmp_path):
    path = tmp_path / "build.flock"
    holder = subprocess.Popen([sys.executable, "-c",
                               "import fcntl, sys, time\n"
                               f"f = open({str(path)!r}, 'a'); fcntl.flock(f, fcntl.LOCK_EX)\n"
                               "print('held', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(TimeoutError):
        with _ext.exclusive(path, 0.2):
            pass
    holder.kill()
    holder.wait()
    with _ext.exclusive(path, 5.0):                # the kernel dropped the dead holder's lock
        pass


def test_build_dir_follows_the_sources(monkeypatch, tmp_path):
    """An edited source gets a fresh folder, never an old object file."""
    before = _ext.build_dir()
    csrc = tmp_path / "csrc"
    csrc.mkdir()
    for name in _ext.SOURCES + _ext.HEADERS:
        (csrc / name).write_bytes((_ext.CSRC / name).read_bytes())
    monkeypatch.setattr(_ext, "CSRC", csrc)
    assert _ext.build_dir() == before
    (csrc / "common.h").write_text((csrc / "common.h").read_text() + "\n// edited\n")
    assert _ext.build_dir() != before


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
@pytest.mark.parametrize("n_gates,with_bias,needs", [(4, True, (1, 1, 1)), (3, False, (1, 1, 0)),
                                                     (4, True, (0, 1, 1)), (1, True, (1, 0, 0))])
def test_input_layer_norm_equals_its_autograd_twin(dtype, tol, n_gates, with_bias, needs):
    """csrc/input_ln.cpp against the autograd lines it replaces in fused.input_terms, on
    enough rows that both threads take a share; each gradient only when asked for."""
    ops = _ext.ops()
    if ops is None:
        pytest.skip("the C++ loops did not build here (test_fused.py::test_cpp_loops_build says why)")
    torch.manual_seed(0)
    N, H = 301, 40
    y = torch.randn(N, n_gates * H, dtype=dtype) * 3 + 1
    gamma = 1 + 0.3 * torch.randn(n_gates * H, dtype=dtype)
    b = torch.randn(n_gates * H, dtype=dtype) if with_bias else None
    du = torch.randn(N, n_gates * H, dtype=dtype)

    def leaves():
        return [t.clone().requires_grad_(bool(n)) if t is not None else None
                for t, n in zip((y, gamma, b), needs)]
    y1, g1, b1 = leaves()
    u1 = _InputLN.apply(y1, g1, b1, n_gates, ops)
    y2, g2, b2 = leaves()
    u2 = F.layer_norm(y2.view(N, n_gates, H), (H,), eps=LN_EPS).view(N, -1) * g2
    u2 = u2 + b2 if b2 is not None else u2
    torch.testing.assert_close(u1, u2, atol=tol, rtol=tol)
    wrt1 = [t for t in (y1, g1, b1) if t is not None and t.requires_grad]
    wrt2 = [t for t in (y2, g2, b2) if t is not None and t.requires_grad]
    for a, e in zip(torch.autograd.grad(u1, wrt1, du), torch.autograd.grad(u2, wrt2, du)):
        torch.testing.assert_close(a, e, atol=tol * 10, rtol=tol)
