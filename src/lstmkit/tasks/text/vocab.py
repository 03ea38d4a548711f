"""Tokenisation and the vocabulary (saved in the run as vocab.json).

char: every character is a token.  word: words (\\w+), single punctuation marks and
newlines are tokens; decoding joins them with single spaces (so it is not a perfect
inverse, as for any word-level LM). Id 0 is <unk>: characters or words outside the
vocabulary (rarer than the ``max_size`` most frequent ones) map to it.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

import numpy as np

UNK = "<unk>"
WORD = re.compile(r"\w+|[^\w\s]|\n")
KINDS = ("char", "word")


@dataclass
class Vocab:
    kind: str            # "char" | "word"
    tokens: list[str]    # id -> token; tokens[0] is UNK

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"tokens: expected one of {KINDS}, got {self.kind!r}")
        self.index = {t: i for i, t in enumerate(self.tokens)}

    def __len__(self) -> int:
        return len(self.tokens)

    @classmethod
    def build(cls, text: str, kind: str, max_size: int) -> "Vocab":
        """The ``max_size - 1`` most frequent tokens (ties: by token) plus <unk>."""
        if kind not in KINDS:
            raise ValueError(f"tokens: expected one of {KINDS}, got {kind!r}")
        counts = Counter(text) if kind == "char" else Counter(WORD.findall(text))
        counts.pop(UNK, None)
        kept = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:max_size - 1]
        return cls(kind, [UNK] + sorted(t for t, _ in kept))

    def split(self, text: str) -> list[str]:
        return list(text) if self.kind == "char" else WORD.findall(text)

    def encode(self, text: str) -> np.ndarray:
        """Text -> int64 ids (unknown tokens -> 0)."""
        if self.kind == "char":                  # vectorised: a lookup over code points
            cps = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
            known = np.array(sorted(ord(t) for t in self.tokens[1:]), dtype=np.uint32)
            ids = np.array([self.index[chr(c)] for c in known], dtype=np.int64)
            pos = np.searchsorted(known, cps).clip(max=max(len(known) - 1, 0))
            hit = known[pos] == cps if len(known) else np.zeros(len(cps), bool)
            return np.where(hit, ids[pos] if len(known) else 0, 0).astype(np.int64)
        return np.array([self.index.get(t, 0) for t in WORD.findall(text)], dtype=np.int64)

    def unknown(self, text: str) -> list[str]:
        """Tokens of ``text`` outside the vocabulary, in order of first appearance."""
        return list(dict.fromkeys(t for t in self.split(text) if t not in self.index or t == UNK))

    def decode(self, ids, prev: str = "") -> str:
        """ids -> text. ``prev``: the token before (word level: decides the joining space)."""
        out = []
        for i in ids:
            t = self.tokens[int(i)]
            if self.kind == "char":
                out.append("\ufffd" if int(i) == 0 else t)
                continue
            if prev and prev != "\n" and t != "\n":
                out.append(" ")
            out.append(t)
            prev = t
        return "".join(out)

    def to_json(self) -> dict:
        return {"kind": self.kind, "tokens": self.tokens}

    @classmethod
    def from_json(cls, d: dict) -> "Vocab":
        if not isinstance(d, dict) or d.get("kind") not in KINDS or not isinstance(d.get("tokens"), list) \
                or not d["tokens"] or d["tokens"][0] != UNK:
            raise ValueError("vocab.json: not an lstmkit vocabulary")
        return cls(d["kind"], d["tokens"])
