"""The C++ build's locking: a killed build never blocks the next one, concurrent first
uses wait for one builder, and a failed build falls back to the PyTorch loops."""
import fcntl
import subprocess
import sys
import time

import pytest

from lstmkit.engines import _ext


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
