"""QRNN with fo-pooling (Bradbury, Merity, Xiong & Socher 2016, arXiv 1611.01576).

The gates are causal convolutions of width k (``window``) over the inputs, never reading
h_{t−1}, so c follows the linear recurrence c' = a ⊙ c + b that ``engines.scan`` runs in
parallel over time (or step by step: ``step``, the oracle), as for minGRU/minLSTM.

u_t = Σ_{j<k} W_ih[:, :, j] x_{t−k+1+j} + b_ih  (a Conv1d's weight layout (G·H, D, k), the
inputs before the sequence zero, or carried from the last call), split into k_z, k_f, k_o:

    z = tanh(k_z)      f = σ(k_f)      o = σ(k_o)                  (paper eq. 1-3)
    c' = f ⊙ c + (1 − f) ⊙ z                  a = f,  b = (1 − f) ⊙ z   (fo-pooling, eq. 4)
    h' = o ⊙ c'                               (``readout``)

b takes either sign (z = tanh), so the log-space scan runs b = b⁺ − b⁻ as two positive parts
(``log_coefficients``: log a = −softplus(−k_f), log b± = −softplus(k_f) + log max(±z, 0)).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .minrnn import softplus

_LOG_ZERO = -1e4            # log of an exact 0: exp() == 0 in every float dtype used here


@dataclass(frozen=True)
class QRNNSpec:
    """hidden_size: H.  bias: b_ih.  window: k, the convolution's width.  Rows of W_ih: z, f, o."""

    hidden_size: int
    bias: bool = True
    window: int = 2

    family = "qrnn"
    gates = "zfo"

    @property
    def out_size(self) -> int:
        return self.hidden_size

    def param_shapes(self, input_size: int) -> dict[str, tuple[int, ...]]:
        G = len(self.gates) * self.hidden_size
        return {"w_ih": (G, input_size, self.window), **({"b_ih": (G,)} if self.bias else {})}

    def project(self, x: Tensor, p: dict[str, Tensor]) -> Tensor:
        """The causal convolution as one GEMM: x (T + k − 1, B, D), the k − 1 inputs before the
        sequence first -> u (T, B, G·H); window j of step t is x_{t−k+1+j}."""
        windows = x.unfold(0, self.window, 1)                       # (T, B, D, k)
        return torch.nn.functional.linear(windows.flatten(2), p["w_ih"].flatten(1), p.get("b_ih"))

    def gate_values(self, u: Tensor) -> dict[str, Tensor]:
        """The gates themselves (trace letters): z, f, o."""
        k_z, k_f, k_o = u.chunk(3, -1)
        return {"z": torch.tanh(k_z), "f": torch.sigmoid(k_f), "o": torch.sigmoid(k_o)}

    def step(self, u: Tensor, c: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """One step in plain arithmetic (the oracle): c' = f ⊙ c + (1 − f) ⊙ z."""
        gv = self.gate_values(u)
        f, z = gv["f"], gv["z"]
        return f * c + (1 - f) * z, gv

    def coefficients(self, u: Tensor) -> tuple[Tensor, Tensor]:
        """(a, b) of c' = a ⊙ c + b for every step at once: f, (1 − f) ⊙ z."""
        parts = self.coefficient_parts(u)
        return parts["a"], parts["b"]

    def coefficient_parts(self, u: Tensor) -> dict[str, Tensor]:
        """a, b and what their backward reads. z = tanh(k) as 2σ(2k) − 1 (the same function;
        torch's tanh costs 3.5× its sigmoid on this CPU)."""
        k_z, k_f, _ = u.chunk(3, -1)
        z = 2 * torch.sigmoid(2 * k_z) - 1
        f = torch.sigmoid(k_f)
        return {"a": f, "b": (1 - f) * z, "z": z, "f": f}

    def coefficients_backward(self, parts: dict[str, Tensor], da: Tensor, db: Tensor, du: Tensor) -> None:
        """du[z, f rows] ← ∂L/∂u from ∂L/∂a, ∂L/∂b (a = f, b = (1 − f) ⊙ z):
        ∂L/∂k_z = db ⊙ (1 − f) ⊙ (1 − z²),   ∂L/∂k_f = (da − db ⊙ z) ⊙ f(1 − f)."""
        H, z, f = self.hidden_size, parts["z"], parts["f"]
        torch.mul(db * (1 - f), 1 - z * z, out=du[..., :H])
        torch.mul(da - db * z, f * (1 - f), out=du[..., H:2 * H])

    def log_coefficients(self, u: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(log a, log b⁺, log b⁻) with b = b⁺ − b⁻ (``_LOG_ZERO`` where a part is 0)."""
        k_z, k_f, _ = u.chunk(3, -1)
        z = torch.tanh(k_z)
        log_1mf = -softplus(k_f)
        tiny = torch.finfo(z.dtype).tiny                             # keeps the unused branch finite
        pos = torch.where(z > 0, log_1mf + torch.log(z.clamp(min=tiny)), _LOG_ZERO)
        neg = torch.where(z < 0, log_1mf + torch.log((-z).clamp(min=tiny)), _LOG_ZERO)
        return -softplus(-k_f), pos, neg

    def readout(self, u: Tensor, c: Tensor) -> Tensor:
        """h = o ⊙ c for every step: u (T, B, G·H), c (T, B, H)."""
        return torch.sigmoid(u[..., 2 * self.hidden_size:]) * c

    def readout_backward(self, u: Tensor, c: Tensor, dh: Tensor, du: Tensor) -> Tensor:
        """du[o rows] ← ∂L/∂k_o = dh ⊙ c ⊙ o(1 − o); returns ∂L/∂c = dh ⊙ o."""
        o = torch.sigmoid(u[..., 2 * self.hidden_size:])
        torch.mul(dh * c, o * (1 - o), out=du[..., 2 * self.hidden_size:])
        return dh * o
