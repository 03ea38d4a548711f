"""Export a trained run as an ONNX graph, checked with the ONNX checker and ONNX Runtime."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..interop.checkpoint import CheckpointError
from ..interop.onnx import export_onnx
from ..quant import quantize
from ..tasks.runs import load_run
from ._common import UsageError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", metavar="RUN", help="run directory written by `lstmkit train`")
    p.add_argument("--onnx", metavar="PATH", help="the .onnx file to write (default RUN/model.onnx)")
    p.add_argument("--initial-state", action="store_true",
                   help="add graph inputs h0 (and c0) for the initial state (default: zeros)")
    p.add_argument("--lengths", action="store_true",
                   help="add a graph input `lengths` (B,) for padded batches of unequal lengths")
    p.add_argument("--force-scan", action="store_true",
                   help="use Scan for every layer, even where ONNX's LSTM/GRU/RNN operator fits")
    p.add_argument("--int8", action="store_true",
                   help="quantize first (lstmkit.quantize) and write int8 weights with per-channel scales "
                        "through standard DequantizeLinear nodes (no com.microsoft operators)")
    p.add_argument("--streaming", action="store_true",
                   help="states as graph inputs/outputs (implies --initial-state); also verified one step "
                        "at a time (T = 1, state fed back) against PyTorch's whole sequence")
    p.add_argument("--json", metavar="PATH", help="also write {path, layers, max_abs_diff, inputs, outputs}")


def run(args) -> int:
    run_dir = Path(args.run)
    if not run_dir.is_dir():
        raise UsageError(f"RUN: expected a run directory, got {str(run_dir)!r} (not a directory)")
    try:
        model, _ = load_run(run_dir)                    # (model in eval mode, task info)
    except CheckpointError as e:
        raise UsageError(str(e)) from None
    path = Path(args.onnx) if args.onnx else run_dir / "model.onnx"
    if args.streaming and args.lengths:
        raise UsageError("--streaming: one step at a time has no padding; drop --lengths")
    try:
        if args.int8:
            model = quantize(model)
        result = export_onnx(model, path, initial_state=args.initial_state, lengths=args.lengths,
                             force_scan=args.force_scan, int8=args.int8, streaming=args.streaming)
    except (ImportError, ValueError, TypeError) as e:
        raise UsageError(str(e)) from None
    sig = result.signature
    print(f"wrote {result.path}  ({result.path.stat().st_size / 1e6:.2f} MB, opset {result.opset}; "
          f"{'int8 QDQ weights; ' if args.int8 else ''}layers: {', '.join(result.layers)})")
    print(f"  inputs: {', '.join(sig.inputs)}   outputs: {', '.join(sig.outputs)}")
    if result.max_abs_diff is None:
        print("  onnxruntime is not installed: checked with the ONNX checker only")
    else:
        what = "stepped and whole, " if args.streaming else ""
        ref = "the int8 model in PyTorch" if args.int8 else "PyTorch"
        print(f"  max |ONNX Runtime - {ref}| on a random input ({what}B 3, T 5): {result.max_abs_diff:.2e}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"path": str(result.path), "opset": result.opset, "layers": list(result.layers),
                       "max_abs_diff": result.max_abs_diff, "inputs": list(sig.inputs),
                       "outputs": list(sig.outputs), "int8": args.int8, "streaming": args.streaming,
                       "bytes": result.path.stat().st_size}, f, indent=2)
    return 0
