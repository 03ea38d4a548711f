"""The Elman RNN (Elman 1990), the seeds' "basic RNN":

    h' = tanh(u + h W_hhᵀ + b_hh)        (or relu),  u = x W_ihᵀ + b_ih for the whole sequence
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .common import project


@dataclass(frozen=True)
class RNNSpec:
    """hidden_size: H.  nonlinearity: "tanh" or "relu"."""

    hidden_size: int
    bias: bool = True
    nonlinearity: str = "tanh"

    family = "rnn"
    gates = "h"

    @property
    def out_size(self) -> int:
        return self.hidden_size

    @property
    def state_sizes(self) -> tuple[int]:
        return (self.hidden_size,)

    def param_shapes(self, input_size: int) -> dict[str, tuple[int, ...]]:
        H = self.hidden_size
        s = {"w_ih": (H, input_size), "w_hh": (H, H)}
        if self.bias:
            s.update(b_ih=(H,), b_hh=(H,))
        return s

    def project(self, x: Tensor, p: dict[str, Tensor]) -> tuple[Tensor]:
        return (project(x, p["w_ih"], p.get("b_ih"), None, 1),)

    def step(self, u: tuple[Tensor], state: tuple[Tensor], p: dict[str, Tensor], **_):
        """One step. Returns ((h',), {})."""
        (h,) = state
        a = u[0] + project(h, p["w_hh"], p.get("b_hh"), None, 1)
        act = torch.tanh if self.nonlinearity == "tanh" else torch.relu
        return (act(a),), {}
