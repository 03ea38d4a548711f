"""Parity: the formal-language task the xLSTM paper (Beck et al. 2024, arXiv 2405.04517, §4.1
and its appendix) uses to show state tracking, which the sLSTM's memory mixing can do and
linear recurrences (mLSTM, minLSTM, Mamba-like) cannot: reading a bit string, say whether it
holds an odd number of ones.

Inputs one-hot over the two bits {0, 1}; a sequence's length is drawn from U[T/2, T] (so that
the answer cannot be read off the position); the class (2) is read at the last valid step.
test_error is the fraction of sequences classified wrong (argmax); chance is 1/2; solved at
99 % right.
"""
from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from .base import Batch, MemoryTask, Score, randint

SOLVED = 0.01          # fraction wrong at most


class Parity(MemoryTask):
    name = "parity"
    unit = "fraction wrong"
    input_size = 2
    output_size = 2
    min_length = 2

    @property
    def baseline(self) -> float:
        return 0.5

    def sample(self, n: int, gen: torch.Generator) -> Batch:
        T = self.length
        lengths = randint(T + 1, (n,), gen, low=max(1, T // 2))
        valid = torch.arange(T)[:, None] < lengths[None, :]                   # (T, B)
        bits = randint(2, (T, n), gen) * valid
        x = F.one_hot(bits, 2).float() * valid.unsqueeze(-1)
        return Batch(x, bits.sum(0) % 2, lengths)

    def loss(self, out: Tensor, batch: Batch) -> Tensor:
        return F.cross_entropy(out, batch.y)

    def score(self, out: Tensor, batch: Batch) -> Score:
        wrong = int((out.argmax(-1) != batch.y).sum())
        return Score(float(wrong), wrong, batch.size)

    def solved(self, score: Score) -> bool:
        return score.wrong_rate <= SOLVED
