"""How closely ONNX Runtime reproduces PyTorch for every lstmkit variant, and how fast it runs.

    PYTHONPATH=src python benchmarks/onnx_agreement.py [--json PATH] [--no-speed]

Agreement: each variant exported with initial states and per-sequence lengths, run at
(B, T) in {1, 4} x {2, 13} (the test suite's sizes) and at B = 8, T = 100; the table gives
max |ONNX Runtime − PyTorch float32| and, as the yardstick of float32 itself, the distance
of each to PyTorch in float64 on the same inputs and weights (all outputs and final states).
Speed (size S of DESIGN.md §7, T = 100, B = 32, D = 128, H = 256, 2 threads): median
forward time of the ONNX graph in ONNX Runtime, of the module in PyTorch (no_grad, the
engine "auto" picks) and of torch.nn.LSTM / nn.GRU where torch has the cell.
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

import lstmkit
from lstmkit.interop.onnx._verify import example_feeds, onnx_outputs, torch_outputs

VARIANTS = {
    "vanilla": lambda: lstmkit.LSTM(5, 7),
    "peepholes (ifo)": lambda: lstmkit.LSTM(5, 7, peepholes=True),
    "peepholes (fo)": lambda: lstmkit.LSTM(5, 7, peepholes="fo"),
    "coupled (CIFG)": lambda: lstmkit.LSTM(5, 7, coupled=True),
    "CIFG + peepholes (fo)": lambda: lstmkit.LSTM(5, 7, coupled=True, peepholes="fo"),
    "no input gate": lambda: lstmkit.LSTM(5, 7, ablate="input_gate"),
    "no forget gate": lambda: lstmkit.LSTM(5, 7, ablate="forget_gate"),
    "no output gate": lambda: lstmkit.LSTM(5, 7, ablate="output_gate"),
    "no input activation": lambda: lstmkit.LSTM(5, 7, ablate="input_activation"),
    "no output activation": lambda: lstmkit.LSTM(5, 7, ablate="output_activation"),
    "layer norm": lambda: lstmkit.LSTM(5, 7, layer_norm=True),
    "projection (P=3)": lambda: lstmkit.LSTM(5, 7, proj_size=3),
    "depth gate (3 layers)": lambda: lstmkit.DepthGatedLSTM(5, 7, 3),
    "zoneout 0.3 (eval)": lambda: lstmkit.LSTM(5, 7, zoneout=0.3),
    "2 layers bidirectional": lambda: lstmkit.LSTM(5, 7, 2, bidirectional=True),
    "batch_first": lambda: lstmkit.LSTM(5, 7, batch_first=True),
    "GRU reset_after=True": lambda: lstmkit.GRU(5, 7),
    "GRU reset_after=False": lambda: lstmkit.GRU(5, 7, reset_after=False),
    "GRU layer norm": lambda: lstmkit.GRU(5, 7, layer_norm=True),
    "GRU zoneout 0.3 (eval)": lambda: lstmkit.GRU(5, 7, zoneout=0.3),
    "GRU 2 layers bidirectional": lambda: lstmkit.GRU(5, 7, 2, bidirectional=True),
    "RNN tanh": lambda: lstmkit.RNN(5, 7),
    "RNN relu bidirectional": lambda: lstmkit.RNN(5, 7, nonlinearity="relu", bidirectional=True),
}
SMALL = [(1, 2), (1, 13), (4, 2), (4, 13)]
LONG = (8, 100)


def _model(factory, seed: int = 0):
    torch.manual_seed(seed)
    m = factory().eval()
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return m


def agreement(path: Path) -> list[dict]:
    rows = []
    for name, factory in VARIANTS.items():
        m = _model(factory)
        r = lstmkit.export_onnx(m, path, initial_state=True, lengths=True)
        m64 = _model(factory).double()
        row = {"variant": name, "layers": "+".join(r.layers)}
        for label, sizes in (("small", SMALL), ("long", [LONG])):
            ort_err = f32_err = ort64_err = 0.0
            for i, (B, T) in enumerate(sizes):
                feeds = example_feeds(m, r.signature, B, T, seed=100 + i)
                want = torch_outputs(m, r.signature, feeds)
                got = onnx_outputs(path, feeds)
                f64 = torch_outputs(m64, r.signature, {k: v.astype(np.float64) if v.dtype == np.float32 else v
                                                       for k, v in feeds.items()})
                ort_err = max(ort_err, max(float(np.abs(got[k] - want[k]).max()) for k in want))
                f32_err = max(f32_err, max(float(np.abs(want[k] - f64[k]).max()) for k in want))
                ort64_err = max(ort64_err, max(float(np.abs(got[k] - f64[k]).max()) for k in want))
            row[f"ort_vs_torch_{label}"], row[f"torch32_vs_64_{label}"] = ort_err, f32_err
            row[f"ort_vs_64_{label}"] = ort64_err
        rows.append(row)
    return rows


def _median_time(fn, repeats: int = 15) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def speed(path: Path) -> list[dict]:
    torch.set_num_threads(2)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 2
    T, B, D, H = 100, 32, 128, 256
    x = torch.randn(T, B, D)
    rows = []
    cases = {"vanilla": (lambda: lstmkit.LSTM(D, H), torch.nn.LSTM),
             "layer norm": (lambda: lstmkit.LSTM(D, H, layer_norm=True), None),
             "GRU": (lambda: lstmkit.GRU(D, H), torch.nn.GRU)}
    for name, (factory, baseline) in cases.items():
        m = factory().eval()
        r = lstmkit.export_onnx(m, path)
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        feeds = {"input": x.numpy()}
        with torch.no_grad():
            t_torch = _median_time(lambda: m(x))
        t_ort = _median_time(lambda: sess.run(None, feeds))
        t_nn = None
        if baseline is not None:
            ref = baseline(D, H).eval()
            with torch.no_grad():
                t_nn = 1e3 * _median_time(lambda: ref(x))
        rows.append({"variant": name, "layers": "+".join(r.layers), "ort_ms": 1e3 * t_ort,
                     "torch_ms": 1e3 * t_torch, "torch_nn_ms": t_nn})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", metavar="PATH")
    ap.add_argument("--no-speed", action="store_true")
    ap.add_argument("--no-agreement", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.onnx"
        rows = [] if args.no_agreement else agreement(path)
        if rows:
            print("| variant | ONNX | T ≤ 13: ORT − torch | torch − f64 | ORT − f64 "
                  "| T = 100: ORT − torch | torch − f64 | ORT − f64 |")
            print("|---|---|---|---|---|---|---|---|")
        for r in rows:
            cells = [r[f"{k}_{s}"] for s in ("small", "long") for k in ("ort_vs_torch", "torch32_vs_64", "ort_vs_64")]
            print(f"| {r['variant']} | {r['layers']} | " + " | ".join(f"{c:.1e}" for c in cells) + " |")
        fast = [] if args.no_speed else speed(path)
        if fast:
            print("\n| size S forward | ONNX | ONNX Runtime (ms) | lstmkit in PyTorch (ms) | torch.nn (ms) |")
            print("|---|---|---|---|---|")
            for r in fast:
                nn_ms = "—" if r["torch_nn_ms"] is None else f"{r['torch_nn_ms']:.1f}"
                print(f"| {r['variant']} | {r['layers']} | {r['ort_ms']:.1f} | {r['torch_ms']:.1f} | {nn_ms} |")
    if args.json:
        env = {"torch": torch.__version__, "onnxruntime": ort.__version__, "lstmkit": lstmkit.__version__}
        Path(args.json).write_text(json.dumps({"env": env, "agreement": rows, "speed": fast}, indent=2))


if __name__ == "__main__":
    main()
