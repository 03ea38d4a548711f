"""Export a trained run as an ONNX graph, checked with the ONNX checker and ONNX Runtime."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..interop.checkpoint import CheckpointError
from ..interop.onnx import export_onnx
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
    try:
        result = export_onnx(model, path, initial_state=args.initial_state, lengths=args.lengths,
                             force_scan=args.force_scan)
    except (ImportError, ValueError, TypeError) as e:
        raise UsageError(str(e)) from None
    sig = result.signature
    print(f"wrote {result.path}  (opset {result.opset}; layers: {', '.join(result.layers)})")
    print(f"  inputs: {', '.join(sig.inputs)}   outputs: {', '.join(sig.outputs)}")
    if result.max_abs_diff is None:
        print("  onnxruntime is not installed: checked with the ONNX checker only")
    else:
        print(f"  max |ONNX Runtime - PyTorch| on a random input: {result.max_abs_diff:.2e}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"path": str(result.path), "opset": result.opset, "layers": list(result.layers),
                       "max_abs_diff": result.max_abs_diff, "inputs": list(sig.inputs),
                       "outputs": list(sig.outputs)}, f, indent=2)
    return 0
