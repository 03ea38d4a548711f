"""Speed and memory of every variant against torch.nn, measured in one process.

For each variant and size (DESIGN.md §7) the implementations are built with the same
weights, checked to agree (outputs and input gradient), then timed interleaved (one
repeat of each in turn, so that a noisy shared machine slows all of them alike):

    fused      lstmkit, backend="fused"
    reference  lstmkit, backend="reference" (the plain autograd loop over the cell step)
    loop       a plain autograd loop over torch.nn.LSTMCell / GRUCell / RNNCell (where torch has the cell)
    torch      torch.nn.LSTM / GRU / RNN (where torch has the variant; LSTM variants are compared
               with torch's vanilla LSTM of the same size, as the targets are stated)
    fused+compile, torch+compile   (--compile) the same under torch.compile
    fused+bf16, torch+bf16         (--bf16) the module and its input in bfloat16
               (the extras are validated against their float32 eager base: ``validate_extra``)

Forward is timed under ``torch.no_grad()``; forward+backward is one training step on
``output.sum()``; a streaming step (``step_us``, fused and torch) is one call with T = 1 and
the state carried from the call before, in eval mode under ``torch.inference_mode()``
(``step_times``; benchmarks/streaming.py has the full grid). Peak memory of a training step: in a fresh subprocess, after a tiny
warm-up step (so library set-up is excluded), the peak resident set size is reset
(``/proc/self/clear_refs``) and the growth of VmHWM over VmRSS across one step is read
from ``/proc/self/status``; where /proc is missing, the growth of ``ru_maxrss``.
"""
from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field

import torch
from torch import nn

from .variants import VARIANTS, variant as get_variant

# T, B, D, H: DESIGN.md §7, and XS for a smoke run (seconds)
SIZES = {"XS": (10, 4, 8, 16), "S": (100, 32, 128, 256), "M": (100, 64, 256, 512), "L": (50, 128, 512, 1024)}

IMPLS = ("fused", "reference", "loop", "torch")
# opt-in columns: "<fused|torch>+compile" (torch.compile of the module), "<fused|torch>+bf16"
# (the module and its input in bfloat16; lstmkit computes in float32 inside, docs/streaming.md)
EXTRAS = {"compile": ("fused+compile", "torch+compile"), "bf16": ("fused+bf16", "torch+bf16")}
EXTRA_TOL = {"compile": 1e-4, "bf16": 5e-2}       # max |Δ| to the float32 module, relative to its max


@dataclass
class BenchConfig:
    """sizes / variants: keys of SIZES / VARIANTS.  repeats: timed runs (median).
    reference_sizes: sizes at which the (slow) reference engine is timed.
    memory: also measure the peak memory of a training step (subprocesses).
    streaming: also time a streaming step (T = 1, state carried) of fused and torch."""

    sizes: tuple = ("S",)
    variants: tuple = tuple(VARIANTS)
    repeats: int = 5
    threads: int = 2
    reference_sizes: tuple = ("S", "M")
    memory: bool = True
    streaming: bool = True
    extras: tuple = ()                  # keys of EXTRAS


@dataclass
class Row:
    variant: str
    size: str
    impl: str
    fwd_ms: float
    fb_ms: float
    fwd_ratio: float | None = None     # to torch (same cell, or vanilla nn.LSTM of the size)
    fb_ratio: float | None = None
    peak_mb: float | None = None
    step_us: float | None = None       # streaming: one T = 1 call, state carried (fused, torch)
    step_ratio: float | None = None
    extra: dict = field(default_factory=dict)


def _torch_twin(variant: str) -> type[nn.Module]:
    """The torch baseline: the same cell where torch has it, else vanilla nn.LSTM of the size
    (as the targets are stated; the depth gate against torch's 2-layer LSTM)."""
    return VARIANTS[variant].torch or nn.LSTM


def build(variant: str, size: str, impl: str, seed: int = 0):
    """(callable x -> output, module) of one implementation; same weights for every impl.
    ``impl`` with an EXTRAS suffix: the base implementation compiled, or in bfloat16 (the
    callable takes float32 x and returns float32, the casts being part of what is timed)."""
    base, _, extra = impl.partition("+")
    if extra:
        f, mod = build(variant, size, base, seed)
        if extra == "compile":
            return torch.compile(f), mod
        mod.to(torch.bfloat16)
        return (lambda x: f(x.to(torch.bfloat16)).float()), mod
    T, B, D, H = SIZES[size]
    entry = get_variant(variant)
    kw = entry.kwargs(H)
    torch.manual_seed(seed)
    ours = entry.build(D, H)
    if impl in ("fused", "reference"):
        ours.backend = impl
        return (lambda x: ours(x)[0]), ours
    tcls = _torch_twin(variant)
    tkw = {k: v for k, v in kw.items() if k in ("proj_size", "nonlinearity", "num_layers")}
    mod = tcls(D, H, **tkw)
    if same_as_torch(variant):
        mod.load_state_dict(ours.state_dict())
    if impl == "torch":
        return (lambda x: mod(x)[0]), mod
    cell = getattr(nn, f"{tcls.__name__}Cell")(D, H, **({"nonlinearity": kw["nonlinearity"]} if "nonlinearity" in kw else {}))
    cell.load_state_dict({k[:-3]: v for k, v in mod.state_dict().items()})
    return (lambda x: _cell_loop(cell, x)), cell


def _cell_loop(cell, x):
    B, H = x.shape[1], cell.hidden_size
    h = x.new_zeros(B, H)
    state = (h, h) if isinstance(cell, nn.LSTMCell) else h
    ys = []
    for x_t in x:
        state = cell(x_t, state)
        ys.append(state[0] if isinstance(state, tuple) else state)
    return torch.stack(ys)


def has_loop(variant: str) -> bool:
    """torch has the cell itself (a ``torch.nn.*Cell`` loop computes the same function)."""
    return same_as_torch(variant) and "proj_size" not in VARIANTS[variant].options


def same_as_torch(variant: str) -> bool:
    """torch.nn has this variant with the same parameters (its state dict loads)."""
    return VARIANTS[variant].torch is not None


def _noisy(variant: str) -> bool:
    """Training-mode randomness (zoneout, recurrent dropout): validated in eval mode."""
    o = VARIANTS[variant].options
    return bool(o.get("zoneout") or o.get("recurrent_dropout"))


def validate(variant: str, size: str, impls, steps: int = 6) -> dict[str, float]:
    """Max |difference| to fused of the output and the input gradient over ``steps`` steps;
    raises if any implementation computing the same function disagrees."""
    T, B, D, H = SIZES[size]
    x = torch.randn(steps, B, D)
    res = {}
    for impl in impls:
        if impl in ("loop", "torch") and not same_as_torch(variant):
            continue
        f, mod = build(variant, size, impl)
        mod.eval() if _noisy(variant) else mod.train()
        xg = x.clone().requires_grad_()
        y = f(xg)
        y.pow(2).sum().backward()
        res[impl] = (y.detach(), xg.grad)
    diffs = {}
    for impl, (y, dx) in res.items():
        d = max((y - res["fused"][0]).abs().max().item(), (dx - res["fused"][1]).abs().max().item())
        diffs[impl] = d
        if d > 1e-3:
            raise AssertionError(f"bench: {impl} disagrees with fused on {variant}/{size} by {d:.2e}")
    return diffs


def validate_extra(variant: str, size: str, extra: str, steps: int = 6) -> dict[str, float]:
    """Each EXTRAS implementation against its float32 eager base (output and input gradient),
    the largest |difference| relative to the base's largest value; raises above EXTRA_TOL."""
    T, B, D, H = SIZES[size]
    x = torch.randn(steps, B, D)
    diffs = {}
    for impl in EXTRAS[extra]:
        if impl.startswith("torch") and not same_as_torch(variant):
            continue
        got = []
        for name in (impl.partition("+")[0], impl):
            f, mod = build(variant, size, name)
            mod.eval() if _noisy(variant) else mod.train()
            xg = x.clone().requires_grad_()
            y = f(xg)
            y.pow(2).sum().backward()
            got.append((y.detach(), xg.grad))
        d = max(((a - b).abs().max() / b.abs().max()).item() for a, b in zip(got[1], got[0]))
        if d > EXTRA_TOL[extra]:
            raise AssertionError(f"bench: {impl} disagrees with its float32 eager run on {variant}/{size} by {d:.2e}")
        diffs[impl] = d
    return diffs


def _time(fn) -> float:
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1e3


def time_size(variant: str, size: str, impls, repeats: int) -> dict[str, tuple[float, float]]:
    """impl -> (forward ms, forward+backward ms), medians of interleaved repeats."""
    T, B, D, H = SIZES[size]
    torch.manual_seed(1)
    x = torch.randn(T, B, D)
    built = {impl: build(variant, size, impl) for impl in impls}
    fw, fb = {i: [] for i in impls}, {i: [] for i in impls}

    def step(impl):
        f, mod = built[impl]
        mod.zero_grad(set_to_none=True)
        f(x.requires_grad_()).sum().backward()
        x.grad = None

    def infer(impl):
        with torch.no_grad():
            built[impl][0](x)

    for impl in impls:                            # warm-up
        infer(impl)
        step(impl)
    for _ in range(repeats):
        for impl in impls:
            fw[impl].append(_time(lambda: infer(impl)))
            fb[impl].append(_time(lambda: step(impl)))
    return {i: (statistics.median(fw[i]), statistics.median(fb[i])) for i in impls}


def step_times(modules: dict[str, nn.Module], xs: list[torch.Tensor], repeats: int,
               mode=torch.inference_mode) -> dict[str, float]:
    """Name -> µs per streaming step: each module called on one step of ``xs`` after another
    (T = 1 each), its state carried across calls, under ``mode`` (a grad-mode context). The
    modules take turns, one block of len(xs) steps each, so that machine noise hits all alike;
    the median over ``repeats`` blocks of the block's mean."""
    states = dict.fromkeys(modules)

    def block(name):
        m = modules[name]
        with mode():
            for x in xs:
                states[name] = m(x, states[name])[1]

    times = {name: [] for name in modules}
    for name in modules:                          # warm-up: packed weights, oneDNN primitives
        block(name)
    for _ in range(repeats):
        for name in modules:
            times[name].append(_time(lambda: block(name)) * 1e3 / len(xs))
    return {name: statistics.median(t) for name, t in times.items()}


def streaming(variant: str, size: str, repeats: int, steps: int = 20) -> dict[str, float]:
    """fused and torch -> µs per streaming step at the size's B, D, H, after checking that
    fused's steps give its one-call outputs."""
    T, B, D, H = SIZES[size]
    mods = {impl: build(variant, size, impl)[1].eval() for impl in ("fused", "torch")}
    torch.manual_seed(2)
    xs = list(torch.randn(steps, 1, B, D))
    with torch.inference_mode():
        whole, state, stepped = mods["fused"](torch.cat(xs))[0], None, []
        for x in xs:
            y, state = mods["fused"](x, state)
            stepped.append(y)
        d = (torch.cat(stepped) - whole).abs().max().item()
    if d > 1e-4:
        raise AssertionError(f"bench: fused stepped T = 1 disagrees with one call on {variant}/{size} by {d:.2e}")
    return step_times(mods, xs, repeats)


def peak_memory_mb(variant: str, size: str, impl: str) -> float:
    """Growth of max RSS over one training step, in a fresh subprocess (MiB)."""
    code = (f"import torch, json; torch.set_num_threads({torch.get_num_threads()}); "
            f"from lstmkit.benchmark import _peak_child; print(json.dumps(_peak_child({variant!r}, {size!r}, {impl!r})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _peak_child(variant: str, size: str, impl: str) -> float:
    T, B, D, H = SIZES[size]
    f, mod = build(variant, size, impl)
    f(torch.randn(2, B, D, requires_grad=True)).sum().backward()   # warm-up: library set-up
    mod.zero_grad(set_to_none=True)
    x = torch.randn(T, B, D, requires_grad=True)
    try:
        before = _status_kb("VmRSS")
        with open("/proc/self/clear_refs", "w") as fh:     # reset the peak RSS to the current RSS
            fh.write("5")
        f(x).sum().backward()
        return (_status_kb("VmHWM") - before) / 1024.0
    except OSError:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        f(x).sum().backward()
        return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024.0


def _status_kb(key: str) -> int:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith(key + ":"))


def run(cfg: BenchConfig, progress=None) -> list[Row]:
    """Validate, then time every (variant, size); rows with ratios to torch."""
    torch.set_num_threads(cfg.threads)
    rows = []
    jobs = [(v, s) for s in cfg.sizes for v in cfg.variants]
    for variant, size in jobs:
        impls = ["fused", "torch"] + (["reference"] if size in cfg.reference_sizes else []) \
            + (["loop"] if has_loop(variant) else [])
        validate(variant, size, [i for i in impls if i != "loop"] + (["loop"] if "loop" in impls else []))
        for extra in cfg.extras:
            impls += list(validate_extra(variant, size, extra))
        times = time_size(variant, size, impls, cfg.repeats)
        steps = streaming(variant, size, cfg.repeats) if cfg.streaming else {}
        base = times["torch"]
        for impl in impls:
            fw, fb = times[impl]
            row = Row(variant, size, impl, fw, fb, fw / base[0], fb / base[1])
            if impl in steps:
                row.step_us, row.step_ratio = steps[impl], steps[impl] / steps["torch"]
            if cfg.memory and impl in ("fused", "torch"):
                row.peak_mb = peak_memory_mb(variant, size, impl)
            rows.append(row)
        if progress is not None:
            progress()
    return rows


def table(rows: list[Row]) -> str:
    lines = [f"{'variant':<22}{'size':<5}{'impl':<14}{'fwd ms':>9}{'fwd/torch':>10}"
             f"{'f+b ms':>9}{'f+b/torch':>10}{'peak MB':>9}{'step µs':>9}{'step/torch':>11}"]
    for r in rows:
        pk = f"{r.peak_mb:9.1f}" if r.peak_mb is not None else f"{'':>9}"
        st = f"{r.step_us:9.0f}{r.step_ratio:11.2f}" if r.step_us is not None else ""
        lines.append(f"{r.variant:<22}{r.size:<5}{r.impl:<14}{r.fwd_ms:9.2f}{r.fwd_ratio:10.2f}"
                     f"{r.fb_ms:9.2f}{r.fb_ratio:10.2f}{pk}{st}")
    return "\n".join(lines)
