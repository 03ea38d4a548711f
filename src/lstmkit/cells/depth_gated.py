"""The depth gate of the depth-gated LSTM (Yao et al. 2015, arXiv 1508.03790).

Between stacked layers k−1 ("low") and k, a gate d lets the lower layer's new cell state
flow straight into this layer's cell, a highway in depth as the cell state is one in time:

    d  = σ(W_xd x + b_d + w_cd ⊙ c + w_ld ⊙ c_low')
    c' = d ⊙ c_low' + f ⊙ c + i ⊙ g          (x = h_low', the layer's input)

``W_xd x + b_d`` is computed for the whole sequence at once by ``LSTMSpec.project``;
this function is the per-step part.
"""
from __future__ import annotations

import torch
from torch import Tensor


def depth_gate(xd: Tensor, c: Tensor, c_low: Tensor, w_cd: Tensor, w_ld: Tensor) -> Tensor:
    """d = σ(xd + w_cd ⊙ c + w_ld ⊙ c_low), with xd = W_xd x + b_d. Shapes (B, H)."""
    return torch.sigmoid(xd + w_cd * c + w_ld * c_low)
