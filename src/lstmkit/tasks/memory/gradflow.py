"""Gradient flow back in time: the norm of ∂L/∂h_t at every step t before the loss.

For a plain RNN, ∂L/∂h_t = ∂L/∂h_T · Π_{s>t} diag(1 - h_s²) W_hh, a product that shrinks
(or grows) geometrically with T - t (Hochreiter 1991; Bengio et al. 1994; Pascanu et al.
2013, arXiv 1211.5063). In an LSTM the cell path ∂c_s/∂c_{s-1} = diag(f_s) is the
"constant error carousel": with forget gates near 1 the gradient reaches far back.

The layer is stepped one time step at a time so that h_t (and c_t) are the very tensors fed
to step t + 1 and to the readout; ``retain_grad`` then gives the *total* derivative through
the recurrence (the layer's stacked output would only give the direct readout term).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .base import Batch, MemoryTask
from .models import SequenceModel


@dataclass(frozen=True)
class GradFlow:
    """grad_h[k], grad_c[k]: mean over sequences of ‖∂L/∂h‖ and ‖∂L/∂c‖ k steps back from the
    last step (k = 0 is the step the loss reads); grad_c is None for cells without c."""

    cell: str
    phase: str
    grad_h: list[float]
    grad_c: list[float] | None
    loss: float


def gradient_norms(model: SequenceModel, task: MemoryTask, batch: Batch) -> tuple[Tensor, Tensor | None, float]:
    """-> (‖∂L/∂h_t‖ per t, ‖∂L/∂c_t‖ per t or None, L), t = 0..T-1, each a mean over the batch.
    The batch must have one length for all sequences (``lengths`` None or all equal T)."""
    T, B = batch.x.shape[:2]
    if batch.lengths is not None and not bool((batch.lengths == T).all()):
        raise ValueError("batch: gradient_norms needs sequences of one length (build the task with jitter=False)")
    state, hs, cs = None, [], []
    for t in range(T):
        _, state = model.rnn(batch.x[t:t + 1], state)
        for v, keep in ((state[0], hs), (state[1], cs)) if isinstance(state, tuple) else ((state, hs),):
            v.retain_grad()
            keep.append(v)
    top = torch.stack([h[-1] for h in hs])                      # (T, B, H)
    out = model.readout(top if task.per_step else top[-1])
    loss = task.loss(out, Batch(batch.x, batch.y, None))
    model.zero_grad(set_to_none=True)
    loss.backward()

    def norms(vs):               # B × ∂(mean loss) = per-sequence ∂; no grad: the state is unused
        return torch.stack([torch.zeros(()) if v.grad is None else (v.grad[-1] * B).norm(dim=-1).mean()
                            for v in vs])
    return norms(hs), (norms(cs) if cs else None), float(loss.detach())


def measure(cell: str, model: SequenceModel, task: MemoryTask, batch: Batch, phase: str) -> GradFlow:
    g_h, g_c, loss = gradient_norms(model, task, batch)
    flip = lambda v: None if v is None else v.flip(0).tolist()   # noqa: E731  index = steps back
    return GradFlow(cell, phase, flip(g_h), flip(g_c), loss)
