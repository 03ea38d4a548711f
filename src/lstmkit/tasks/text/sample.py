"""Sampling from a language model, one token at a time, as a stream of text pieces."""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

from . import mixture
from .ngram import KneserNey
from .vocab import Vocab


@torch.no_grad()
def sample(model: nn.Module, vocab: Vocab, prompt: str = "", length: int = 500, *, temperature: float = 0.8,
           top_k: int = 0, seed: int = 0, device: torch.device | str = "cpu",
           ngram: tuple[KneserNey, np.ndarray] | None = None) -> Iterator[str]:
    """Yield the decoded text of each sampled token.

    The prompt conditions the state (an empty prompt starts from a newline). Char level:
    a prompt with characters outside the vocabulary is a ValueError naming them (the
    model has no embedding for them). Word level: unknown words read as <unk>, the
    token the model was trained to see for them. temperature 0 = greedy (argmax);
    top_k > 0 keeps the k most likely tokens. ngram = (n-gram, weights λ_b): sample from
    the mixture λ_b P_model + (1 − λ_b) P_ngram of mixture.py (``run.load_mixture``).
    """
    if not isinstance(length, int) or length < 0:
        raise ValueError(f"length: expected an int >= 0, got {length!r}")
    if not temperature >= 0:
        raise ValueError(f"temperature: expected a float >= 0, got {temperature!r}")
    if not isinstance(top_k, int) or top_k < 0:
        raise ValueError(f"top_k: expected an int >= 0, got {top_k!r}")
    if vocab.kind == "char":
        bad = vocab.unknown(prompt)
        if bad:
            shown = "".join(bad[:10])
            raise ValueError(f"prompt: {len(bad)} character(s) not in the run's vocabulary: {shown!r}")
    ids = vocab.encode(prompt or "\n").tolist() or [0]
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    logits, state = model(torch.tensor(ids, device=device)[:, None], None)
    prev = vocab.tokens[ids[-1]]
    for _ in range(length):
        z = logits[-1, 0].float().cpu()
        if ngram is not None:
            kn, weights = ngram
            p = mixture.next_probs(torch.softmax(z.double(), -1).numpy(), kn.next_probs(ids),
                                   weights[kn.next_evidence(ids)])
            z = torch.from_numpy(np.log(p))
        if temperature == 0:
            nxt = int(z.argmax())
        else:
            z = z / temperature
            if top_k and top_k < len(z):
                kth = z.topk(top_k).values[-1]
                z = z.masked_fill(z < kth, float("-inf"))
            nxt = int(torch.multinomial(torch.softmax(z, -1), 1, generator=gen))
        yield vocab.decode([nxt], prev)
        ids.append(nxt)
        prev = vocab.tokens[nxt]
        logits, state = model(torch.tensor([[nxt]], device=device), state)
