"""The yardstick: an interpolated Kneser-Ney n-gram model (Kneser & Ney 1995; Chen &
Goodman 1998, "An empirical study of smoothing techniques", §3.5), one discount per order.

For a context u of k tokens (k = N−1 at the top, u' = u without its oldest token):

    P_k(w | u) = max(c_k(u w) − D_k, 0) / c_k(u •)  +  D_k · N1+(u •) / c_k(u •) · P_{k−1}(w | u')
    P_k(w | u) = P_{k−1}(w | u')                     when c_k(u •) = 0 (unseen context)
    P_0(w)     = max(c_0(w) − D_0, 0) / c_0(•)  +  D_0 · N1+(•) / c_0(•) · 1/V

c_{N−1} are raw counts; lower orders use continuation counts c_k(u w) = N1+(• u w), the
number of distinct tokens seen before u w. N1+(u •): distinct w after u.
D_k = n1 / (n1 + 2 n2) from the count-of-counts of c_k. The text is padded on the left
with N−1 BOS tokens. Everything is counted with numpy over integer codes of the n-grams
(token ids in base V+1), so fitting a 12M-character corpus takes seconds.
"""
from __future__ import annotations

import numpy as np

COUNT_BUCKETS = 16           # ⌊log₂ c(u •)⌋ = 0 .. 15 for a seen full context (evidence)


def _lookup(keys: np.ndarray, values: np.ndarray, query: np.ndarray) -> np.ndarray:
    """values[keys == q] for each q, 0 where q is absent (keys sorted, unique)."""
    if not len(keys):
        return np.zeros(len(query), dtype=values.dtype)
    pos = np.searchsorted(keys, query).clip(max=len(keys) - 1)
    return np.where(keys[pos] == query, values[pos], 0)


class KneserNey:
    """fit(ids) then log_probs(ids) -> natural-log P(w_t | history) for every t; next_probs(history)
    -> P(w | history) for every w (sampling); evidence(ids): how much the model knows of each context."""

    def __init__(self, order: int, vocab_size: int):
        if order < 1:
            raise ValueError(f"order: expected an int >= 1, got {order}")
        self.order, self.V, self.base = order, vocab_size, vocab_size + 1   # id V = BOS
        if float(self.base) ** order >= 2 ** 62:
            raise ValueError(f"order: {order}-grams over {vocab_size} tokens do not fit int64 codes; "
                             f"use a lower order")
        self.levels: list[dict] = []

    def _codes(self, ids: np.ndarray) -> list[np.ndarray]:
        """codes[k][t] = w_t + base·(w_{t−1} + base·(… w_{t−k})): the (k+1)-gram ending at t."""
        n = self.order
        pad = np.concatenate([np.full(n - 1, self.V, dtype=np.int64), np.asarray(ids, dtype=np.int64)])
        T = len(ids)
        codes = [pad[n - 1:].copy()]
        for k in range(1, n):
            codes.append(codes[-1] + pad[n - 1 - k:n - 1 - k + T] * self.base ** k)
        return codes

    def fit(self, ids: np.ndarray) -> "KneserNey":
        codes = self._codes(ids)
        uniq = [np.unique(c) for c in codes]
        self.levels = []
        for k in range(self.order):
            if k == self.order - 1:                          # raw counts at the top order
                grams, counts = np.unique(codes[k], return_counts=True)
            else:                                            # continuation counts N1+(• u w)
                grams, counts = np.unique(uniq[k + 1] % self.base ** (k + 1), return_counts=True)
            n1, n2 = int((counts == 1).sum()), int((counts == 2).sum())
            D = n1 / (n1 + 2 * n2) if n1 and n2 else 0.5
            ctx, first = np.unique(grams // self.base, return_index=True)
            total = np.add.reduceat(counts, first) if len(first) else counts[:0]
            types = np.diff(np.append(first, len(grams)))
            self.levels.append(dict(grams=grams, counts=counts, D=D, ctx=ctx, total=total, types=types))
        return self

    def log_probs(self, ids: np.ndarray) -> np.ndarray:
        """ln P(w_t | w_<t) for every position (the first ones see BOS padding)."""
        return np.log(self._probs(self._codes(ids)))

    def next_probs(self, history) -> np.ndarray:
        """P(w | the last N−1 tokens of ``history``) for every w: (V,), summing to 1."""
        return self._probs(self._next_codes(history))

    def evidence(self, ids: np.ndarray) -> np.ndarray:
        """What the n-gram knows of each position's context: the bucket (0 .. buckets−1) of
        ``mixture.py``. With u the N−1 tokens before t: k < N−1 when u is unseen and its
        longest seen suffix has k tokens; N−1 + min(⌊log₂ c(u •)⌋, COUNT_BUCKETS−1) when u
        was seen c(u •) times."""
        return self._evidence(self._codes(ids))

    def next_evidence(self, history) -> int:
        """``evidence`` of the position after ``history``."""
        return int(self._evidence([c[:1] for c in self._next_codes(history)])[0])

    @property
    def buckets(self) -> int:
        return self.order - 1 + COUNT_BUCKETS

    def _next_codes(self, history) -> list[np.ndarray]:
        """codes[k] of (history, w) for every candidate w, as ``_codes`` would give at the end."""
        n = self.order
        tail = [self.V] * (n - 1) + [int(i) for i in history[max(len(history) - (n - 1), 0):]]
        codes, ctx = [], 0
        for k in range(n):
            codes.append(np.arange(self.V, dtype=np.int64) + ctx * self.base)
            ctx += tail[len(tail) - 1 - k] * self.base ** k if k < n - 1 else 0
        return codes

    def _fitted(self) -> None:
        if not self.levels:
            raise RuntimeError("KneserNey: call fit() first")

    def _probs(self, codes: list[np.ndarray]) -> np.ndarray:
        self._fitted()
        p = np.full(codes[0].shape, 1.0 / self.V)
        for k, lv in enumerate(self.levels):
            c = _lookup(lv["grams"], lv["counts"], codes[k]).astype(np.float64)
            u = codes[k] // self.base
            tot = _lookup(lv["ctx"], lv["total"], u).astype(np.float64)
            typ = _lookup(lv["ctx"], lv["types"], u).astype(np.float64)
            seen = tot > 0
            safe = np.where(seen, tot, 1.0)
            mixed = np.maximum(c - lv["D"], 0) / safe + lv["D"] * typ / safe * p
            p = np.where(seen, mixed, p)
        return p

    def _evidence(self, codes: list[np.ndarray]) -> np.ndarray:
        self._fitted()
        b = np.zeros(codes[0].shape, dtype=np.int64)
        for k, lv in enumerate(self.levels):
            tot = _lookup(lv["ctx"], lv["total"], codes[k] // self.base)
            if k == self.order - 1:
                count = np.minimum(np.log2(np.maximum(tot, 1)).astype(np.int64), COUNT_BUCKETS - 1)
                b = np.where(tot > 0, k + count, b)
            else:
                b = np.where(tot > 0, k, b)
        return b
