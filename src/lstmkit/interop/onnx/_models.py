"""What can be exported, and how each kind of model is described to the graph builder.

Three kinds:
- a recurrent module (``LSTM``, ``GRU``, ``RNN``, ``DepthGatedLSTM``);
- a cell (``LSTMCell``, ``GRUCell``, ``RNNCell``): one step, a stack of one layer at T = 1;
- a language model: an ``nn.Module`` whose direct children are one ``nn.Embedding``, one
  lstmkit recurrent module, at most one ``nn.Linear`` (the decoder) and any ``nn.Dropout``,
  computing logits = decoder(rnn(embedding(tokens))). The export composes Gather + the
  recurrent graph + MatMul/Add and the check against ``model(tokens)`` confirms that the
  model's forward really is that composition.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils import parametrize

from ...cell_modules import _CellBase
from ...layers import _RNNBase
from ._stack import Stack


@dataclass(frozen=True)
class LMParts:
    embedding: nn.Embedding
    rnn: _RNNBase
    head: nn.Linear | None


def _arrays(p: dict[str, torch.Tensor]) -> dict:
    return {k: v.detach().to("cpu", torch.float32).numpy() for k, v in p.items()}


def check_float32(module: nn.Module) -> None:
    for name, t in module.named_parameters():
        if t.dtype != torch.float32:
            raise TypeError(f"model: export_onnx writes float32 graphs; parameter {name!r} is "
                            f"{t.dtype} (call model.float() first)")


def _check_deterministic(rnn: nn.Module) -> None:
    """Training-mode noise would be baked in as its expectation: refuse instead."""
    if not rnn.training:
        return
    noisy = {"zoneout": getattr(rnn, "zoneout", 0.0),
             "recurrent_dropout": getattr(rnn, "recurrent_dropout", 0.0),
             "dropout": getattr(rnn, "dropout", 0.0) if getattr(rnn, "num_layers", 1) > 1 else 0.0}
    active = {k: v for k, v in noisy.items() if v}
    if parametrize.is_parametrized(rnn):      # e.g. DropConnect on W_hh (AWD-LSTM's weight drop)
        active["parametrized weights"] = ", ".join(rnn.parametrizations.keys())
    if active:
        raise ValueError(f"model: in training mode {type(rnn).__name__} is stochastic "
                         f"({', '.join(f'{k}={v}' for k, v in active.items())}); an ONNX graph "
                         f"cannot reproduce its random masks. Call model.eval() before export_onnx "
                         f"(evaluation uses zoneout's expectation and no dropout)")


def stack_of(module: nn.Module) -> Stack:
    """The exporter's view of a recurrent module or a cell."""
    check_float32(module)
    if isinstance(module, _RNNBase):
        _check_deterministic(module)
        params = tuple(tuple(_arrays(module.layer_params(k, d)) for d in range(module.num_directions))
                       for k in range(module.num_layers))
        return Stack(tuple(module.specs), params, module.zoneout)
    if isinstance(module, _CellBase):
        return Stack((module.spec,), ((_arrays(module.params()),),), 0.0)
    raise TypeError(f"module: expected an lstmkit recurrent module or cell, got {type(module).__name__}")


def lm_parts(model: nn.Module) -> LMParts:
    """Find embedding, recurrent core and decoder among the model's direct children."""
    emb, rnn, head, other = [], [], [], []
    for name, child in model.named_children():
        if isinstance(child, nn.Embedding):
            emb.append(child)
        elif isinstance(child, _RNNBase):
            rnn.append(child)
        elif isinstance(child, nn.Linear):
            head.append(child)
        elif isinstance(child, nn.Dropout):
            if model.training and child.p:
                raise ValueError(f"model: {name} ({child}) is active in training mode; call "
                                 f"model.eval() before export_onnx")
        else:
            other.append(f"{name} ({type(child).__name__})")
    if len(emb) != 1 or len(rnn) != 1 or len(head) > 1 or other:
        raise TypeError(
            f"model: expected an lstmkit LSTM/GRU/RNN/DepthGatedLSTM, a cell, or a language model "
            f"whose direct children are one nn.Embedding, one lstmkit recurrent module, at most one "
            f"nn.Linear and nn.Dropout; {type(model).__name__} has {len(emb)} embedding(s), "
            f"{len(rnn)} recurrent module(s), {len(head)} linear layer(s)"
            + (f" and unsupported children {', '.join(other)}" if other else ""))
    if emb[0].max_norm is not None:
        raise ValueError("model: an nn.Embedding with max_norm renormalises its weights during "
                         "forward, which a static graph cannot do; export with max_norm=None")
    return LMParts(emb[0], rnn[0], head[0] if head else None)
