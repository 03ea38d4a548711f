"""The temporal-order problem of Hochreiter & Schmidhuber 1997, experiment 6b (3 symbols).

Inputs one-hot over 8 symbols {a, b, c, d, B, E, X, Y}. A sequence of length L in
[T, T + T/10] starts with E, ends with B, and is otherwise random among a, b, c, d except
at three times t1 ∈ [0.10 T, 0.20 T], t2 ∈ [0.33 T, 0.43 T], t3 ∈ [0.66 T, 0.76 T]
(the paper's [10, 20], [33, 43], [66, 76] for T = 100), which hold X or Y. The class is the
order of the three (XXX ... YYY: 8 classes), read at the last step. A sequence is correct
when every output is within 0.3 of its target, i.e. p(class) > 0.7 with a softmax; solved
when at most 1 of 2560 test sequences is wrong, as for the adding problem. test_error is the
fraction wrong; chance is 7/8.
"""
from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from .base import Batch, JitteredTask, Score, randint

A, B_END, E_START, X = 0, 4, 5, 6          # a..d = 0..3, B = 4, E = 5, X = 6, Y = 7
WINDOWS = ((0.10, 0.20), (0.33, 0.43), (0.66, 0.76))


class TemporalOrder(JitteredTask):
    name = "order"
    unit = "fraction wrong"
    input_size = 8
    output_size = 8
    min_length = 10

    @property
    def baseline(self) -> float:
        return 7 / 8

    def sample(self, n: int, gen: torch.Generator) -> Batch:
        T, Tmax = self.length, self.horizon
        lengths = randint(Tmax + 1, (n,), gen, low=T)
        cols = torch.arange(n)
        sym = randint(4, (Tmax, n), gen) + A
        sym[0] = E_START
        y = torch.zeros(n, dtype=torch.long)
        for lo, hi in WINDOWS:                # windows are disjoint and inside [1, T - 2]
            t = randint(round(hi * T) + 1, (n,), gen, low=max(1, round(lo * T)))
            bit = randint(2, (n,), gen)
            sym[t, cols] = X + bit
            y = 2 * y + bit
        sym[lengths - 1, cols] = B_END
        x = F.one_hot(sym, 8).float() * (torch.arange(Tmax)[:, None, None] < lengths[None, :, None])
        return Batch(x, y, lengths)

    def loss(self, out: Tensor, batch: Batch) -> Tensor:
        return F.cross_entropy(out, batch.y)

    def score(self, out: Tensor, batch: Batch) -> Score:
        p = out.softmax(-1).gather(1, batch.y[:, None])[:, 0]
        wrong = int((p <= 0.7).sum())
        return Score(float(wrong), wrong, batch.size)

    def solved(self, score: Score) -> bool:
        return score.wrong <= score.n / 2560
