"""The embedded Reber grammar (Cleeremans et al. 1989; Hochreiter & Schmidhuber 1997,
experiment 1): next-symbol prediction over {B, T, P, S, X, V, E}.

A string is B, then T or P, then a Reber string, then the same T or P again, then E. The
symbol before the final E can only be predicted by remembering the second symbol across
the inner string. At each step the target is the set of legal successors (multi-hot,
sigmoid outputs). A string is correct when at every step exactly the legal successors have
output > 0.5; solved when every test string is correct (1997). test_error is the fraction of
strings wrong; chance is 1/2 (a predictor that learnt the inner grammar but guesses the
final T/P). ``length`` caps the string length (longer strings are redrawn); at least 9.
"""
from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from .base import Batch, MemoryTask, Score, step_mask

SYMBOLS = "BTPSXVE"
# Reber graph: state -> ((symbol, next state), (symbol, next state)), each with prob 1/2.
GRAPH = {1: (("T", 2), ("P", 3)), 2: (("S", 2), ("X", 4)), 3: (("T", 3), ("V", 5)),
         4: (("X", 3), ("S", 6)), 5: (("P", 4), ("V", 6))}


def reber_string(gen: torch.Generator) -> str:
    s, state = "B", 1
    while state != 6:
        sym, state = GRAPH[state][int(torch.randint(2, (1,), generator=gen))]
        s += sym
    return s + "E"


def embedded_reber_string(gen: torch.Generator) -> str:
    arm = "TP"[int(torch.randint(2, (1,), generator=gen))]
    return "B" + arm + reber_string(gen) + arm + "E"


def legal_successors(s: str) -> list[str]:
    """For each prefix s[:k+1], k < len(s) - 1, the set of symbols that may follow."""
    out = ["TP"]                                  # after the outer B
    arm, inner = s[1], s[2:-2]
    out.append("B")                               # after the arm
    state = 1
    out.append("TP")                              # after the inner B
    for sym in inner[1:-1]:
        state = dict(GRAPH[state])[sym]
        out.append("".join(a for a, _ in GRAPH[state]) if state != 6 else "E")
    out.append(arm)                               # after the inner E
    out.append("E")                               # after the final arm
    return out


class EmbeddedReber(MemoryTask):
    name = "reber"
    unit = "fraction wrong"
    input_size = 7
    output_size = 7
    per_step = True
    min_length = 9

    @property
    def baseline(self) -> float:
        return 0.5

    def sample(self, n: int, gen: torch.Generator) -> Batch:
        strings = []
        while len(strings) < n:
            s = embedded_reber_string(gen)
            if len(s) <= self.length:
                strings.append(s)
        T = max(len(s) for s in strings) - 1
        sym = torch.zeros(T, n, dtype=torch.long)
        y = torch.zeros(T, n, 7)
        for b, s in enumerate(strings):
            sym[:len(s) - 1, b] = torch.tensor([SYMBOLS.index(c) for c in s[:-1]])
            for t, legal in enumerate(legal_successors(s)):
                y[t, b, [SYMBOLS.index(c) for c in legal]] = 1.0
        lengths = torch.tensor([len(s) - 1 for s in strings])
        x = F.one_hot(sym, 7).float() * (torch.arange(T)[:, None, None] < lengths[None, :, None])
        return Batch(x, y, lengths)

    def loss(self, out: Tensor, batch: Batch) -> Tensor:
        m = step_mask(batch)[..., None]
        bce = F.binary_cross_entropy_with_logits(out, batch.y, reduction="none")
        return (bce * m).sum() / (m.sum() * out.shape[-1])

    def score(self, out: Tensor, batch: Batch) -> Score:
        m = step_mask(batch)[..., None].bool()
        bad = ((out > 0) != (batch.y > 0.5)) & m
        wrong = int(bad.any(-1).any(0).sum())
        return Score(float(wrong), wrong, batch.size)

    def solved(self, score: Score) -> bool:
        return score.wrong == 0
