"""Text corpora: the default (the running interpreter's standard library source) or the
user's UTF-8 files, read in a deterministic order and split deterministically into
training and validation text. The split is recorded in the run (corpus.json) so that
``evaluate`` can refit its n-gram yardstick on exactly the training text.
"""
from __future__ import annotations

import hashlib
import sysconfig
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from . import corpora

STDLIB = "<stdlib>"
TEST_DIRS = {"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__"}
VAL_PERCENT = 5           # share of files (or of the text, for few files) held out for validation
MIN_FILES_FOR_FILE_SPLIT = 20


class CorpusError(ValueError):
    """Text that cannot be used (missing, empty, binary, not UTF-8); one-line message."""


@dataclass
class Corpus:
    """train / val: the two texts.  record: what was read and how it was split (JSON)."""

    train: str
    val: str
    record: dict = field(default_factory=dict)


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def _stdlib_files(root: Path) -> list[Path]:
    """Every .py file of the standard library, sorted, without its test suites (which hold
    deliberately malformed files) and without installed third-party packages."""
    return sorted(p for p in root.rglob("*.py") if not TEST_DIRS & set(p.relative_to(root).parts[:-1]))


def _read(path: Path, strict: bool) -> str | None:
    """The file's text; None (strict=False) or CorpusError (strict) when it is not UTF-8 text."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise CorpusError(f"{path}: cannot read ({e.strerror})") from None
    if b"\x00" in data[:65536]:
        if strict:
            raise CorpusError(f"{path}: binary file (contains NUL bytes), expected UTF-8 text")
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        if strict:
            raise CorpusError(f"{path}: not UTF-8 text (invalid byte at offset {e.start})") from None
        return None
    if strict and not text.strip():
        raise CorpusError(f"{path}: empty file, expected text")
    return text.removeprefix("\ufeff")


def load_corpus(paths: list[str] | None = None) -> Corpus:
    """Read the corpus. ``paths``: files and/or folders (None: the standard library), or one
    named corpus (``corpus:kjv``, ``corpus:kjv:heldout``, ...: ``corpora``).

    A file named explicitly must be non-empty UTF-8 text (else CorpusError); inside a
    folder, files that are binary or not UTF-8 are skipped (and counted in the record),
    and a folder without any text is an error. Files are read in sorted order.
    """
    files: list[tuple[Path, str, bool]] = []          # (path, name recorded, strict)
    if paths and any(corpora.is_named(p) for p in paths):
        if len(paths) != 1:
            raise CorpusError(f"{', '.join(paths)}: a named corpus is read alone, not with other paths")
        try:
            text, source = corpora.named_text(paths[0])
        except corpora.NamedCorpusError as e:
            raise CorpusError(str(e)) from None
        return _split([text], [paths[0]], {**source, "paths": list(paths), "skipped_files": 0})
    if not paths:
        root = stdlib_root()
        files = [(p, p.relative_to(root).as_posix(), False) for p in _stdlib_files(root)]
        source = {"kind": "stdlib", "root": str(root), "excluded_dirs": sorted(TEST_DIRS)}
    else:
        for given in paths:
            p = Path(given)
            if p.is_dir():
                found = sorted(q for q in p.rglob("*") if q.is_file()
                               and not any(part.startswith(".") for part in q.relative_to(p).parts))
                # names relative to the folder: the split must not depend on where it lives
                files += [(q, q.relative_to(p).as_posix(), False) for q in found]
            elif p.is_file():
                files.append((p, p.name, True))
            else:
                raise CorpusError(f"{given}: no such file or folder")
        source = {"kind": "paths", "paths": [str(Path(q).resolve()) for q in paths]}
    texts, names, skipped = [], [], 0
    for path, name, strict in files:
        t = _read(path, strict)
        if t is None or not t.strip():
            skipped += 1
            continue
        texts.append(t if t.endswith("\n") else t + "\n")
        names.append(name)
    if not texts:
        where = ", ".join(paths) if paths else str(stdlib_root())
        raise CorpusError(f"{where}: no UTF-8 text found ({skipped} file(s) skipped as binary, "
                          f"non-UTF-8 or empty)")
    return _split(texts, names, {**source, "skipped_files": skipped})


def _split(texts: list[str], names: list[str], source: dict) -> Corpus:
    """Whole files by a hash of their name when there are many (stable when files are added),
    else the last VAL_PERCENT of the concatenated text."""
    val_mask = [zlib.crc32(n.encode()) % 100 < VAL_PERCENT for n in names]
    if len(names) >= MIN_FILES_FOR_FILE_SPLIT and 0 < sum(val_mask) < len(names):
        train = "".join(t for t, v in zip(texts, val_mask) if not v)
        val = "".join(t for t, v in zip(texts, val_mask) if v)
        rule = {"rule": "files", "detail": f"crc32(name) % 100 < {VAL_PERCENT} -> validation"}
    else:
        text = "".join(texts)
        cut = len(text) - max(1, len(text) * VAL_PERCENT // 100)
        train, val = text[:cut], text[cut:]
        rule = {"rule": "tail", "detail": f"last {VAL_PERCENT}% of the concatenated text -> validation",
                "val_start_char": cut}
        val_mask = [False] * len(names)
    record = {**source, **rule, "files": [[n, "val" if v else "train"] for n, v in zip(names, val_mask)],
              "train_chars": len(train), "val_chars": len(val),
              "train_sha256": sha256(train), "val_sha256": sha256(val)}
    return Corpus(train, val, record)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def reload_corpus(record: dict) -> Corpus:
    """The corpus of a run, read again from its record; CorpusError if the text changed."""
    paths = None if record.get("kind") == "stdlib" else record.get("paths")
    if record.get("kind") == "stdlib" and str(stdlib_root()) != record.get("root"):
        raise CorpusError(f"the run was trained on the standard library at {record.get('root')}, "
                          f"this interpreter's is at {stdlib_root()}")
    corpus = load_corpus(paths)
    if corpus.record["train_sha256"] != record.get("train_sha256"):
        raise CorpusError("the run's training text has changed on disk since training "
                          "(SHA-256 differs from corpus.json)")
    return corpus


def read_text(path: str) -> str:
    """One evaluation text: a file or a folder, with the rules of ``load_corpus``, unsplit."""
    c = load_corpus([path])
    return c.train + c.val
