"""``export_onnx``: build the graph, save it, check it, compare it with PyTorch."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from torch import nn

from ...cell_modules import _CellBase
from ...layers import _RNNBase
from . import _stack
from ._graph import FLOAT, INT64, OPSET, Graph, make_model, value_info
from ._models import lm_parts, stack_of
from ._verify import Signature, compare

log = logging.getLogger("lstmkit.onnx")


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


def _rnn_graph(g: Graph, rnn: _RNNBase, x: str, sig_inputs: dict, force_scan: bool):
    """Graph inputs for the state/lengths, the stack, the batch_first transposes."""
    stack = stack_of(rnn)
    dirs, L = stack.dirs, len(stack.specs)
    sizes = stack.specs[0].state_sizes
    state_names = ("h0", "c0")[:len(sizes)]
    inputs = []
    if sig_inputs["initial_state"]:
        inputs += [value_info(n, FLOAT, [L * dirs, "B", s]) for n, s in zip(state_names, sizes)]
    if sig_inputs["lengths"]:
        inputs.append(value_info("lengths", INT64, ["B"]))
    if rnn.batch_first:
        x = g.op("Transpose", [x], perm=[1, 0, 2])
    given = {i.name for i in inputs}
    y, finals, kinds = _stack.emit(g, stack, x, "h0" if "h0" in given else None,
                                   "c0" if "c0" in given else None,
                                   "lengths" if "lengths" in given else None, force_scan)
    if rnn.batch_first:
        y = g.op("Transpose", [y], perm=[1, 0, 2])
    return inputs, y, finals, kinds


def build(model: nn.Module, *, initial_state: bool, lengths: bool, force_scan: bool):
    """-> (onnx.ModelProto, Signature, kinds)."""
    if isinstance(model, (nn.RNNBase, nn.RNNCellBase)):
        raise TypeError(f"model: {type(model).__name__} is a torch.nn module; convert it with "
                        f"lstmkit.from_torch(model) and export the result")
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected an nn.Module, got {type(model).__name__}")
    g = Graph()
    flags = {"initial_state": initial_state, "lengths": lengths}
    time_dims = lambda bf: ["B", "T"] if bf else ["T", "B"]     # noqa: E731
    if isinstance(model, _CellBase):
        if lengths:
            raise ValueError("lengths: a cell runs one step, it has no sequence lengths; pass lengths=False")
        stack = stack_of(model)
        sizes = model.spec.state_sizes
        names = ("h0", "c0")[:len(sizes)]
        inputs = [value_info("input", FLOAT, ["B", model.input_size])]
        if initial_state:
            inputs += [value_info(n, FLOAT, ["B", s]) for n, s in zip(names, sizes)]
        x = g.unsqueeze("input", 0)
        states = [g.unsqueeze(n, 0) if initial_state else None for n in names] + [None]
        _, finals, kinds = _stack.emit(g, stack, x, states[0], states[1], None, force_scan)
        finals = [g.op("Squeeze", [f, g.const([0], np.int64)]) for f in finals]
        out_names = ("h_n", "c_n")[:len(sizes)]
        outputs = [value_info(n, FLOAT, ["B", s]) for n, s in zip(out_names, sizes)]
        sig = Signature("cell", tuple(i.name for i in inputs), out_names, False)
        main_out = []
    elif isinstance(model, _RNNBase):
        bf = model.batch_first
        inputs = [value_info("input", FLOAT, time_dims(bf) + [model.input_size])]
        more, y, finals, kinds = _rnn_graph(g, model, "input", flags, force_scan)
        inputs += more
        width = model.num_directions * model.specs[-1].out_size
        main_out = [("output", y, time_dims(bf) + [width])]
        sig = Signature("rnn", tuple(i.name for i in inputs), (), bf)
    else:
        parts = lm_parts(model)
        bf = parts.rnn.batch_first
        inputs = [value_info("tokens", INT64, time_dims(bf))]
        e = g.op("Gather", [g.weight("embedding", parts.embedding.weight.detach().cpu().numpy()), "tokens"], axis=0)
        more, y, finals, kinds = _rnn_graph(g, parts.rnn, e, flags, force_scan)
        inputs += more
        if parts.head is not None:
            w = parts.head.weight.detach().cpu().numpy()
            y = g.matmul_t(y, w, "decoder")
            if parts.head.bias is not None:
                y = g.add(y, g.weight("decoder_b", parts.head.bias.detach().cpu().numpy()))
            width = w.shape[0]
        else:
            width = parts.rnn.num_directions * parts.rnn.specs[-1].out_size
        main_out = [("logits", y, time_dims(bf) + [width])]
        sig = Signature("lm", tuple(i.name for i in inputs), (), bf)
    if sig.kind != "cell":
        rnn = model if sig.kind == "rnn" else lm_parts(model).rnn
        n = rnn.num_layers * rnn.num_directions
        sizes = rnn.specs[0].state_sizes
        out_names = ("h_n", "c_n")[:len(sizes)]
        outputs = [value_info(name, FLOAT, shape) for name, _, shape in main_out]
        outputs += [value_info(o, FLOAT, [n, "B", s]) for o, s in zip(out_names, sizes)]
        for name, v, _ in main_out:
            g.ops("Identity", [v], [name])
        sig = Signature(sig.kind, sig.inputs, tuple(o.name for o in outputs), sig.batch_first)
    for name, v in zip(sig.outputs[len(main_out):], finals):
        g.ops("Identity", [v], [name])
    doc = f"lstmkit export of {type(model).__name__}; layers: {', '.join(kinds)}"
    return make_model(g, inputs, outputs, doc), sig, kinds


def export(model: nn.Module, path, *, initial_state: bool = False, lengths: bool = False,
           force_scan: bool = False, verify: bool = True, atol: float = 1e-4, seed: int = 0) -> OnnxExport:
    path = Path(path)
    proto, sig, kinds = build(model, initial_state=initial_state, lengths=lengths, force_scan=force_scan)
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
            log.info("exported %s (%s): max |ONNX Runtime - PyTorch| = %.3g", path, ", ".join(kinds), diff)
            if atol is not None and not diff <= atol:
                raise RuntimeError(f"exported graph {path} disagrees with PyTorch: max |difference| "
                                   f"{diff:.3g} > atol={atol}; please report this as a bug")
    return OnnxExport(path, sig, kinds, diff)
