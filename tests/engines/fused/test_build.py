"""The C++ build's locking: a killed build never blocks the next one, concurrent first
uses wait for one builder, and a failed build falls back to the PyTorch loops. Its folder:
one per sources and build command. The built ops against their PyTorch twins, and the one
C++ op that is not a time loop, the input layer norm, against its autograd twin."""
import fcntl
import subprocess
import sys
import time

import pytest
import torch
import torch.nn.functional as F

from lstmkit.cells.common import LN_EPS
from lstmkit.engines.fused import build, gru_torch, lstm_torch, rnn_torch
from lstmkit.engines.fused.common import input_ln


@pytest.fixture
def fake_load(monkeypatch, tmp_path):
    """cpp_extension.load replaced by a recorder; the build folder under tmp_path."""
    from torch.utils import cpp_extension
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    monkeypatch.delenv("LSTMKIT_NO_EXT", raising=False)
    calls = []

    def load(**kw):
        calls.append((kw, (build.build_dir() / "lock").exists()))
    monkeypatch.setattr(cpp_extension, "load", load)
    return calls


def test_stale_torch_lock_is_cleared(fake_load):
    """torch's baton file left by a build killed half-way would make every later load wait
    forever; under our flock it is known stale and removed before loading."""
    where = build.build_dir()
    where.mkdir(parents=True)
    (where / "lock").touch()
    assert build.load.__wrapped__("lstmkit_fused", "the fused engine's") is torch.ops.lstmkit_fused
    (kw, lock_seen), = fake_load
    assert kw["build_directory"] == str(where) and not lock_seen
    assert sorted(kw["sources"]) == sorted(str(build.CSRC / s) for s in build.SOURCES)
    # every C++ source beside the Python modules goes into one library
    assert sorted(s for srcs in build.LIBRARIES.values() for s in srcs) == \
        sorted(p.name for p in build.CSRC.glob("*.cpp"))


def test_failed_build_warns_and_falls_back(monkeypatch, tmp_path):
    from torch.utils import cpp_extension
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    monkeypatch.delenv("LSTMKIT_NO_EXT", raising=False)

    def load(**kw):
        raise RuntimeError("Error building extension 'lstmkit_fused'\nmore")
    monkeypatch.setattr(cpp_extension, "load", load)
    with pytest.warns(UserWarning, match="PyTorch loops .*Error building extension 'lstmkit_fused'$"):
        assert build.load.__wrapped__("lstmkit_fused", "the fused engine's") is None


def test_no_ext_env_skips_the_build(fake_load, monkeypatch):
    monkeypatch.setenv("LSTMKIT_NO_EXT", "1")
    assert build.load.__wrapped__("lstmkit_fused", "the fused engine's") is None and fake_load == []


def test_waiter_times_out_while_another_process_builds(tmp_path):
    path = tmp_path / "build.flock"
    with open(path, "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        t0 = time.monotonic()
        with pytest.raises(TimeoutError, match="held by another process for over 0 s"):
            with build.exclusive(path, 0.3):
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
        with build.exclusive(path, 0.2):
            pass
    holder.kill()
    holder.wait()
    with build.exclusive(path, 5.0):                # the kernel dropped the dead holder's lock
        pass


def test_build_dir_follows_the_sources(monkeypatch, tmp_path):
    """An edited source gets a fresh folder, never an old object file."""
    csrc = tmp_path / "csrc"
    csrc.mkdir()
    for name in build.SOURCES + build.HEADERS:
        (csrc / name).write_bytes((build.CSRC / name).read_bytes())
    monkeypatch.setattr(build, "CSRC", csrc)
    before = build.build_dir()
    assert build.build_dir() == before
    (csrc / "common.h").write_text((csrc / "common.h").read_text() + "\n// edited\n")
    assert build.build_dir() != before


def test_build_dir_follows_the_build_command(monkeypatch, tmp_path):
    """Another checkout, virtualenv, torch install, compiler or flag (each enters the build
    command) gets its own folder, so that two of them never take turns rebuilding one."""
    from torch.utils import cpp_extension
    before = build.build_dir()
    copy = tmp_path / "checkout"
    copy.mkdir()
    for name in build.SOURCES + build.HEADERS:
        (copy / name).write_bytes((build.CSRC / name).read_bytes())
    changes = {
        "checkout": lambda m: m.setattr(build, "CSRC", copy),
        "python": lambda m: m.setattr(sys, "executable", "/elsewhere/venv/bin/python"),
        "prefix": lambda m: m.setattr(sys, "prefix", "/elsewhere/venv"),
        "torch install": lambda m: m.setattr(torch, "__file__", "/elsewhere/site-packages/torch/__init__.py"),
        "include paths": lambda m: m.setattr(cpp_extension, "include_paths", lambda *a, **k: ["/elsewhere/include"]),
        "library paths": lambda m: m.setattr(cpp_extension, "library_paths", lambda *a, **k: ["/elsewhere/lib"]),
        "compiler": lambda m: m.setenv("CXX", "clang++"),
        "flags": lambda m: m.setattr(build, "FLAGS", build.FLAGS + ["-g"]),
    }
    for what, change in changes.items():
        with monkeypatch.context() as m:
            change(m)
            assert build.build_dir() != before, what
        assert build.build_dir() == before, what


@pytest.mark.parametrize("reverse", [False, True])
def test_built_ops_match_their_torch_twins(reverse):
    """The built library holds every loop, and each forward loop gives the numbers of its
    PyTorch twin (the backward loops: tests/test_fused.py, through the engine)."""
    ops = build.ops()
    if ops is None:
        pytest.skip("the C++ loops did not build here (test_fused.py::test_cpp_loops_build says why)")
    for name in ("lstm_forward", "lstm_backward", "gru_forward", "gru_backward", "rnn_forward",
                 "rnn_backward", "input_ln_forward", "input_ln_backward"):
        assert hasattr(ops, name), name
    torch.manual_seed(0)
    T, B, H = 5, 3, 4
    mask = (torch.arange(T)[:, None] < torch.tensor([5, 2, 4])[None]).unsqueeze(-1)

    def r(*shape):
        return torch.randn(*shape, dtype=torch.float64)

    cfg = lstm_torch.LSTMConfig("ifgo", "ifo", False, False, False, reverse)
    x = lstm_torch.LSTMInputs(u=r(T, B, 4 * H), bias=r(4 * H), xd=None, c_low=None, h0=r(B, H), c0=r(B, H),
                              w_hh=r(4 * H, H), g_hh=None, w_ci=r(H), w_cf=r(H), w_co=r(H), g_c=None,
                              b_c=None, w_hr=None, w_cd=None, w_ld=None, mask=mask, keep_c=None,
                              keep_h=None, drop=None)
    for x in (x, x._replace(bias=None, g_hh=r(4 * H))):      # with layer norm the biases are in u
        want = lstm_torch.forward(cfg, x)
        got = lstm_torch.LSTMSaved(*ops.lstm_forward(
            **x._replace(u=x.u.clone())._asdict(), pk_hh=None, pk_hr=None, gates=cfg.gates, coupled=False,
            niaf=False, noaf=False, reverse=reverse, keep=True, eps=LN_EPS))
        for k in ("A", "Hs", "Cs", "Yr", "Mu", "Rs"):
            a, b = getattr(got, k), getattr(want, k)
            if b is None:
                assert a.numel() == 0, k
            else:
                torch.testing.assert_close(a, b, msg=lambda s, k=k: f"lstm {k}: {s}")

    g = gru_torch.GRUInputs(u=r(T, B, 3 * H), h0=r(B, H), w_hh=r(3 * H, H), b_hh=r(3 * H), g_hh=None,
                            mask=mask, keep_h=None, drop=None)
    for reset_after in (True, False):
        want = gru_torch.forward(reset_after, reverse, g)
        got = gru_torch.GRUSaved(*ops.gru_forward(**g._asdict(), pk_a=None, pk_n=None, reset_after=reset_after,
                                                  reverse=reverse, keep=True, eps=LN_EPS))
        for k in ("A", "Hs", "Vn"):
            torch.testing.assert_close(getattr(got, k), getattr(want, k), msg=lambda s, k=k: f"gru {k}: {s}")

    e = rnn_torch.RNNInputs(u=r(T, B, H), h0=r(B, H), w_hh=r(H, H), mask=mask)
    for relu in (False, True):
        want = rnn_torch.forward(relu, reverse, e)
        got = rnn_torch.RNNSaved(*ops.rnn_forward(**e._asdict(), pk=None, relu=relu, reverse=reverse))
        for k in ("Hs", "An"):
            torch.testing.assert_close(getattr(got, k), getattr(want, k), msg=lambda s, k=k: f"rnn {k}: {s}")


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
@pytest.mark.parametrize("n_gates,with_bias,needs", [(4, True, (1, 1, 1)), (3, False, (1, 1, 0)),
                                                     (4, True, (0, 1, 1)), (1, True, (1, 0, 0))])
def test_input_layer_norm_equals_its_autograd_twin(dtype, tol, n_gates, with_bias, needs):
    """fused/input_ln.cpp against the autograd lines it replaces in common.input_terms, on
    enough rows that both threads take a share; each gradient only when asked for."""
    ops = build.ops()
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
    u1 = input_ln(y1, g1, b1, n_gates, ops)
    y2, g2, b2 = leaves()
    u2 = F.layer_norm(y2.view(N, n_gates, H), (H,), eps=LN_EPS).view(N, -1) * g2
    u2 = u2 + b2 if b2 is not None else u2
    torch.testing.assert_close(u1, u2, atol=tol, rtol=tol)
    wrt1 = [t for t in (y1, g1, b1) if t is not None and t.requires_grad]
    wrt2 = [t for t in (y2, g2, b2) if t is not None and t.requires_grad]
    for a, e in zip(torch.autograd.grad(u1, wrt1, du), torch.autograd.grad(u2, wrt2, du)):
        torch.testing.assert_close(a, e, atol=tol * 10, rtol=tol)
