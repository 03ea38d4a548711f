"""torch.compile against eager, lstmkit against torch.nn, in one process.

For each family at size S (T 100, B 32, D 128, H 256): a user model (the recurrent layer,
then a linear head) is built with the same weights in lstmkit and torch.nn, checked to
agree (eager and compiled outputs and input gradients), then timed interleaved, medians of
``--repeats``: inference (no_grad) and one training step (forward + backward).

    python benchmarks/capture.py [--repeats 7] [--json PATH]

Under torch.compile lstmkit's engine is one opaque operator whose backward recomputes the
forward (engines/custom_op.py), so a compiled training step is expected to cost about one
forward more than eager; torch.nn.LSTM itself graph-breaks under compile (pytorch#158007).
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

import lstmkit

T, B, D, H = 100, 32, 128, 256
FAMILIES = {"lstm": (lstmkit.LSTM, torch.nn.LSTM), "gru": (lstmkit.GRU, torch.nn.GRU)}


class Model(torch.nn.Module):
    def __init__(self, rnn):
        super().__init__()
        self.rnn, self.head = rnn, torch.nn.Linear(H, 8)

    def forward(self, x):
        return self.head(self.rnn(x)[0])


def build(family: str):
    ours_cls, torch_cls = FAMILIES[family]
    torch.manual_seed(0)
    ref = Model(torch_cls(D, H))
    ours = Model(ours_cls(D, H))
    ours.load_state_dict(ref.state_dict())
    return {"lstmkit eager": ours, "lstmkit compiled": torch.compile(ours),
            "torch.nn eager": ref, "torch.nn compiled": torch.compile(ref)}


def validate(models, x) -> float:
    base = None
    worst = 0.0
    for m in models.values():
        xg = x.clone().requires_grad_()
        y = m(xg)
        (dx,) = torch.autograd.grad(y.square().sum(), xg)
        if base is None:
            base = (y.detach(), dx)
        worst = max(worst, (y - base[0]).abs().max().item(), (dx - base[1]).abs().max().item())
    if worst > 1e-4:
        raise AssertionError(f"capture bench: implementations disagree by {worst:.2e}")
    return worst


def _ms(fn) -> float:
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1e3


def time_models(models, x, repeats: int) -> dict:
    def infer(m):
        with torch.no_grad():
            m(x)

    def step(m):
        m.zero_grad(set_to_none=True)
        m(x).square().sum().backward()

    for m in models.values():               # warm-up (compilation happens here)
        infer(m), step(m), infer(m), step(m)
    fw = {k: [] for k in models}
    fb = {k: [] for k in models}
    for _ in range(repeats):
        for k, m in models.items():
            fw[k].append(_ms(lambda: infer(m)))
            fb[k].append(_ms(lambda: step(m)))
    return {k: (statistics.median(fw[k]), statistics.median(fb[k])) for k in models}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", metavar="PATH")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    x = torch.randn(T, B, D)
    rows = []
    for family in FAMILIES:
        models = build(family)
        worst = validate(models, x[:10])
        times = time_models(models, x, args.repeats)
        base = times["torch.nn eager"]
        for k, (fw, fb) in times.items():
            rows.append({"family": family, "impl": k, "fwd_ms": fw, "fb_ms": fb,
                         "fwd_ratio": fw / base[0], "fb_ratio": fb / base[1], "max_diff": worst})
    print(f"{'family':<7}{'implementation':<18}{'fwd ms':>9}{'/nn eager':>10}{'f+b ms':>9}{'/nn eager':>10}")
    for r in rows:
        print(f"{r['family']:<7}{r['impl']:<18}{r['fwd_ms']:9.1f}{r['fwd_ratio']:10.2f}{r['fb_ms']:9.1f}"
              f"{r['fb_ratio']:10.2f}")
    env = {"python": platform.python_version(), "torch": torch.__version__, "threads": args.threads,
           "cpu": platform.processor() or platform.machine(), "size": dict(T=T, B=B, D=D, H=H)}
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"environment": env, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
