"""Latency for real-time use: one LSTM step per call (T = 1, the state carried), lstmkit float32,
bfloat16 and int8 against torch.nn.LSTM float32 and ONNX Runtime float32 and int8 (QDQ), one
thread each, measured in one process; and the int8 GEMM candidates for that step.

    PYTHONPATH=src python benchmarks/latency.py                              # H 128, 512; B 1, 32
    PYTHONPATH=src python benchmarks/latency.py --hidden 128 --json benchmarks/results_latency.json

Per hidden size H (D = H, one layer): every contender is built from the same nn.LSTM weights;
before timing, each one stepped over 8 steps must give nn.LSTM's outputs and states (float32
and ONNX float32 within 1e-4; bfloat16 and int8 within 3e-2) and ONNX int8 the lstmkit int8
model's (1e-4). Then per-step µs at B 1 (latency) and at B 32 (throughput = 32 sequences ÷ step),
interleaved blocks of steps, medians (``lstmkit.benchmark.step_times``), under inference mode.
Sizes are the files on disk: safetensors for the modules, .onnx for ONNX Runtime.

``--gemm``: x Wᵀ at B 1 (W (4H, H)) through every int8 GEMM torch offers on a CPU, beside
float32 mm, each checked against the dequantized float product first.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

import lstmkit
from lstmkit.benchmark import step_times
from lstmkit.cli.env import environment
from lstmkit.interop.checkpoint import save_tensors
from lstmkit.quant import quantize, save_quantized
from lstmkit.quant.layers import int8_ops
from lstmkit.quant.weights import dequantize_rows, quantize_rows


class _Cast:
    """A bfloat16 module fed float32 steps: the cast is part of its step."""

    def __init__(self, module, dtype):
        self.module, self.dtype = module, dtype

    def __call__(self, x, state=None):
        return self.module(x.to(self.dtype), state)


class _Ort:
    """An ONNX Runtime session of a streaming export, called like the module: (x, state)."""

    def __init__(self, path: Path, H: int):
        import onnxruntime as ort
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.sess, self.H = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"]), H

    def __call__(self, x, state=None):
        B = x.shape[1]
        if state is None:
            state = (np.zeros((1, B, self.H), np.float32),) * 2
        y, h, c = self.sess.run(None, {"input": x.numpy(), "h0": state[0], "c0": state[1]})
        return torch.from_numpy(y), (h, c)


def _t(a) -> torch.Tensor:
    return (a if isinstance(a, torch.Tensor) else torch.from_numpy(a)).float()


def _stepped(m, x):
    ys, state = [], None
    for t in range(x.shape[0]):
        y, state = m(x[t:t + 1], state)
        ys.append(_t(y))
    return [torch.cat(ys), *(_t(s) for s in state)]


def _diff(a, b) -> float:
    return max(float((u - v).abs().max()) for u, v in zip(a, b))


def contenders(H: int, folder: Path):
    """name -> callable step, name -> bytes on disk, validated against nn.LSTM."""
    torch.manual_seed(0)
    ref = nn.LSTM(H, H).eval()
    f32 = lstmkit.from_torch(ref).eval()
    q = quantize(f32)
    mods = {"nn.LSTM float32": ref, "lstmkit float32": f32,
            "lstmkit bfloat16": _Cast(lstmkit.from_torch(ref).to(torch.bfloat16).eval(), torch.bfloat16),
            "lstmkit int8": q}
    sizes = {}
    save_tensors(folder / "f32.safetensors", f32.state_dict(), {})
    save_tensors(folder / "bf16.safetensors", mods["lstmkit bfloat16"].module.state_dict(), {})
    save_quantized(q, folder / "int8.safetensors")
    sizes.update({"nn.LSTM float32": (folder / "f32.safetensors").stat().st_size,
                  "lstmkit float32": (folder / "f32.safetensors").stat().st_size,
                  "lstmkit bfloat16": (folder / "bf16.safetensors").stat().st_size,
                  "lstmkit int8": (folder / "int8.safetensors").stat().st_size})
    try:
        lstmkit.export_onnx(f32, folder / "f32.onnx", streaming=True)
        lstmkit.export_onnx(q, folder / "int8.onnx", streaming=True, int8=True)
        mods["ORT float32"], mods["ORT int8"] = _Ort(folder / "f32.onnx", H), _Ort(folder / "int8.onnx", H)
        sizes["ORT float32"], sizes["ORT int8"] = ((folder / n).stat().st_size for n in ("f32.onnx", "int8.onnx"))
    except ImportError:
        print("onnxruntime not installed: no ONNX Runtime rows", file=sys.stderr)
    x = torch.randn(8, 2, H)
    with torch.inference_mode():
        want = _stepped(ref, x)
        got = {name: _stepped(m, x) for name, m in mods.items()}
    tol = {"lstmkit float32": 1e-4, "ORT float32": 1e-4, "lstmkit bfloat16": 3e-2, "lstmkit int8": 3e-2}
    for name, t in tol.items():
        if name in got and (d := _diff(got[name], want)) > t:
            raise AssertionError(f"H {H}: {name} differs from nn.LSTM by {d:.2e} > {t}")
    if "ORT int8" in got and (d := _diff(got["ORT int8"], got["lstmkit int8"])) > 1e-4:
        raise AssertionError(f"H {H}: ORT int8 differs from lstmkit int8 by {d:.2e}")
    errors = {name: _diff(v, want) for name, v in got.items()}
    return mods, sizes, errors


def gemm_rows(H: int, repeats: int) -> list[dict]:
    """x (1, H) Wᵀ, W (4H, H) int8 per row: every CPU int8 GEMM torch has, and float32 mm."""
    import timeit
    torch.manual_seed(0)
    w, x = torch.randn(4 * H, H) / H ** 0.5, torch.randn(1, H)
    q, s = quantize_rows(w)
    wd = dequantize_rows(q, s)
    want = x @ wd.t()
    ops = int8_ops()
    cands = {"float32 mm": lambda: torch.mm(x, wd.t())}
    if ops is not None:
        cands["lstmkit C++ (int8 weight, float32 FMA)"] = lambda: ops.linear_int8(x, q, s, None)
    try:
        torch._weight_int8pack_mm(x, q, s)
        cands["torch._weight_int8pack_mm"] = lambda: torch._weight_int8pack_mm(x, q, s)
    except RuntimeError as e:
        print(f"_weight_int8pack_mm: {str(e).splitlines()[0]}", file=sys.stderr)
    try:
        packed = torch.ops.quantized.linear_prepack(torch.quantize_per_channel(
            wd, s.double(), torch.zeros(4 * H, dtype=torch.long), 0, torch.qint8), None)
        # reduce_range: 7-bit activations; without it the AVX2 path (u8 x s8 pairs summed in int16)
        # saturates: relative error 0.12 on this GEMV
        cands["fbgemm quantized.linear_dynamic"] = lambda: torch.ops.quantized.linear_dynamic(x, packed, True)
    except RuntimeError as e:
        print(f"linear_dynamic: {str(e).splitlines()[0]}", file=sys.stderr)

    def int_mm():                                   # dynamic per-tensor activation int8, int32 sums
        sx = x.abs().max() / 127
        xq = torch.round(x / sx).to(torch.int8).expand(17, H).contiguous()   # _int_mm needs M > 16
        return torch._int_mm(xq, q.t())[:1].float() * (sx * s)
    try:
        int_mm()
        cands["torch._int_mm (+ activation quantized)"] = int_mm
    except RuntimeError as e:
        print(f"_int_mm: {str(e).splitlines()[0]}", file=sys.stderr)
    rows = []
    scale = float(want.abs().max())
    for name, fn in cands.items():
        err = float((fn() - want).abs().max()) / scale
        if err > 2e-2:
            raise AssertionError(f"gemm {name}: relative error {err:.2e}")
        t = timeit.Timer(fn)
        n = max(1, int(2000 / max(H / 128, 1)))
        us = sorted(t.timeit(n) / n * 1e6 for _ in range(repeats))[repeats // 2]
        rows.append({"H": H, "impl": name, "us": us, "rel_err": err})
    return rows


def _lscpu() -> dict:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return {}
    info = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    flags = info.get("Flags", "").split()
    return {"model_name": info.get("Model name", "").strip(),
            "int8_flags": sorted(f for f in flags if "vnni" in f or f.startswith(("amx", "avx512", "avx2")))}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hidden", default="128,512", help="comma-separated hidden sizes, D = H (default 128,512)")
    p.add_argument("--batch", default="1,32", help="comma-separated batch sizes (default 1,32)")
    p.add_argument("--repeats", type=int, default=15, help="timed blocks per contender; medians (default 15)")
    p.add_argument("--steps", type=int, default=20, help="steps per block (default 20)")
    p.add_argument("--gemm", action="store_true", help="also time the int8 GEMM candidates at B 1")
    p.add_argument("--json", metavar="PATH", help="also write the rows and the environment")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    env = {**environment(), "lscpu": _lscpu()}
    rows, gemm = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for H in map(int, a.hidden.split(",")):
            mods, sizes, errors = contenders(H, Path(tmp))
            for B in map(int, a.batch.split(",")):
                xs = list(torch.randn(a.steps, 1, B, H))
                us = step_times(mods, xs, a.repeats)
                base = us["nn.LSTM float32"]
                print(f"\nH {H}, B {B}: µs per step, ratio to nn.LSTM float32, steps·sequences/s, bytes")
                for name, v in us.items():
                    rows.append({"H": H, "B": B, "impl": name, "us": v, "ratio": v / base,
                                 "throughput": B * 1e6 / v, "bytes": sizes[name], "max_abs_err": errors[name]})
                    print(f"  {name:<20}{v:9.1f}{v / base:7.2f}{B * 1e6 / v:11.0f}{sizes[name]:11d}", flush=True)
            if a.gemm:
                gemm += gemm_rows(H, a.repeats)
                for r in gemm[-10:]:
                    if r["H"] == H:
                        print(f"  gemm H {H}: {r['impl']:<42}{r['us']:8.2f} µs  rel err {r['rel_err']:.1e}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"environment": env, "load_average_after": os.getloadavg(), "config": vars(a),
                       "rows": rows, "gemm": gemm}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
