"""Training a cell on a memory task with the shared loop (``lstmkit.train.fit``): fresh
sequences every step, plain Adam at a constant rate, clipping, and the paper's success test
run whenever recent training sequences look solved.

``LabConfig`` holds the lab's settings in sequences (the unit of the 1997 experiments) and
turns them into the loop's ``TrainConfig``; ``MemoryTraining`` is the loop's ``Task``.
Training sequences are never reused (as in the 1997 experiments), so "sequences to solve"
counts every training sequence seen.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ...train import TrainConfig
from .base import Batch, MemoryTask, Score

TEST_SEED_OFFSET = 1_000_003       # the test set's stream never overlaps the training one


@dataclass(frozen=True)
class LabConfig:
    """budget: training sequences at most.  batch_size: sequences per update.
    lr: Adam step size (Kingma & Ba 2014, arXiv 1412.6980).  clip: max global gradient
    norm (Pascanu et al. 2013, arXiv 1211.5063).  eval_every: sequences between curve
    points and test screens.  test_size: the 1997 test set size.  average: decay of an
    exponential moving average of the weights to test instead of the raw weights (Polyak
    & Juditsky 1992); 0 (default) tests the raw weights. Measured on adding T = 100, an
    average of 0.98 made the LSTM pass later (mean 18,955 vs 16,043 sequences over 3
    seeds): the average lags the weights while they still improve.
    seed: fixes init, training and test sequences."""

    budget: int = 20_000
    batch_size: int = 16
    lr: float = 1e-2
    clip: float = 1.0
    eval_every: int = 1024
    test_size: int = 2560
    average: float = 0.0
    seed: int = 0

    def __post_init__(self):
        for name in ("budget", "batch_size", "eval_every", "test_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ValueError(f"{name}: expected a positive int, got {v!r}")
        if not self.lr > 0 or not self.clip > 0:
            raise ValueError(f"lr, clip: expected positive floats, got lr={self.lr}, clip={self.clip}")
        if not 0 <= self.average < 1:
            raise ValueError(f"average: expected a float in [0, 1), got {self.average}")

    def train_config(self) -> TrainConfig:
        """The loop's settings: one step per batch (the last one may be short), an
        evaluation every ``eval_every`` sequences (rounded up to whole batches)."""
        steps = math.ceil(self.budget / self.batch_size)
        every = math.ceil(self.eval_every / self.batch_size)
        return TrainConfig(steps=steps, lr=self.lr, clip=self.clip, optimizer="adam", schedule="constant",
                           weight_decay=0.0, ema=self.average, seed=self.seed, eval_every=every,
                           log_every=every, ckpt_every=steps)


def make_test_set(task: MemoryTask, cfg: LabConfig) -> Batch:
    """The fixed test set: cfg.test_size sequences from a stream disjoint from training."""
    gen = torch.Generator().manual_seed(cfg.seed + TEST_SEED_OFFSET)
    return task.sample(cfg.test_size, gen)


@torch.no_grad()
def score(model: nn.Module, task: MemoryTask, batch: Batch, chunk: int = 640) -> Score:
    """Score on a (large) batch, in chunks to bound memory."""
    was = model.training
    model.eval()
    total = Score()
    for s in range(0, batch.size, chunk):
        sl = slice(s, s + chunk)
        part = type(batch)(batch.x[:, sl], batch.y[sl] if not task.per_step else batch.y[:, sl],
                           None if batch.lengths is None else batch.lengths[sl])
        total = total + task.score(model(part), part)
    model.train(was)
    return total


class MemoryTraining:
    """The shared loop's ``Task`` for a memory task: train until the test set passes
    ``task.solved`` or ``cfg.budget`` sequences are spent (``fit`` with ``cfg.train_config()``).

    batch(step): the next ``batch_size`` sequences of one seeded stream (the last batch is cut
    to the budget); a step out of order replays the stream up to it, so the batch is a pure
    function of the step. evaluate(model): a curve point (mean training error over the
    sequences since the last one) and, when they look solved (``task.promising``), the test
    set. After training: ``seen`` sequences, ``solved_at`` (sequences seen when the test set
    first passed, None if never), ``curve`` [(sequences seen, training error)].
    The lab trains without a run directory: the training window is not checkpointed.
    """

    unit = "seq"
    metric_names = ("train_error", "train_wrong", "test_error")

    def __init__(self, task: MemoryTask, cfg: LabConfig, test: Batch | None = None):
        self.task, self.cfg = task, cfg
        self.test = test if test is not None else make_test_set(task, cfg)
        self.items_per_step = cfg.batch_size
        self.gen, self.next_step = torch.Generator().manual_seed(cfg.seed), 0
        self.window, self.seen, self.solved_at = Score(), 0, None
        self.curve: list[tuple[int, float]] = []

    def shard(self, rank: int, world: int) -> None:
        if world != 1:
            raise ValueError(f"world: the memory lab trains in one process, got {world}")

    def _draw(self) -> Batch:
        n = min(self.cfg.batch_size, self.cfg.budget - self.next_step * self.cfg.batch_size)
        self.next_step += 1
        return self.task.sample(n, self.gen)

    def batch(self, step: int) -> Batch:
        if step != self.next_step:
            self.gen.manual_seed(self.cfg.seed)
            self.next_step = 0
            while self.next_step < step:
                self._draw()
        return self._draw()

    def loss(self, model: nn.Module, batch: Batch) -> Tensor:
        out = model(batch)
        with torch.no_grad():
            self.window = self.window + self.task.score(out.detach(), batch)
        self.seen += batch.size
        return self.task.loss(out, batch)

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        self.curve.append((self.seen, self.window.error))
        metrics = {"train_error": self.window.error, "train_wrong": self.window.wrong_rate}
        if self.task.promising(self.window):
            test = score(model, self.task, self.test)
            metrics["test_error"] = test.error
            if self.task.solved(test):
                self.solved_at = self.seen
        self.window = Score()
        return metrics

    def should_stop(self) -> bool:
        return self.solved_at is not None

    def test_score(self, model: nn.Module) -> Score:
        """The full test set's score (after training: pass ``FitResult.averaged`` when set)."""
        return score(model, self.task, self.test)

    def state_tensors(self) -> dict[str, Tensor]:
        return {}

    def load_state_tensors(self, tensors: dict[str, Tensor]) -> None:
        pass


__all__ = ["LabConfig", "MemoryTraining", "make_test_set", "score", "TEST_SEED_OFFSET"]
