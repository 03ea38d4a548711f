"""The LSTM and the run's Kneser-Ney n-gram as one model: linear interpolation with weights
bucketed by what the n-gram knows of the context (Jelinek & Mercer 1980; Chen & Goodman 1998
§2.3 bucket their λ by context counts; Mikolov 2011 interpolates RNN and KN language models).

For position t with n-gram context u (the N−1 tokens before t) and its evidence bucket
b(u) (``KneserNey.evidence``: how long a suffix of u the n-gram saw, or how often it saw u):

    P(w | h) = λ_b · P_lstm(w | h) + (1 − λ_b) · P_kn(w | u),     b = b(u), 0 ≤ λ_b ≤ 1

b depends on the context only, so P(· | h) sums to 1 and can be sampled. Each λ_b is the
value in GRID that minimises the mean −ln P over the validation tokens of bucket b; a bucket
with fewer than MIN_TOKENS of them takes the λ chosen for all tokens together. The two
models fail differently: the n-gram copies contexts it has counted (identifiers, names,
formulas repeated in the text) and the LSTM generalises across contexts; the mixture is
below both (docs/language-model.md, "The LSTM and the n-gram together").
"""
from __future__ import annotations

import numpy as np

GRID = np.linspace(0.0, 1.0, 101)
MIN_TOKENS = 200


def _mix(lstm: np.ndarray, ngram: np.ndarray, lam) -> np.ndarray:
    """ln(λ P_lstm + (1 − λ) P_kn) from both ln P; λ a number or one per token."""
    lam = np.clip(lam, 1e-12, 1 - 1e-12)
    return np.logaddexp(np.log(lam) + lstm, np.log1p(-lam) + ngram)


def mix_log_probs(lstm: np.ndarray, ngram: np.ndarray, weights: np.ndarray, bucket: np.ndarray) -> np.ndarray:
    """ln(λ_b P_lstm + (1 − λ_b) P_kn) per token, from both models' ln P and each token's bucket."""
    return _mix(lstm, ngram, np.asarray(weights, dtype=np.float64)[bucket])


def _best(lstm: np.ndarray, ngram: np.ndarray) -> float:
    """The λ of GRID with the lowest mean −ln P on these tokens."""
    return float(GRID[int(np.argmin([-np.mean(_mix(lstm, ngram, g)) for g in GRID]))])


def fit_weights(lstm: np.ndarray, ngram: np.ndarray, bucket: np.ndarray, buckets: int) -> np.ndarray:
    """(buckets,) λ_b chosen on held-out tokens: both models' ln P of each token and its bucket."""
    if not (len(lstm) == len(ngram) == len(bucket)) or len(lstm) == 0:
        raise ValueError(f"fit_weights: expected as many ln P and buckets, at least one, got "
                         f"{len(lstm)}, {len(ngram)}, {len(bucket)}")
    weights = np.full(buckets, _best(lstm, ngram))
    for b in np.unique(bucket):
        m = bucket == b
        if m.sum() >= MIN_TOKENS:
            weights[b] = _best(lstm[m], ngram[m])
    return weights


def next_probs(lstm_probs: np.ndarray, ngram_probs: np.ndarray, weight: float) -> np.ndarray:
    """The mixture's distribution of the next token, from both models' (V,) distributions."""
    return weight * lstm_probs + (1.0 - weight) * ngram_probs
