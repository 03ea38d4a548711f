"""Latency for real-time use, behind ``lstmkit bench --latency``: one LSTM step per call (T = 1,
the state carried), lstmkit float32, bfloat16 and int8 against torch.nn.LSTM float32 and ONNX
Runtime float32 and int8 (QDQ), measured in one process; and the int8 GEMM candidates.

Per hidden size H (D = H, one layer) every contender is built from the same nn.LSTM weights.
Before timing, each one stepped over 8 steps must give nn.LSTM's outputs and states (float32
and ONNX float32 within 1e-4; bfloat16 and int8 within 3e-2), and ONNX int8 the lstmkit int8
model's (1e-4). Then µs per step at each batch size B (B 1: latency; B 32: throughput = B
sequences ÷ step), the contenders taking turns block by block, medians
(``benchmark.step_times``), under inference mode. Sizes are the files on disk: safetensors for
the modules, .onnx for ONNX Runtime.

``gemm_rows``: x Wᵀ at B 1 (W (4H, H), int8 per row) through every int8 GEMM torch offers on a
CPU, beside float32 mm, each checked against the dequantized float product first.
"""
from __future__ import annotations

import statistics
import tempfile
import timeit
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .benchmark import step_times
from .interop import export_onnx, from_torch
from .interop.checkpoint import save_tensors
from .quant import quantize, save_quantized
from .quant.layers import int8_ops
from .quant.weights import dequantize_rows, quantize_rows

BASE = "nn.LSTM float32"
TOLERANCE = {"lstmkit float32": 1e-4, "ORT float32": 1e-4, "lstmkit bfloat16": 3e-2, "lstmkit int8": 3e-2}


class _Cast:
    """A bfloat16 module fed float32 steps: the cast is part of its step."""

    def __init__(self, module, dtype):
        self.module, self.dtype = module, dtype

    def __call__(self, x, state=None):
        return self.module(x.to(self.dtype), state)


class _Ort:
    """An ONNX Runtime session (one thread) of a streaming export, called like the module: (x, state)."""

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


def _stepped(m, x) -> list[torch.Tensor]:
    ys, state = [], None
    for t in range(x.shape[0]):
        y, state = m(x[t:t + 1], state)
        ys.append(_t(y))
    return [torch.cat(ys), *(_t(s) for s in state)]


def _diff(a, b) -> float:
    return max(float((u - v).abs().max()) for u, v in zip(a, b))


def contenders(H: int, folder: Path) -> tuple[dict, dict, dict]:
    """-> (name -> callable step, name -> bytes on disk, name -> max |error| against nn.LSTM),
    every contender checked first (AssertionError naming it when it is off)."""
    torch.manual_seed(0)
    ref = nn.LSTM(H, H).eval()
    f32 = from_torch(ref).eval()
    q = quantize(f32)
    mods = {BASE: ref, "lstmkit float32": f32,
            "lstmkit bfloat16": _Cast(from_torch(ref).to(torch.bfloat16).eval(), torch.bfloat16),
            "lstmkit int8": q}
    save_tensors(folder / "f32.safetensors", f32.state_dict(), {})
    save_tensors(folder / "bf16.safetensors", mods["lstmkit bfloat16"].module.state_dict(), {})
    save_quantized(q, folder / "int8.safetensors")
    sizes = {name: (folder / f).stat().st_size for name, f in
             ((BASE, "f32.safetensors"), ("lstmkit float32", "f32.safetensors"),
              ("lstmkit bfloat16", "bf16.safetensors"), ("lstmkit int8", "int8.safetensors"))}
    try:
        export_onnx(f32, folder / "f32.onnx", streaming=True)
        export_onnx(q, folder / "int8.onnx", streaming=True, int8=True)
        for name, f in (("ORT float32", "f32.onnx"), ("ORT int8", "int8.onnx")):
            mods[name], sizes[name] = _Ort(folder / f, H), (folder / f).stat().st_size
    except ImportError:                                 # no onnxruntime: no ONNX Runtime rows
        pass
    x = torch.randn(8, 2, H)
    with torch.inference_mode():
        want = _stepped(ref, x)
        got = {name: _stepped(m, x) for name, m in mods.items()}
    for name, tol in TOLERANCE.items():
        if name in got and (d := _diff(got[name], want)) > tol:
            raise AssertionError(f"H {H}: {name} differs from nn.LSTM by {d:.2e} > {tol}")
    if "ORT int8" in got and (d := _diff(got["ORT int8"], got["lstmkit int8"])) > 1e-4:
        raise AssertionError(f"H {H}: ORT int8 differs from lstmkit int8 by {d:.2e}")
    return mods, sizes, {name: _diff(v, want) for name, v in got.items()}


def run(hidden: tuple[int, ...], batch: tuple[int, ...], repeats: int, steps: int) -> list[dict]:
    """One row per (H, B, contender): µs per step, ratio to nn.LSTM float32, sequence-steps/s,
    bytes on disk, the checked error."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for H in hidden:
            mods, sizes, errors = contenders(H, Path(tmp))
            for B in batch:
                us = step_times(mods, list(torch.randn(steps, 1, B, H)), repeats)
                rows += [{"H": H, "B": B, "impl": name, "us": v, "ratio": v / us[BASE], "throughput": B * 1e6 / v,
                          "bytes": sizes[name], "max_abs_err": errors[name]} for name, v in us.items()]
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| H | B | implementation | µs per step | ÷ nn.LSTM float32 | sequence-steps/s | bytes on disk |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['H']} | {r['B']} | {r['impl']} | {r['us']:.1f} | {r['ratio']:.2f} | {r['throughput']:,.0f} | "
              f"{r['bytes']:,} |" for r in rows]
    return "\n".join(lines)


def gemm_rows(H: int, repeats: int) -> list[dict]:
    """x (1, H) Wᵀ, W (4H, H) int8 per row: every CPU int8 GEMM torch has, and float32 mm."""
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
    except RuntimeError:
        pass
    try:
        with warnings.catch_warnings():               # torch's quantized tensors: deprecated, still timed
            warnings.simplefilter("ignore", UserWarning)
            packed = torch.ops.quantized.linear_prepack(torch.quantize_per_channel(
                wd, s.double(), torch.zeros(4 * H, dtype=torch.long), 0, torch.qint8), None)
        # reduce_range: 7-bit activations; without it the AVX2 path (u8 x s8 pairs summed in int16)
        # saturates: relative error 0.12 on this GEMV
        cands["fbgemm quantized.linear_dynamic"] = lambda: torch.ops.quantized.linear_dynamic(x, packed, True)
    except RuntimeError:
        pass

    def int_mm():                                   # dynamic per-tensor activation int8, int32 sums
        sx = x.abs().max() / 127
        xq = torch.round(x / sx).to(torch.int8).expand(17, H).contiguous()   # _int_mm needs M > 16
        return torch._int_mm(xq, q.t())[:1].float() * (sx * s)
    try:
        int_mm()
        cands["torch._int_mm (+ activation quantized)"] = int_mm
    except RuntimeError:
        pass
    rows, scale = [], float(want.abs().max())
    for name, fn in cands.items():
        err = float((fn() - want).abs().max()) / scale
        if err > 2e-2:
            raise AssertionError(f"gemm {name}: relative error {err:.2e}")
        n = max(1, int(2000 / max(H / 128, 1)))
        us = statistics.median(timeit.Timer(fn).timeit(n) / n * 1e6 for _ in range(repeats))
        rows.append({"H": H, "impl": name, "us": us, "rel_err": err})
    return rows
