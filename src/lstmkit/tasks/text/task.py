"""Language modelling as a ``lstmkit.train.Task``: truncated BPTT over parallel streams.

The training ids are cut into B contiguous streams (columns); step s trains on rows
[j·T, (j+1)·T) of every stream, j = s mod (segments per epoch), predicting each next
token, and the final state of one segment is the initial state of the next (detached:
truncated BPTT, Williams & Peng 1990). The batch is a pure function of the step and the
carried state is saved in every checkpoint, which makes resume exact. Each DDP rank
takes a contiguous block of B / world streams.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn

from ...specs import LSTMState
from .model import detach_state

LN2 = math.log(2.0)


def nll(logits: Tensor, targets: Tensor) -> Tensor:
    """Mean cross-entropy in nats over every (t, b)."""
    return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


@torch.no_grad()
def evaluate_ids(model: nn.Module, ids: np.ndarray | Tensor, *, streams: int = 32, bptt: int = 256,
                 device: torch.device | str = "cpu") -> tuple[float, int]:
    """-> (mean nats per predicted token, number of tokens predicted), the model in eval mode
    with its state carried through each of up to ``streams`` contiguous streams."""
    was = model.training
    model.eval()
    ids = torch.as_tensor(ids, dtype=torch.long)
    n = len(ids) - 1
    if n < 1:
        raise ValueError(f"text: expected at least 2 tokens to evaluate, got {len(ids)}")
    B = max(1, min(streams, n // 64))
    L = n // B
    x = torch.stack([ids[b * L:b * L + L + 1] for b in range(B)], 1).to(device)   # (L+1, B)
    total, state = 0.0, None
    for s in range(0, L, bptt):
        e = min(s + bptt, L)
        logits, state = model(x[s:e], state)
        total += float(nll(logits, x[s + 1:e + 1])) * (e - s) * B
    model.train(was)
    return total / (L * B), L * B


class TextTask:
    """``Task`` for next-token prediction. train_ids / val_ids: int64 token ids; batch_size:
    global B (streams); bptt: T; eval_tokens: validation tokens scored at each evaluation."""

    unit = "token"

    def __init__(self, train_ids: np.ndarray, val_ids: np.ndarray, *, kind: str, batch_size: int,
                 bptt: int, eval_tokens: int, device: torch.device | str = "cpu"):
        L = (len(train_ids) - 1) // batch_size
        if L < bptt + 1:
            raise ValueError(f"text: {len(train_ids)} training tokens are too few for batch_size="
                             f"{batch_size} × bptt={bptt} (need more than {batch_size * (bptt + 1)}); "
                             f"use more text or smaller --batch-size/--bptt")
        if len(val_ids) < 2:
            raise ValueError("text: the validation split has fewer than 2 tokens; use more text")
        ids = torch.as_tensor(np.asarray(train_ids[:batch_size * L + 1]), dtype=torch.long)
        self.x = torch.stack([ids[b * L:b * L + L + 1] for b in range(batch_size)], 1)   # (L+1, B)
        self.val = np.asarray(val_ids[:eval_tokens + 1])
        self.kind, self.B, self.T, self.device = kind, batch_size, bptt, torch.device(device)
        self.segments = L // bptt
        self.items_per_step = batch_size * bptt
        self.metric_names = ("val_loss", "val_bpc" if kind == "char" else "val_ppl")
        self.rows = slice(0, batch_size)
        self.state = None

    def shard(self, rank: int, world: int) -> None:
        if self.B % world:
            raise ValueError(f"batch_size: {self.B} streams cannot be split evenly over {world} processes")
        n = self.B // world
        self.rows = slice(rank * n, (rank + 1) * n)

    def batch(self, step: int) -> tuple[Tensor, Tensor, bool]:
        j = step % self.segments
        x = self.x[j * self.T:(j + 1) * self.T + 1, self.rows].to(self.device)
        return x[:-1], x[1:], j == 0

    def loss(self, model: nn.Module, batch) -> Tensor:
        x, y, fresh = batch
        logits, state = model(x, None if fresh else self.state)   # a new epoch starts from zeros
        self.state = detach_state(state)
        return nll(logits, y)

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        loss, _ = evaluate_ids(model, self.val, device=self.device)
        return {"val_loss": loss, self.metric_names[1]: loss / LN2 if self.kind == "char" else math.exp(loss)}

    def state_tensors(self) -> dict[str, Tensor]:
        if self.state is None:
            return {}
        parts = (self.state,) if isinstance(self.state, Tensor) else tuple(self.state)
        return {f"state.{i}": s for i, s in enumerate(parts)}

    def load_state_tensors(self, tensors: dict[str, Tensor]) -> None:
        parts = [tensors[f"state.{i}"][:, self.rows].to(self.device) for i in range(len(tensors))]
        if not parts:
            self.state = None
        else:
            self.state = parts[0] if len(parts) == 1 else LSTMState(*parts)
