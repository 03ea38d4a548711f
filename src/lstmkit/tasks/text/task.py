"""Language modelling as a ``lstmkit.train.Task``: truncated BPTT over parallel streams.

Each step trains on B streams (columns) × T tokens, predicting every next token; the
final state of one segment is the initial state of the next (detached: truncated BPTT,
Williams & Peng 1990). The batch is a pure function of the step and the carried state is
saved in every checkpoint, which makes resume exact. Each DDP rank takes a contiguous
block of B / world streams.

Two data orders (``order``):

- "shuffled" (the default): the training ids are cut into chunks of ``chunk`` tokens; each
  epoch draws, from the seed and the epoch number, a random offset of the chunk grid and a
  random permutation of the chunks, and stream b reads its share of the permuted chunks
  one after the other, T tokens per step. The state starts from zeros at the start of
  every chunk. So every step sees B random places of the text, and no place is tied to a
  position in the epoch.
- "fixed": the text is cut into B contiguous streams read in the same order every epoch
  (state reset at each epoch's start). Every step j of an epoch sees the same B places as
  step j of the epoch before: the places the model saw last, and so its validation score,
  cycle with the epoch. On 0.9 MB that cycle put the validation figure of the run in the
  issue 14 report 0.4 bits apart from one evaluation to the next; docs/language-model.md
  has the measurements.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn

from .model import detach_state

LN2 = math.log(2.0)
ORDERS = ("shuffled", "fixed")


def nll(logits: Tensor, targets: Tensor) -> Tensor:
    """Mean cross-entropy in nats over every (t, b)."""
    return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def _streams(ids: Tensor, n: int, streams: int) -> tuple[Tensor, int]:
    """ids cut into B contiguous streams of L + 1 tokens (one overlapping): -> ((L+1, B), L)."""
    B = max(1, min(streams, n // 64))
    L = n // B
    return torch.stack([ids[b * L:b * L + L + 1] for b in range(B)], 1), L


@torch.no_grad()
def token_losses(model: nn.Module, ids: np.ndarray | Tensor, *, streams: int = 32, bptt: int = 256,
                 device: torch.device | str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """-> (nats (n,), position (n,)): the loss of every predicted token, the model in eval mode
    with its state carried through each of up to ``streams`` contiguous streams (from zeros
    at each stream's start). position[k]: the index in ``ids`` of the token predicted."""
    was = model.training
    model.eval()
    ids = torch.as_tensor(ids, dtype=torch.long)
    n = len(ids) - 1
    if n < 1:
        raise ValueError(f"text: expected at least 2 tokens to evaluate, got {len(ids)}")
    x, L = _streams(ids, n, streams)
    x = x.to(device)
    B = x.shape[1]
    out, state = torch.empty(L, B, dtype=torch.float64), None
    for s in range(0, L, bptt):
        e = min(s + bptt, L)
        logits, state = model(x[s:e], state)
        out[s:e] = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(),
                                               x[s + 1:e + 1].reshape(-1), reduction="none").view(e - s, B).cpu()
    model.train(was)
    pos = (torch.arange(B)[None, :] * L + torch.arange(L)[:, None] + 1)
    return out.T.reshape(-1).numpy(), pos.T.reshape(-1).numpy()


def evaluate_ids(model: nn.Module, ids: np.ndarray | Tensor, *, streams: int = 32, bptt: int = 256,
                 device: torch.device | str = "cpu") -> tuple[float, int]:
    """-> (mean nats per predicted token, number of tokens predicted); see ``token_losses``."""
    nats, _ = token_losses(model, ids, streams=streams, bptt=bptt, device=device)
    return float(nats.mean()), len(nats)


class TextTask:
    """``Task`` for next-token prediction. train_ids / val_ids: int64 token ids; batch_size:
    global B (streams); bptt: T; eval_tokens: validation tokens scored at each evaluation;
    order: "shuffled" | "fixed" (module docstring); chunk: tokens per chunk ("shuffled",
    rounded down to a multiple of T, and shortened for a short text so that it has at least
    8 chunks per stream); seed: the data order's seed."""

    unit = "token"
    best_metric = "val_loss"          # the loop keeps the weights of the lowest

    def __init__(self, train_ids: np.ndarray, val_ids: np.ndarray, *, kind: str, batch_size: int,
                 bptt: int, eval_tokens: int, device: torch.device | str = "cpu", order: str = "fixed",
                 chunk: int = 4096, seed: int = 0):
        if order not in ORDERS:
            raise ValueError(f"order: expected one of {ORDERS}, got {order!r}")
        n = len(train_ids) - 1
        if n // batch_size < bptt + 1 or (order == "shuffled" and n // ((batch_size + 1) * bptt) < 1):
            raise ValueError(f"text: {len(train_ids)} training tokens are too few for batch_size="
                             f"{batch_size} × bptt={bptt} (need more than {(batch_size + 1) * (bptt + 1)}); "
                             f"use more text or smaller --batch-size/--bptt")
        if len(val_ids) < 2:
            raise ValueError("text: the validation split has fewer than 2 tokens; use more text")
        self.ids = torch.as_tensor(np.asarray(train_ids), dtype=torch.long)
        self.val = np.asarray(val_ids[:eval_tokens + 1])
        self.kind, self.B, self.T, self.device = kind, batch_size, bptt, torch.device(device)
        self.order, self.seed = order, seed
        if order == "fixed":
            L = n // batch_size
            self.x = torch.stack([self.ids[b * L:b * L + L + 1] for b in range(batch_size)], 1)   # (L+1, B)
            self.chunk_segments, self.segments = L // bptt, L // bptt
        else:
            # chunks of C = S·T tokens; K of them fit after any offset in [0, C): K = n // C − 1.
            # An epoch uses B·(K // B) chunks: shorter chunks for a short text keep K ≥ 8B, so
            # that at most 1/8 of the text waits for the next epoch.
            S = max(1, min(chunk // bptt, n // ((8 * batch_size + 1) * bptt)))
            self.chunk_segments, self.C = S, S * bptt
            self.K = n // self.C - 1
            self.segments = self.K // batch_size * S
        self.items_per_step = batch_size * bptt
        self.metric_names = ("val_loss", "val_bpc" if kind == "char" else "val_ppl")
        self.rows = slice(0, batch_size)
        self.state = None
        self._epoch: tuple[int, int, np.ndarray] | None = None

    def shard(self, rank: int, world: int) -> None:
        if self.B % world:
            raise ValueError(f"batch_size: {self.B} streams cannot be split evenly over {world} processes")
        n = self.B // world
        self.rows = slice(rank * n, (rank + 1) * n)

    def _plan(self, epoch: int) -> tuple[int, np.ndarray]:
        """Epoch ``epoch``'s chunk-grid offset and chunk order (a pure function of seed and epoch)."""
        if self._epoch is None or self._epoch[0] != epoch:
            rng = np.random.default_rng([self.seed, epoch])
            self._epoch = (epoch, int(rng.integers(self.C)), rng.permutation(self.K))
        return self._epoch[1], self._epoch[2]

    def batch(self, step: int) -> tuple[Tensor, Tensor, bool]:
        """-> (inputs (T, B), targets (T, B), fresh): fresh = the state starts from zeros."""
        j = step % self.segments
        if self.order == "fixed":
            x = self.x[j * self.T:(j + 1) * self.T + 1, self.rows].to(self.device)
            return x[:-1], x[1:], j == 0
        offset, perm = self._plan(step // self.segments)
        slot, row = divmod(j, self.chunk_segments)
        per_stream = self.K // self.B
        chunks = perm[np.arange(self.B)[self.rows] * per_stream + slot]
        starts = torch.as_tensor(offset + chunks * self.C + row * self.T)
        x = self.ids[starts[None, :] + torch.arange(self.T + 1)[:, None]].to(self.device)   # (T+1, B)
        return x[:-1], x[1:], row == 0

    def loss(self, model: nn.Module, batch) -> Tensor:
        x, y, fresh = batch
        logits, state = model(x, None if fresh else self.state)   # a new epoch or chunk starts from zeros
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
            self.state = parts[0] if len(parts) == 1 else tuple(parts)    # every family takes a plain tuple
