"""The copy-memory task of Arjovsky, Shah & Bengio 2016 (arXiv 1511.06464), section 4.1, and
its selective variant (Gu & Dao 2023, arXiv 2312.00752, section 3.1; the task of Feng et al.
2024, arXiv 2410.01201, table 1).

Symbols 0..7 are data, 8 the blank, 9 the delimiter (inputs one-hot over 10). A sequence of
T + 20 steps: 10 data symbols ~ U{0..7}, T - 1 blanks, the delimiter, 10 blanks. The target
is the blank for the first T + 10 steps, then the 10 data symbols in order (9 output
classes). The loss is the cross-entropy averaged over all T + 20 steps. The memoryless
baseline outputs blanks, then a uniform guess over the 8 data symbols: 10·ln 8 / (T + 20)
nats per step; beating it (by 1 %: solved at test CE < 0.99 × baseline) means something
was remembered across T steps. A sequence is
counted wrong when any of its 10 recalled symbols is wrong (argmax).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.nn import functional as F

from .base import Batch, MemoryTask, Score, randint

N_DATA, BLANK, DELIM, N_RECALL = 8, 8, 9, 10
BEAT = 0.99          # "beats the baseline": at least 1 % below it, not a rounding tie


class Copy(MemoryTask):
    name = "copy"
    unit = "nats/step"
    input_size = 10
    output_size = 9
    per_step = True
    min_length = 2

    @property
    def horizon(self) -> int:
        return self.length + 2 * N_RECALL

    @property
    def baseline(self) -> float:
        return N_RECALL * math.log(N_DATA) / self.horizon

    def sample(self, n: int, gen: torch.Generator) -> Batch:
        T, L = self.length, self.horizon
        data = randint(N_DATA, (N_RECALL, n), gen)
        sym = torch.full((L, n), BLANK, dtype=torch.long)
        sym[:N_RECALL] = data
        sym[N_RECALL + T - 1] = DELIM
        y = torch.full((L, n), BLANK, dtype=torch.long)
        y[-N_RECALL:] = data
        return Batch(F.one_hot(sym, 10).float(), y)

    def loss(self, out: Tensor, batch: Batch) -> Tensor:
        return F.cross_entropy(out.reshape(-1, out.shape[-1]), batch.y.reshape(-1))

    def score(self, out: Tensor, batch: Batch) -> Score:
        ce = F.cross_entropy(out.permute(1, 2, 0), batch.y.t(), reduction="none").mean(1)   # (B,)
        wrong = (out[-N_RECALL:].argmax(-1) != batch.y[-N_RECALL:]).any(0)
        return Score(float(ce.sum()), int(wrong.sum()), batch.size)

    def solved(self, score: Score) -> bool:
        return score.error < BEAT * self.baseline

    def promising(self, score: Score) -> bool:
        return score.error < BEAT * self.baseline


class SelectiveCopy(Copy):
    """Selective copy: the 10 data symbols sit at random positions among the first T + 9 steps
    (in order, blanks between), not at the start; the rest as ``Copy`` (delimiter at step
    T + 9, the symbols to recall in the last 10 steps, the same baseline). A fixed lag cannot
    solve it: the model must select what to keep by content (Gu & Dao 2023, arXiv 2312.00752)."""

    name = "selective-copy"

    def sample(self, n: int, gen: torch.Generator) -> Batch:
        T, L = self.length, self.horizon
        data = randint(N_DATA, (N_RECALL, n), gen)
        where = torch.rand(T + N_RECALL - 1, n, generator=gen).argsort(0)[:N_RECALL].sort(0).values
        sym = torch.full((L, n), BLANK, dtype=torch.long)
        sym.scatter_(0, where, data)
        sym[N_RECALL + T - 1] = DELIM
        y = torch.full((L, n), BLANK, dtype=torch.long)
        y[-N_RECALL:] = data
        return Batch(F.one_hot(sym, 10).float(), y)
