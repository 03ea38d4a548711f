"""``export_onnx`` for the members whose graph torch's exporter captures rather than this package
building it node by node: MinLSTM, MinGRU and QRNN.

Under ``torch.export`` their layers run the cell step inside torch's ``scan`` operator (the
"traced" mode of ``engines.scan``), which the ONNX exporter
writes as a ``Loop`` over a symbolic T; batch size and sequence length stay dynamic. Graph input
``input`` (T, B, D) — (B, T, D) with batch_first; outputs ``output`` and the final state, one
output per field of the module's state (``h_n`` for the min cells; ``c_n``, ``x_n`` for the
QRNN's (c, x)). (The sLSTM and mLSTM export the same way with ``torch.onnx.export``, but only
with a fixed batch size, so ``export_onnx`` refuses them and says how.) The check runs ONNX Runtime at another T and B than the export's against PyTorch.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ...parallel import _MinRNN
from ._verify import Signature

CAPTURED = (_MinRNN,)


class _Flat(nn.Module):
    """The module with its state flattened into outputs: (output, *state fields)."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, x):
        y, state = self.module(x)
        return (y, *state) if isinstance(state, tuple) else (y, state)


def _output_names(model: nn.Module, x) -> tuple[str, ...]:
    with torch.no_grad():
        _, state = model(x)
    fields = getattr(state, "_fields", None) or ("h",)
    return ("output", *(f"{f}_n" for f in fields))


def _inputs(model: nn.Module, T: int, B: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    p = next(model.parameters())
    shape = (B, T, model.input_size) if model.batch_first else (T, B, model.input_size)
    return torch.randn(shape, generator=g).to(p.dtype)


def export_captured(model: nn.Module, path: Path, *, verify: bool, atol: float | None, seed: int):
    """-> (Signature, max |ONNX Runtime − PyTorch| or None). Raises RuntimeError, writing
    nothing, when the graph disagrees with PyTorch by more than ``atol``."""
    if model.training and getattr(model, "dropout", 0.0):
        raise ValueError(f"model: expected eval mode (dropout {model.dropout} is active in training "
                         f"mode); call model.eval() before exporting")
    if next(model.parameters()).dtype != torch.float32:
        raise ValueError(f"model: expected float32 parameters, got {next(model.parameters()).dtype}")
    t_axis, b_axis = (1, 0) if model.batch_first else (0, 1)
    x = _inputs(model, 7, 3, seed)
    names = _output_names(model, x)
    dims = {t_axis: torch.export.Dim("T", min=2), b_axis: torch.export.Dim("B", min=2)}
    path.parent.mkdir(parents=True, exist_ok=True)
    # torch 2.13 keeps what an earlier export in this process traced of the scan; with a dynamic
    # batch it is stale ("'SymInt' object has no attribute 'unsqueeze'"): start clean (this also
    # drops torch.compile's caches, which recompile on their next call)
    torch._dynamo.reset()
    torch.onnx.export(_Flat(model).eval(), (x,), str(path), dynamo=True, dynamic_shapes=(dims,),
                      input_names=["input"], output_names=list(names), verbose=False)
    sig = Signature("captured", ("input",), names, bool(model.batch_first))
    if not verify:
        return sig, None
    try:
        import onnxruntime as ort
    except ImportError:
        return sig, None
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = _inputs(model, 11, 2, seed + 1)
    got = sess.run(None, {"input": x.numpy()})
    with torch.no_grad():
        want = _Flat(model)(x)
    diff = max(float((torch.from_numpy(g) - w).abs().max()) for g, w in zip(got, want))
    if atol is not None and not diff <= atol:
        path.unlink()                               # never leave a graph known to be wrong behind
        raise RuntimeError(f"exported graph disagreed with PyTorch: max |difference| {diff:.3g} > "
                           f"atol={atol}; nothing written; please report this as a bug")
    return sig, diff
