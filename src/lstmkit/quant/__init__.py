"""int8 models for inference: ``lstmkit.quantize(model)`` and its files.

Weight matrices become int8, symmetric per output row with a float32 scale (``weights.py``);
biases, peepholes, layer-norm gains, the gates and the cell state stay float32. The C++ loops
of ``engines/fused/int8.cpp`` run the covered layers (``layers.py``), the float engines on the
dequantized weights the rest, and both are held to each other by the tests.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from ..interop.checkpoint import CheckpointError, load_clean_state_dict, load_tensors, save_tensors
from ..cell_modules import _CellBase
from ..layers import _RNNBase
from ..parallel import _MinRNN
from ..pararnn import _ParaRNN
from ..xlstm import mLSTM, sLSTM
from .layers import KERNELS, QUANTIZED, QuantizedDepthGatedLSTM, QuantizedGRU, QuantizedLSTM, QuantizedRNN
from .layers import quantize_layer
from .modules import Int8Embedding, Int8Linear

SCHEME = "int8 weights, symmetric per output row, float32 scales; float32 biases, gates and state"
_INT8 = ("int8", torch.int8)


def quantize(model: nn.Module, dtype="int8") -> nn.Module:
    """An int8 copy of ``model`` for inference (``model`` itself is left as it is).

    model: an lstmkit ``LSTM`` / ``GRU`` / ``RNN`` / ``DepthGatedLSTM``, or any module that
    contains them (a language model, say): each of those layers becomes its ``Quantized*``
    class, each ``nn.Linear`` an ``Int8Linear`` and each ``nn.Embedding`` an ``Int8Embedding``
    (all per output row); every other module is kept in float. The copy is in eval mode and
    takes the same arguments and returns the same outputs as the float model.
    dtype: "int8" (or ``torch.int8``), the one supported.
    """
    if not any(dtype is d or (isinstance(dtype, str) and dtype == d) for d in _INT8):
        raise ValueError(f"dtype: expected 'int8', got {dtype!r}")
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected an nn.Module, got {type(model).__name__}")
    if isinstance(model, _RNNBase):
        return quantize_layer(model).eval()
    _refuse_foreign(model)
    new = _swap(nn.Sequential(model))[0]        # a wrapper, so that the root itself is swapped too
    if not any(isinstance(m, tuple(QUANTIZED.values())) for m in new.modules()):
        raise ValueError(f"model: expected an lstmkit LSTM/GRU/RNN/DepthGatedLSTM inside "
                         f"{type(model).__name__}, found none")
    return new.eval()


def _refuse_foreign(model: nn.Module) -> None:
    """Recurrent modules this function would silently leave in float: refuse them by name."""
    for name, m in model.named_modules():
        if isinstance(m, (nn.RNNBase, nn.RNNCellBase)):
            raise TypeError(f"model: {name or 'the model'} is torch.nn.{type(m).__name__}; convert it with "
                            f"lstmkit.from_torch first, then quantize")
        if isinstance(m, (_RNNBase, _CellBase, _MinRNN, _ParaRNN, sLSTM, mLSTM)) and type(m) not in QUANTIZED:
            raise TypeError(f"model: {name} is {type(m).__name__}, which lstmkit.quantize does not cover")


def _swap(root: nn.Module) -> nn.Module:
    """A deep copy of ``root`` with its lstmkit layers, Linears and Embeddings quantized."""
    root = copy.deepcopy(root)

    def visit(parent: nn.Module) -> None:
        for name, child in parent.named_children():
            if type(child) in QUANTIZED:
                setattr(parent, name, quantize_layer(child))
            elif type(child) is nn.Linear:
                setattr(parent, name, Int8Linear(child))
            elif type(child) is nn.Embedding:
                setattr(parent, name, Int8Embedding(child))
            else:
                visit(child)
    visit(root)
    return root


def save_quantized(model: nn.Module, path) -> None:
    """Write a quantized model's tensors (int8 weights, their scales, the float rest) as one
    safetensors file, with a JSON header naming the scheme (no pickle)."""
    kinds = {n: type(m).__name__ for n, m in model.named_modules()
             if isinstance(m, (Int8Linear, Int8Embedding, *QUANTIZED.values()))}
    if not kinds:
        raise ValueError(f"model: expected a model from lstmkit.quantize, {type(model).__name__} holds no int8 module")
    save_tensors(path, model.state_dict(), {"quantized": SCHEME, "modules": kinds})


def load_quantized(model: nn.Module, path) -> nn.Module:
    """The int8 model saved at ``path``: ``model`` is the float architecture it came from
    (its weights are not used), quantized, then given the file's tensors.
    Raises CheckpointError when the file is not an int8 file or does not fit ``model``."""
    tensors, meta = load_tensors(path)
    if meta.get("quantized") != SCHEME:
        raise CheckpointError(f"{path}: not an lstmkit int8 file (quantized={meta.get('quantized')!r})")
    q = quantize(model)
    load_clean_state_dict(q, tensors, source=str(path))
    return q


__all__ = ["Int8Embedding", "Int8Linear", "KERNELS", "QuantizedDepthGatedLSTM", "QuantizedGRU", "QuantizedLSTM",
           "QuantizedRNN", "load_quantized", "quantize", "save_quantized"]
