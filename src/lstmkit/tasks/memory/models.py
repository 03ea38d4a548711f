"""The cells the lab compares, a readout on top, and chrono initialisation.

Every cell is an lstmkit module (one layer); the model is cell -> Linear readout, read at
the last valid step or, for per-step tasks, at every step.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ...variants import variant
from .base import Batch, MemoryTask


def chrono_init(rnn: nn.Module, t_max: int, gen: torch.Generator) -> None:
    """Chrono initialisation (Tallec & Ollivier 2018, arXiv 1804.11188, eq. 16):
    b_f ~ log U[1, T_max - 1] and b_i = -b_f, so the forget gates start with memory
    time scales spread up to T_max instead of the ~2 steps of σ(0) = 1/2. The GRU's update
    gate z plays the role of f (h' = (1 - z) n + z h), so b_z gets the same draw. The
    recurrent biases of those gates are set to 0 so that b_ih alone carries the value.
    Plain RNNs, LSTMs without a forget gate and the families it does not know (minLSTM,
    minGRU: no recurrent bias, z there is an input gate) are left as they are.
    """
    if rnn.specs[0].family not in ("lstm", "gru"):
        return
    gates = rnn.specs[0].gates
    keep = "f" if "f" in gates else ("z" if gates == "rzn" else None)
    if keep is None or t_max < 3:
        return
    H = rnn.hidden_size
    with torch.no_grad():
        for k in range(rnn.num_layers):
            p = rnn.layer_params(k)
            if "b_ih" not in p:
                return
            b = torch.log(1 + torch.rand(H, generator=gen) * (t_max - 2))
            rows = {g: slice(j * H, (j + 1) * H) for j, g in enumerate(gates)}
            p["b_ih"][rows[keep]] = b
            p["b_hh"][rows[keep]] = 0.0
            if "i" in rows:
                p["b_ih"][rows["i"]] = -b
                p["b_hh"][rows["i"]] = 0.0


class SequenceModel(nn.Module):
    """One recurrent layer (``cell``: a name of ``lstmkit.variants.VARIANTS``) and a linear readout.

    forward(batch) -> (B, K) at each sequence's last valid step, or (T, B, K) per step.
    """

    def __init__(self, cell: str, task: MemoryTask, hidden_size: int, *, chrono: bool = True,
                 seed: int = 0, backend: str = "auto"):
        super().__init__()
        entry = variant(cell)
        gen = torch.Generator().manual_seed(seed)
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            # backend only where chosen: the parallel members (minlstm, mingru) take none
            self.rnn = entry.build(task.input_size, hidden_size,
                                   **({} if backend == "auto" else {"backend": backend}))
            self.readout = nn.Linear(hidden_size, task.output_size)
        if chrono:
            chrono_init(self.rnn, task.horizon, gen)
        self.per_step = task.per_step

    def forward(self, batch: Batch) -> Tensor:
        y, _ = self.rnn(batch.x, lengths=batch.lengths)            # (T, B, H)
        if not self.per_step:
            last = (batch.lengths - 1) if batch.lengths is not None else \
                torch.full((batch.size,), y.shape[0] - 1)
            y = y[last, torch.arange(batch.size)]                    # (B, H)
        return self.readout(y)


def default_hidden_size(task: MemoryTask) -> int:
    """Small models learn these tasks fastest per sequence (few units to align)."""
    return 64 if task.name == "copy" else 32


__all__ = ["chrono_init", "SequenceModel", "default_hidden_size"]
