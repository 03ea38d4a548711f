"""The adding problem, in its two forms.

``adding``: Hochreiter & Schmidhuber 1997 (Neural Computation 9(8)), experiment 4. Each step
is a pair (value, marker), value ~ U[-1, 1]. Lengths are drawn in [T, T + T/10]. X1 is marked
(marker 1) among the first 10 pairs, X2 among the first T/2 - 1 still unmarked pairs; the
first and last pairs carry marker -1 (a marked first pair gets value 0). Target
y = 0.5 + (X1 + X2)/4. A sequence is correct when |ŷ - y| < 0.04; the task is solved when at
most 1 of 2560 test sequences is wrong. Predicting 0.5 gives MSE E[(X1 + X2)²]/16 = 1/24.

``adding-arjovsky``: Arjovsky, Shah & Bengio 2016 (arXiv 1511.06464): values ~ U[0, 1], T
steps, one marker in each half, target the plain sum s. Predicting E[s] = 1 gives MSE
Var(s) = 2/12 = 1/6. The paper gives no pass mark; we call it solved at test MSE < 0.01
(6 % of chance), and count a sequence wrong when |ŝ - s| >= 0.16 (the 1997 tolerance on s).

Target scaling: the readout r predicts the centred sum (ŷ = 0.5 + r/4, resp. ŝ = 1 + r), so
an untrained readout (r ≈ 0) already sits at the chance prediction and the loss is MSE on s,
16 times the 1997 MSE, which keeps gradients of a useful size before clipping.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .base import Batch, JitteredTask, MemoryTask, Score, randint, uniform

TOLERANCE = 0.04          # |ŷ - y| below this is correct (1997)


class Adding(JitteredTask):
    name = "adding"
    unit = "MSE"
    input_size = 2
    output_size = 1
    min_length = 2

    @property
    def baseline(self) -> float:
        return 1.0 / 24.0

    def sample(self, n: int, gen: torch.Generator) -> Batch:
        T, Tmax = self.length, self.horizon
        lengths = randint(Tmax + 1, (n,), gen, low=T)
        x = torch.zeros(Tmax, n, 2)
        x[:, :, 0] = uniform((Tmax, n), gen, -1.0, 1.0)
        x[:, :, 0] *= torch.arange(Tmax)[:, None] < lengths[None, :]          # zero padding
        cols = torch.arange(n)
        x[0, :, 1] = -1.0
        x[lengths - 1, cols, 1] = -1.0
        w2 = max(2, T // 2 - 1)                    # X2 among the first T/2 - 1 pairs
        w1 = min(10, w2 - 1)                       # X1 among the first 10 (one left for X2)
        i1 = randint(w1, (n,), gen)
        r = randint(w2 - 1, (n,), gen)
        i2 = r + (r >= i1).long()                  # uniform over the first w2 pairs except i1
        x[i1, cols, 1] = 1.0
        x[i2, cols, 1] = 1.0
        x[0, :, 0] *= x[0, :, 1] != 1.0            # a marked first pair has value 0 (1997)
        y = 0.5 + (x[i1, cols, 0] + x[i2, cols, 0]) / 4
        return Batch(x, y, lengths)

    def predict(self, out: Tensor) -> Tensor:
        return 0.5 + out[:, 0] / 4

    def loss(self, out: Tensor, batch: Batch) -> Tensor:
        return ((out[:, 0] - 4 * (batch.y - 0.5)) ** 2).mean()

    def score(self, out: Tensor, batch: Batch) -> Score:
        err = self.predict(out) - batch.y
        return Score(float((err ** 2).sum()), int((err.abs() >= TOLERANCE).sum()), batch.size)

    def solved(self, score: Score) -> bool:
        return score.wrong <= score.n / 2560


class AddingArjovsky(MemoryTask):
    name = "adding-arjovsky"
    unit = "MSE"
    input_size = 2
    output_size = 1
    min_length = 2

    @property
    def baseline(self) -> float:
        return 1.0 / 6.0

    def sample(self, n: int, gen: torch.Generator) -> Batch:
        T, half = self.length, self.length // 2
        x = torch.zeros(T, n, 2)
        x[:, :, 0] = torch.rand((T, n), generator=gen)
        cols = torch.arange(n)
        i1 = randint(half, (n,), gen)
        i2 = randint(T, (n,), gen, low=half)
        x[i1, cols, 1] = 1.0
        x[i2, cols, 1] = 1.0
        return Batch(x, x[i1, cols, 0] + x[i2, cols, 0])

    def predict(self, out: Tensor) -> Tensor:
        return 1.0 + out[:, 0]

    def loss(self, out: Tensor, batch: Batch) -> Tensor:
        return ((self.predict(out) - batch.y) ** 2).mean()

    def score(self, out: Tensor, batch: Batch) -> Score:
        err = self.predict(out) - batch.y
        return Score(float((err ** 2).sum()), int((err.abs() >= 4 * TOLERANCE).sum()), batch.size)

    def solved(self, score: Score) -> bool:
        return score.error < 0.01

    def promising(self, score: Score) -> bool:
        return score.error < 0.02
