"""int8 ``Linear`` and ``Embedding``: the other weights of a model that holds lstmkit layers.

Both keep their weight as ``weight_int8`` (int8) and ``weight_scale`` (float32, one per output
row: per output feature for the Linear, per token for the Embedding); ``weight`` reads as the
dequantized float32 matrix, so code that reads ``module.weight`` (the ONNX export, a tied
decoder's shape) works unchanged.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .layers import int8_ops
from .weights import dequantize_rows, quantize_rows


def _frozen(t: Tensor | None) -> nn.Parameter | None:
    return None if t is None else nn.Parameter(t.detach().float(), requires_grad=False)


class Int8Linear(nn.Linear):
    """y = x (diag(s) q)ᵀ + b, q int8 (out_features, in_features), b float32.

    kernel "int8": the C++ int8 GEMM (``engines/fused/int8.cpp``) for float32 CPU input
    without autograd; "dequantize" (and every other call): ``F.linear`` on diag(s) q."""

    kernel = "int8"

    def __init__(self, linear: nn.Linear):
        nn.Module.__init__(self)
        self.in_features, self.out_features = linear.in_features, linear.out_features
        q, s = quantize_rows(linear.weight)
        self.register_buffer("weight_int8", q)
        self.register_buffer("weight_scale", s)
        self.register_parameter("bias", _frozen(linear.bias))

    @property
    def weight(self) -> Tensor:
        return dequantize_rows(self.weight_int8, self.weight_scale)

    def forward(self, input: Tensor) -> Tensor:
        if (self.kernel == "int8" and type(input) is Tensor and input.dtype is torch.float32
                and input.device.type == "cpu" and not (torch.is_grad_enabled() and input.requires_grad)
                and not torch.compiler.is_compiling() and not torch.compiler.is_exporting()):
            ops = int8_ops()
            if ops is not None:
                return ops.linear_int8.default(input.contiguous(), self.weight_int8, self.weight_scale, self.bias)
        return F.linear(input, self.weight, self.bias)


class Int8Embedding(nn.Embedding):
    """Row t of the table is s_t · q_t (int8 row, float32 scale): the lookup gathers q and s
    and multiplies, which equals looking up in diag(s) q."""

    def __init__(self, emb: nn.Embedding):
        if emb.max_norm is not None:
            raise ValueError("model: an nn.Embedding with max_norm renormalises its rows in forward, "
                             "which fixed int8 rows cannot do; got max_norm="
                             f"{emb.max_norm} (build the model with max_norm=None to quantize it)")
        nn.Module.__init__(self)
        self.num_embeddings, self.embedding_dim = emb.num_embeddings, emb.embedding_dim
        self.padding_idx, self.max_norm, self.norm_type = emb.padding_idx, None, emb.norm_type
        self.scale_grad_by_freq, self.sparse = emb.scale_grad_by_freq, emb.sparse
        q, s = quantize_rows(emb.weight)
        self.register_buffer("weight_int8", q)
        self.register_buffer("weight_scale", s)

    @property
    def weight(self) -> Tensor:
        return dequantize_rows(self.weight_int8, self.weight_scale)

    def forward(self, input: Tensor) -> Tensor:
        return F.embedding(input, self.weight_int8).float() * F.embedding(input, self.weight_scale[:, None])
