"""ONNX export of every lstmkit model, checked with the ONNX checker and ONNX Runtime.

A layer becomes ONNX's own ``LSTM``, ``GRU`` or ``RNN`` operator when that operator computes
exactly the same thing (vanilla, peepholes, CIFG; GRU both ways; Elman), and a ``Scan`` over
the cell step otherwise (layer norm, projection, depth gate, ablations, zoneout at
evaluation). Batch size and sequence length stay dynamic. ``onnx`` is imported only when
exporting, so ``import lstmkit`` works without the ``lstmkit[onnx]`` extra.
"""
from __future__ import annotations

from pathlib import Path


def _require_onnx() -> None:
    try:
        import onnx  # noqa: F401
    except ImportError as e:
        raise ImportError("export_onnx needs the 'onnx' package: pip install 'lstmkit[onnx]' "
                          "(onnx, onnxruntime, onnxscript)") from e


def export_onnx(model, path: str | Path, *, initial_state: bool = False, lengths: bool = False,
                force_scan: bool = False, verify: bool = True, atol: float | None = 1e-4, seed: int = 0,
                int8: bool = False, streaming: bool = False):
    """Write ``model`` to ``path`` as an ONNX graph (opset 18) and check it.

    model: an lstmkit ``LSTM`` / ``GRU`` / ``RNN`` / ``DepthGatedLSTM``, a cell
    (``LSTMCell`` / ``GRUCell`` / ``RNNCell``), or a language model whose direct children
    are an ``nn.Embedding``, one lstmkit recurrent module and an ``nn.Linear`` decoder.
    Evaluation mode is exported; a model in training mode with zoneout, recurrent dropout
    or dropout raises ValueError. Parameters must be float32.

    Graph inputs: ``input`` (T, B, D) — (B, T, D) when batch_first — or ``tokens`` (int64)
    for a language model, (B, D) for a cell; with ``initial_state`` also ``h0`` and, for
    LSTMs, ``c0`` shaped as torch's (L·dirs, B, ·); with ``lengths`` an int64 ``lengths``
    (B,) of per-sequence lengths (state frozen and output zero past each one, as packing).
    Graph outputs: ``output`` (or ``logits``), ``h_n`` and, for LSTMs, ``c_n``.

    force_scan: use Scan for every layer, even where a fixed operator fits.
    verify: after the ONNX checker, run the graph once in ONNX Runtime (when installed)
    against PyTorch on a random input (B = 3, T = 5) and report the largest difference;
    raise RuntimeError if it exceeds ``atol`` (None: report only).

    int8: write every weight matrix (W_ih, W_hh, W_hr, W_xd, the embedding and the decoder) as
    int8 with one float32 scale per output channel, read through standard ``DequantizeLinear``
    nodes (QDQ; no ``com.microsoft`` operator), for a model from ``lstmkit.quantize`` (whose
    weights lie on that grid; any other raises ValueError). Biases, peepholes and layer-norm
    gains stay float32; the graph computes in float32, as the int8 model does.
    streaming: states as graph inputs and outputs (``initial_state``), and the verification also
    runs the graph one step at a time (T = 1, the state fed back) against PyTorch's whole
    sequence.

    Returns ``OnnxExport(path, signature, layers, max_abs_diff, opset)``.
    """
    _require_onnx()
    from ._export import export
    return export(model, path, initial_state=initial_state, lengths=lengths, force_scan=force_scan,
                  verify=verify, atol=atol, seed=seed, int8=int8, streaming=streaming)


def compare(model, export, *, batch: int, steps: int, seed: int = 0) -> dict[str, float]:
    """max |ONNX Runtime − PyTorch| per output for an ``OnnxExport`` of ``model``, on random
    inputs with the given batch size and sequence length (needs onnxruntime)."""
    _require_onnx()
    from ._verify import compare as _compare
    return _compare(model, export.path, export.signature, batch=batch, steps=steps, seed=seed)


def compare_streaming(model, export, *, batch: int, steps: int, seed: int = 0) -> dict[str, float]:
    """max |ONNX Runtime one step at a time − PyTorch whole sequence| per output, for an
    ``OnnxExport`` with state inputs (``initial_state`` or ``streaming``)."""
    _require_onnx()
    from ._verify import compare_streaming as _compare
    return _compare(model, export.path, export.signature, batch=batch, steps=steps, seed=seed)


__all__ = ["compare", "compare_streaming", "export_onnx"]
