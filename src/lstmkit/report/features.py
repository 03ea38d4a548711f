"""Features of a text, one value per character, to name what a unit tracks.

Each feature is the state *after reading* the character, as the LSTM's state is after
consuming it: an opening quote is already inside the string, a closing quote is outside
again, a newline is at column 0 with no indentation yet. The scanner is hand-written and
never fails: a text cut anywhere (an unterminated string, unbalanced brackets, a lone
quote) gives features all the same. Python's ``tokenize`` is used only in the tests, to
check the scanner on complete files.

Code (Python-like; Karpathy, Johnson & Fei-Fei 2015, arXiv 1506.02078, found cells for
these in C source): in_string, in_triple_string, in_comment, bracket_depth, indentation,
position_in_line. Prose: in_quotes, position_in_line.

Strings are two features because they are two states for a reader of Python: a one-line
literal ('...', "...") is a few characters of code, a triple-quoted string is (almost
always) a docstring, lines of prose. Their union tracks neither: on the default run the
best unit for the union reaches |r| = 0.49 over 12,000 held-out characters, for the
one-line literal 0.69 and for the triple-quoted string 0.68 (docs/inspect.md).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

CODE_FEATURES = ("in_string", "in_triple_string", "in_comment", "bracket_depth", "indentation", "position_in_line")
PROSE_FEATURES = ("in_quotes", "position_in_line")
KINDS = ("auto", "code", "prose")

_OPEN, _CLOSE = "([{", ")]}"
_CODE_LINE = re.compile(r"^\s*(def |class |import |from \S+ import |return\b|if .*:$|for .*:$|#|@)|[:;{]$| = ")


@dataclass(frozen=True)
class TextFeatures:
    """kind: "code" or "prose".  values: feature name -> (T,) float array, one per character."""

    kind: str
    values: dict[str, np.ndarray]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.values)


def guess_kind(text: str) -> str:
    """"code" when at least 15% of the non-blank lines look like code, else "prose"."""
    lines = [ln.rstrip() for ln in text.splitlines() if ln.strip()]
    if not lines:
        return "prose"
    return "code" if sum(bool(_CODE_LINE.search(ln)) for ln in lines) >= 0.15 * len(lines) else "prose"


def text_features(text: str, kind: str = "auto") -> TextFeatures:
    """Compute the code or prose features of ``text`` (``kind`` "auto" guesses)."""
    if not isinstance(text, str):
        raise TypeError(f"text: expected str, got {type(text).__name__}")
    if kind not in KINDS:
        raise ValueError(f"kind: expected one of {KINDS}, got {kind!r}")
    kind = guess_kind(text) if kind == "auto" else kind
    values = code_features(text) if kind == "code" else prose_features(text)
    return TextFeatures(kind, {k: np.asarray(v, dtype=np.float64) for k, v in values.items()})


def _position_and_indentation(text: str) -> tuple[list[int], list[int]]:
    """Column after each character (newline -> 0) and the leading whitespace seen so far
    on the line (a tab advances to the next multiple of 8, as in Python's tokenizer)."""
    pos, ind = [], []
    col, indent, leading = 0, 0, True
    for ch in text:
        if ch == "\n":
            col, indent, leading = 0, 0, True
        else:
            col += 1
            if leading and ch in " \t":
                indent = indent + 1 if ch == " " else (indent // 8 + 1) * 8
            else:
                leading = False
        pos.append(col)
        ind.append(indent)
    return pos, ind


def code_features(text: str) -> dict[str, list]:
    """Scan Python-like code: one-line strings ('...', "...") and triple-quoted ones, with
    backslash escapes; ``#`` comments; bracket depth outside strings and comments;
    indentation; column."""
    n = len(text)
    in_string, in_triple, in_comment, depth = [0] * n, [0] * n, [0] * n, [0] * n
    mark = in_string     # the open string's feature: in_string or in_triple
    quote = ""           # the open string's delimiter: ', ", ''' or """; "" in code
    comment = False
    level = 0
    t = 0
    while t < n:
        ch = text[t]
        if quote:
            if ch == "\\" and t + 1 < n:          # an escape: the next character cannot close
                mark[t] = mark[t + 1] = 1
                depth[t] = depth[t + 1] = level
                t += 2
                continue
            if text.startswith(quote, t):         # closing delimiter: last char is outside
                for k in range(len(quote) - 1):
                    mark[t + k], depth[t + k] = 1, level
                t += len(quote) - 1
                depth[t] = level
                quote = ""
            elif ch == "\n" and len(quote) == 1:  # unterminated one-line string: recover
                quote = ""
            else:
                mark[t] = 1
            depth[t] = level
        elif comment:
            if ch == "\n":
                comment = False
            else:
                in_comment[t] = 1
            depth[t] = level
        elif ch == "#":
            comment = True
            in_comment[t] = 1
            depth[t] = level
        elif ch in "'\"":
            quote = ch * 3 if text.startswith(ch * 3, t) else ch
            mark = in_triple if len(quote) == 3 else in_string
            for k in range(len(quote)):
                mark[t + k], depth[t + k] = 1, level
            t += len(quote)
            continue
        else:
            if ch in _OPEN:
                level += 1
            elif ch in _CLOSE:
                level = max(0, level - 1)        # text may start inside brackets
            depth[t] = level
        t += 1
    pos, ind = _position_and_indentation(text)
    return {"in_string": in_string, "in_triple_string": in_triple, "in_comment": in_comment, "bracket_depth": depth,
            "indentation": ind, "position_in_line": pos}


def prose_features(text: str) -> dict[str, list]:
    """Inside double quotes ("..." or “...”), reset at a blank line (an unclosed quote ends
    with its paragraph), and the column. Single quotes are mostly apostrophes: ignored."""
    inside, out = False, []
    prev = ""
    for ch in text:
        if ch == "\n" and prev == "\n":
            inside = False
        elif ch == '"':
            inside = not inside
        elif ch == "\u201c":
            inside = True
        elif ch == "\u201d":
            inside = False
        out.append(int(inside))
        prev = ch
    pos, _ = _position_and_indentation(text)
    return {"in_quotes": out, "position_in_line": pos}
