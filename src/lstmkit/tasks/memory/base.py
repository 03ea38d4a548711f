"""What every long-time-lag task shares: a batch, an additive score and the task interface.

A task draws batches from a ``torch.Generator`` (so a seed fixes every sequence), turns the
model's readout into a training loss, and scores predictions in the unit of its chance
baseline (MSE for the adding tasks, nats per step for copy, fraction wrong for order and
Reber), so that ``test_error`` and ``baseline`` are directly comparable.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class Batch:
    """x: (T, B, D) inputs.  y: targets, shape per task.  lengths: (B,) valid steps or None
    when every sequence has T steps (padding past a length is zero and masked)."""

    x: Tensor
    y: Tensor
    lengths: Tensor | None = None

    @property
    def size(self) -> int:
        return self.x.shape[1]


@dataclass(frozen=True)
class Score:
    """Additive over batches: error_sum / n is the mean error per sequence (baseline unit);
    wrong counts the sequences that fail the paper's per-sequence criterion."""

    error_sum: float = 0.0
    wrong: int = 0
    n: int = 0

    def __add__(self, other: "Score") -> "Score":
        return Score(self.error_sum + other.error_sum, self.wrong + other.wrong, self.n + other.n)

    @property
    def error(self) -> float:
        return self.error_sum / max(self.n, 1)

    @property
    def wrong_rate(self) -> float:
        return self.wrong / max(self.n, 1)


class MemoryTask:
    """Interface of a task. Subclasses set the class attributes and implement the methods.

    per_step: the loss reads the output at every step (copy, Reber) rather than only at the
    last valid step.  horizon: the longest sequence, the T_max of chrono initialisation.
    """

    name: str
    unit: str
    input_size: int
    output_size: int
    per_step: bool = False
    min_length: int = 2

    def __init__(self, length: int):
        if isinstance(length, bool) or not isinstance(length, int):
            raise TypeError(f"length: expected an int, got {type(length).__name__} {length!r}")
        if length < self.min_length:
            raise ValueError(f"length: the {self.name} task needs length >= {self.min_length}, got {length}")
        self.length = length

    @property
    def horizon(self) -> int:
        return self.length

    @property
    def baseline(self) -> float:
        """test_error of the paper's chance / memoryless predictor."""
        raise NotImplementedError

    def sample(self, n: int, gen: torch.Generator) -> Batch:
        raise NotImplementedError

    def loss(self, out: Tensor, batch: Batch) -> Tensor:
        """Training loss (a scalar) of readout ``out``: (B, K), or (T, B, K) when per_step."""
        raise NotImplementedError

    def score(self, out: Tensor, batch: Batch) -> Score:
        raise NotImplementedError

    def solved(self, score: Score) -> bool:
        """The paper's success test on a test-set score."""
        raise NotImplementedError

    def promising(self, score: Score) -> bool:
        """A cheap screen on recent training sequences: worth running the full test set?"""
        return score.wrong_rate <= 0.01


def uniform(shape, gen: torch.Generator, low: float, high: float) -> Tensor:
    return torch.rand(shape, generator=gen) * (high - low) + low


def randint(high: Tensor | int, shape, gen: torch.Generator, low: int | Tensor = 0) -> Tensor:
    """Integers in [low, high) elementwise (high, low may be tensors of ``shape``)."""
    return (low + (torch.rand(shape, generator=gen) * (torch.as_tensor(high) - low)).floor()).long()


def step_mask(batch: Batch) -> Tensor:
    """(T, B) float: 1 on valid steps, 0 on padding."""
    T, B = batch.x.shape[:2]
    if batch.lengths is None:
        return batch.x.new_ones(T, B)
    return (torch.arange(T)[:, None] < batch.lengths[None, :]).to(batch.x.dtype)


class JitteredTask(MemoryTask):
    """A task whose sequence lengths are drawn from U[T, T + T/10], as in the 1997
    experiments (jitter=False: every sequence has exactly T steps)."""

    def __init__(self, length: int, jitter: bool = True):
        super().__init__(length)
        self.jitter = jitter

    @property
    def horizon(self) -> int:
        return self.length + (self.length // 10 if self.jitter else 0)
