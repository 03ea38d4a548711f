"""``export_onnx``: build the graph, save it, check it, compare it with PyTorch."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from ...cell_modules import _CellBase
from ...layers import _RNNBase
from ...xlstm import mLSTM, sLSTM
from . import _stack
from ._captured import CAPTURED, export_captured
from ._graph import FLOAT, INT64, OPSET, Graph, make_model, value_info
from ._models import check_float32, lm_parts, stack_of
from ._verify import Signature, check_lm_forward, compare, compare_streaming

log = logging.getLogger("lstmkit.onnx")
STATE_INPUTS = ("h0", "c0")
STATE_OUTPUTS = ("h_n", "c_n")


def _numpy(t) -> np.ndarray:
    return t.detach().to("cpu", torch.float32).numpy()


@dataclass(frozen=True)
class OnnxExport:
    """What ``export_onnx`` wrote.

    path: the .onnx file.  signature: the graph's inputs and outputs (names, layout).
    layers: per layer, the ONNX operator used ("LSTM", "GRU", "RNN") or "Scan".
    max_abs_diff: largest |ONNX Runtime − PyTorch| over every output on a random input,
    None when onnxruntime is not installed or verify=False.  opset: the ONNX opset.
    """

    path: Path
    signature: Signature
    layers: tuple[str, ...]
    max_abs_diff: float | None
    opset: int = OPSET


def _finish(g: Graph, named: list[tuple[str, str, list]], inputs, model, kind: str, bf: bool, kinds):
    """Name the graph outputs (Identity onto the given names) and assemble the model."""
    outputs = []
    for name, value, shape in named:
        g.ops("Identity", [value], [name])
        outputs.append(value_info(name, FLOAT, shape))
    sig = Signature(kind, tuple(i.name for i in inputs), tuple(o.name for o in outputs), bf)
    doc = f"lstmkit export of {type(model).__name__}; layers: {', '.join(kinds)}"
    return make_model(g, inputs, outputs, doc), sig, kinds


def _build_cell(g: Graph, cell: _CellBase, initial_state: bool, lengths: bool, force_scan: bool):
    """One step: input (B, D)[, h0, c0 (B, ·)] -> h_n[, c_n] (B, ·); a stack of one layer at T = 1."""
    if lengths:
        raise ValueError("lengths: a cell runs one step, it has no sequence lengths; pass lengths=False")
    sizes = cell.spec.state_sizes
    inputs = [value_info("input", FLOAT, ["B", cell.input_size])]
    if initial_state:
        inputs += [value_info(n, FLOAT, ["B", s]) for n, s in zip(STATE_INPUTS, sizes)]
    states = [g.unsqueeze(n, 0) for n in STATE_INPUTS[:len(sizes)]] if initial_state else []
    h0, c0 = (states + [None, None])[:2]
    _, finals, kinds = _stack.emit(g, stack_of(cell), g.unsqueeze("input", 0), h0, c0, None, force_scan)
    named = [(n, g.op("Squeeze", [f, g.const([0], np.int64)]), ["B", s])
             for n, f, s in zip(STATE_OUTPUTS, finals, sizes)]
    return _finish(g, named, inputs, cell, "cell", False, kinds)


def _build_sequence(g: Graph, model: nn.Module, initial_state: bool, lengths: bool, force_scan: bool):
    """A recurrent module, or a language model composed as Gather -> stack -> MatMul/Add."""
    lm = None if isinstance(model, _RNNBase) else lm_parts(model)
    check_float32(model)
    rnn = model if lm is None else lm.rnn
    bf = rnn.batch_first
    lead = ["B", "T"] if bf else ["T", "B"]
    if lm is None:
        inputs, x = [value_info("input", FLOAT, lead + [rnn.input_size])], "input"
    else:
        inputs = [value_info("tokens", INT64, lead)]
        x = g.op("Gather", [g.weight("embedding", _numpy(lm.embedding.weight), channel_axis=0), "tokens"], axis=0)
    stack = stack_of(rnn)
    n, sizes = len(stack.specs) * stack.dirs, stack.specs[0].state_sizes
    if initial_state:
        inputs += [value_info(s, FLOAT, [n, "B", size]) for s, size in zip(STATE_INPUTS, sizes)]
    h0, c0 = ((list(STATE_INPUTS[:len(sizes)]) if initial_state else []) + [None, None])[:2]
    if lengths:
        inputs.append(value_info("lengths", INT64, ["B"]))
    if bf:
        x = g.op("Transpose", [x], perm=[1, 0, 2])
    y, finals, kinds = _stack.emit(g, stack, x, h0, c0, "lengths" if lengths else None, force_scan)
    if bf:
        y = g.op("Transpose", [y], perm=[1, 0, 2])
    name, width = "output", stack.dirs * stack.specs[-1].out_size
    if lm is not None:
        name = "logits"
        if lm.head is not None:
            y, width = g.matmul_t(y, _numpy(lm.head.weight), "decoder"), lm.head.out_features
            if lm.head.bias is not None:
                y = g.add(y, g.weight("decoder_b", _numpy(lm.head.bias)))
    named = [(name, y, lead + [width])]
    named += [(o, f, [n, "B", s]) for o, f, s in zip(STATE_OUTPUTS, finals, sizes)]
    return _finish(g, named, inputs, model, "rnn" if lm is None else "lm", bf, kinds)


def build(model: nn.Module, *, initial_state: bool, lengths: bool, force_scan: bool, int8: bool = False):
    """-> (onnx.ModelProto, Signature, layer kinds)."""
    if isinstance(model, (nn.RNNBase, nn.RNNCellBase)):
        raise TypeError(f"model: {type(model).__name__} is a torch.nn module; convert it with "
                        f"lstmkit.from_torch(model) and export the result")
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected an nn.Module, got {type(model).__name__}")
    if isinstance(model, (sLSTM, mLSTM)):
        raise TypeError(f"model: export_onnx writes the LSTM/GRU/RNN families, DepthGatedLSTM, cells, MinLSTM, "
                        f"MinGRU and QRNN; export a {type(model).__name__} with torch.onnx.export(model, (x,), path, "
                        f"dynamo=True, dynamic_shapes=({{0: torch.export.Dim('T')}},)): its step runs in a Loop "
                        f"with a symbolic T, its batch size fixed (docs/xlstm.md)")
    if isinstance(model, _CellBase):
        return _build_cell(Graph(int8=int8), model, initial_state, lengths, force_scan)
    return _build_sequence(Graph(int8=int8), model, initial_state, lengths, force_scan)


def export(model: nn.Module, path, *, initial_state: bool = False, lengths: bool = False,
           force_scan: bool = False, verify: bool = True, atol: float | None = 1e-4,
           seed: int = 0, int8: bool = False, streaming: bool = False) -> OnnxExport:
    path = Path(path)
    if isinstance(model, CAPTURED):
        asked = [k for k, v in (("initial_state", initial_state), ("lengths", lengths), ("force_scan", force_scan),
                                ("int8", int8), ("streaming", streaming)) if v]
        if asked:
            raise ValueError(f"{asked[0]}: expected False for a {type(model).__name__} (its graph is torch's "
                             f"exporter's: input in, output and final state out), got True")
        sig, diff = export_captured(model, path, verify=verify, atol=atol, seed=seed)
        return OnnxExport(path, sig, (f"Loop ({type(model).__name__}, torch.onnx.export)",), diff)
    if streaming and getattr(model if isinstance(model, _RNNBase) else lm_parts(model).rnn if not
                             isinstance(model, _CellBase) else model, "bidirectional", False):
        raise ValueError("streaming: a bidirectional model reads each sequence from its end, which a "
                         "step-by-step stream has not seen yet; export it with streaming=False")
    initial_state = initial_state or streaming
    proto, sig, kinds = build(model, initial_state=initial_state, lengths=lengths, force_scan=force_scan, int8=int8)
    if sig.kind == "lm":
        check_lm_forward(model, seed)
    onnx.checker.check_model(proto, full_check=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, str(path))
    diff = None
    if verify:
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            log.warning("onnxruntime is not installed: %s was checked but not run", path)
        else:
            diff = max(compare(model, path, sig, batch=3, steps=5, seed=seed).values())
            if streaming:
                diff = max(diff, *compare_streaming(model, path, sig, batch=3, steps=5, seed=seed).values())
            log.info("exported %s (%s): max |ONNX Runtime - PyTorch| = %.3g", path, ", ".join(kinds), diff)
            if atol is not None and not diff <= atol:
                path.unlink()                 # never leave a graph known to be wrong behind
                raise RuntimeError(f"exported graph disagreed with PyTorch: max |difference| "
                                   f"{diff:.3g} > atol={atol}; nothing written; please report this as a bug")
    return OnnxExport(path, sig, kinds, diff)
