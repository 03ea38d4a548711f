"""Long sequences (DESIGN.md §7): the parallel-in-time members against the LSTMs and their floor.

One training step (forward + backward of ``output.sum()``) at B 8, D = H = 256 and
T ∈ {256, 1k, 4k, 16k, 64k}, every implementation in one process, interleaved (one run of
each in turn), median per implementation; ratios to the floor and to ``nn.LSTM``:

    floor                  nn.Linear(D, 3H) forward + backward: the cells' own input
                           projection, which no implementation of them can beat
    nn.LSTM, lstmkit LSTM  the nonlinear recurrence (torch's oneDNN; lstmkit's fused engine)
    <Cell> fused           MinGRU / MinLSTM / QRNN mode "fused" (the chunked recurrence)
    <Cell> parallel        mode "parallel" (the log-space scan)
    <Cell> sequential      mode "sequential" (the step loop, the oracle)

The slow ones stop at a length (``LONG_IMPLS``: the scan and the step loop cost 3-11× the floor
at 4k, so they are timed up to 4k only). Validated first: every min-RNN mode against its step
loop (outputs and input gradient, T 256). Peak memory: the growth of the peak resident set
over the current one across the first run of each implementation, in this process
(``/proc/self/clear_refs``, as ``benchmark.peak_memory_mb`` does in a subprocess); None where
/proc is missing.
"""
from __future__ import annotations

import statistics
import time

import torch
from torch import nn

from .layers import LSTM
from .parallel import QRNN, MinGRU, MinLSTM

_CLASSES = {"MinGRU": MinGRU, "MinLSTM": MinLSTM, "QRNN": QRNN}
LONG_T = (256, 1024, 4096, 16384, 65536)
_SCAN_MAX, _LOOP_MAX = 4096, 4096
# name -> (class name in lstmkit or torch, mode, longest T timed)
LONG_IMPLS = {
    "floor": ("floor", None, None),
    "nn.LSTM": ("nn.LSTM", None, None),
    "lstmkit LSTM": ("LSTM", None, None),
    **{f"{c} fused": (c, "fused", None) for c in ("MinGRU", "MinLSTM", "QRNN")},
    **{f"{c} parallel": (c, "parallel", _SCAN_MAX) for c in ("MinGRU", "MinLSTM", "QRNN")},
    **{f"{c} sequential": (c, "sequential", _LOOP_MAX) for c in ("MinGRU", "MinLSTM", "QRNN")},
}


def build(name: str, H: int, chunk_size: int | None = None) -> nn.Module:
    cls, mode, _ = LONG_IMPLS[name]
    if cls == "floor":
        return nn.Linear(H, 3 * H)
    if cls == "nn.LSTM":
        return nn.LSTM(H, H)
    if mode is None:
        return LSTM(H, H)
    return _CLASSES[cls](H, H, mode=mode, **({"chunk_size": chunk_size} if chunk_size else {}))


def validate(H: int, B: int, T: int = 256) -> dict[str, float]:
    """Max |mode − sequential| of outputs and input gradient over their scale, every min-RNN mode;
    AssertionError past 1e-4."""
    errs = {}
    x = torch.randn(T, B, H)
    for name, (cls, mode, _) in LONG_IMPLS.items():
        if mode not in ("fused", "parallel"):
            continue
        torch.manual_seed(0)
        m = build(name, H)
        res = []
        for md in (mode, "sequential"):
            m.mode = md
            xi = x.clone().requires_grad_()
            y = m(xi)[0]
            y.sum().backward()
            res.append((y.detach(), xi.grad))
        errs[name] = max(((a - b).abs().max() / b.abs().max().clamp(min=1)).item() for a, b in zip(*res))
        if errs[name] > 1e-4:
            raise AssertionError(f"bench: {name} and its step loop disagree by {errs[name]:.2e}")
    return errs


def _rss_kb(key: str) -> int:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith(key + ":"))


def _step(m: nn.Module, x: torch.Tensor, peak: bool):
    """(seconds, peak MB or None) of one training step."""
    m.zero_grad(set_to_none=True)
    x.grad = None
    before = None
    if peak:
        try:
            before = _rss_kb("VmRSS")
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")
        except OSError:
            before = None
    t0 = time.perf_counter()
    y = m(x)
    (y[0] if isinstance(y, tuple) else y).sum().backward()
    s = time.perf_counter() - t0
    return s, ((_rss_kb("VmHWM") - before) / 1024.0 if before is not None else None)


def run(Ts=LONG_T, B: int = 8, H: int = 256, repeats=None, impls=None, progress=print,
        chunk_size: int | None = None) -> list[dict]:
    """Rows {T, impl, ms, peak_mb, to_floor, to_nn_lstm, runs}; ``repeats``: T -> runs (default
    3 up to 1k, 2 up to 16k, 1 beyond: the first run, which also measures the memory)."""
    impls = list(impls or LONG_IMPLS)
    torch.manual_seed(0)
    mods = {name: build(name, H, chunk_size) for name in impls}
    for m in mods.values():                               # one-time set-up (C++ build, oneDNN) outside the timing
        _step(m, torch.randn(4, B, H, requires_grad=True), peak=False)
    rows = []
    for T in Ts:
        names = [n for n in impls if LONG_IMPLS[n][2] is None or T <= LONG_IMPLS[n][2]]
        runs = (repeats or {}).get(T, 3 if T <= 1024 else 2 if T <= 16384 else 1)
        x = torch.randn(T, B, H, requires_grad=True)
        times, peaks = {n: [] for n in names}, {}
        for r in range(runs):
            for n in names:
                s, pk = _step(mods[n], x, peak=(r == 0))
                times[n].append(s)
                if r == 0:
                    peaks[n] = pk
        med = {n: statistics.median(t) for n, t in times.items()}
        for n in names:
            rows.append({"T": T, "impl": n, "ms": 1e3 * med[n], "peak_mb": peaks[n], "runs": runs,
                         "to_floor": med[n] / med["floor"] if "floor" in med else None,
                         "to_nn_lstm": med[n] / med["nn.LSTM"] if "nn.LSTM" in med else None})
        if progress:
            progress(f"T {T}: " + ", ".join(f"{n} {1e3 * med[n]:.0f} ms" for n in names))
    return rows


def table(rows: list[dict]) -> str:
    lines = [f"{'T':>6} {'impl':<20}{'f+b ms':>10}{'/ floor':>9}{'/ nn.LSTM':>10}{'peak MB':>9}"]
    for r in rows:
        f = lambda v, w, p: f"{v:>{w}.{p}f}" if v is not None else " " * w   # noqa: E731
        lines.append(f"{r['T']:>6} {r['impl']:<20}{r['ms']:>10.0f}{f(r['to_floor'], 9, 2)}"
                     f"{f(r['to_nn_lstm'], 10, 2)}{f(r['peak_mb'], 9, 0)}")
    return "\n".join(lines)
