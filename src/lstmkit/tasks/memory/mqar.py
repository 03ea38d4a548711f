"""Multi-query associative recall (MQAR; Arora et al. 2023, arXiv 2312.04927, "Zoology"), the
recall task of the xLSTM paper (Beck et al. 2024, arXiv 2405.04517, §4.1): what a matrix memory
(mLSTM: C += v kᵀ, read C q) is for.

A sequence of T steps: K = T // 4 key-value pairs, one pair per step (keys distinct), then
T − K queries, each a key drawn from the K; at each query the target is that key's value. A step
is the key's one-hot (V keys) beside the value's one-hot (V values; zeros at a query), V =
max(16, K); the readout (V classes) is scored at the query steps only. One pair per step rather
than Zoology's key token then value token: a single layer whose gates and k, v read x_t alone
(the mLSTM) cannot bind two steps' tokens; the paper's mLSTM block puts a causal convolution
before q and k for that. test_error is the fraction of queries answered wrong
(argmax), averaged per sequence; chance is 1 − 1/V; a sequence is wrong when any query is;
solved at 1 % of queries wrong.
"""
from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from .base import Batch, MemoryTask, Score

SOLVED = 0.01
IGNORE = -100          # no target (the pairs): cross_entropy's ignore_index


class MultiQueryRecall(MemoryTask):
    name = "mqar"
    unit = "fraction of queries wrong"
    per_step = True
    min_length = 8

    def __init__(self, length: int):
        super().__init__(length)
        self.pairs = length // 4
        self.vocab = max(16, self.pairs)
        self.input_size = 2 * self.vocab
        self.output_size = self.vocab

    @property
    def baseline(self) -> float:
        return 1 - 1 / self.vocab

    def sample(self, n: int, gen: torch.Generator) -> Batch:
        K, V, T = self.pairs, self.vocab, self.length
        keys = torch.rand(n, V, generator=gen).argsort(-1)[:, :K]            # (B, K) distinct
        values = (torch.rand(n, K, generator=gen) * V).long()
        pick = (torch.rand(n, T - K, generator=gen) * K).long()              # which pair each query asks
        key_tok = torch.cat([keys, keys.gather(1, pick)], 1)                 # (B, T)
        x = torch.zeros(T, n, 2 * V)
        x[:, :, :V] = F.one_hot(key_tok.t(), V).float()
        x[:K, :, V:] = F.one_hot(values.t(), V).float()
        y = torch.full((T, n), IGNORE, dtype=torch.long)
        y[K:] = values.gather(1, pick).t()
        return Batch(x, y)

    def loss(self, out: Tensor, batch: Batch) -> Tensor:
        return F.cross_entropy(out.reshape(-1, out.shape[-1]), batch.y.reshape(-1), ignore_index=IGNORE)

    def score(self, out: Tensor, batch: Batch) -> Score:
        q = batch.y != IGNORE                                                 # (T, B)
        bad = (out.argmax(-1) != batch.y) & q
        frac = bad.sum(0).float() / q.sum(0)
        return Score(float(frac.sum()), int(bad.any(0).sum()), batch.size)

    def solved(self, score: Score) -> bool:
        return score.error <= SOLVED

    def promising(self, score: Score) -> bool:
        return score.error <= SOLVED
