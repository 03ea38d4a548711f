"""The gate report of a trained text run: pick a text, check it against the vocabulary,
record the gates, analyse, write the page and its PNGs (``lstmkit inspect`` calls this)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..tasks.text import reload_corpus
from .analysis import GateReport, analyse, record
from .html import write_html
from .plots import write_pngs

# r over 2,000 characters rests on a handful of strings and lines; over 20,000 it settles
# (docs/inspect.md). The page colours only the first DEFAULT_SHOW: it holds T × H × 7 bytes
# per layer-direction.
DEFAULT_CHARS = 20_000
DEFAULT_SHOW = 2_000


@dataclass(frozen=True)
class Written:
    """What ``write_report`` wrote: the page and the PNG figures beside it."""

    html: Path
    pngs: dict[str, Path]


def clip_text(text: str, chars: int) -> str:
    """The first ``chars`` characters, cut after the last newline when there is one."""
    if len(text) <= chars:
        return text
    cut = text[:chars]
    return cut[:cut.rfind("\n") + 1] if "\n" in cut[:-1] else cut


def validation_text(info, chars: int) -> str:
    """The start of the run's validation text: whole held-out files from their first line
    (so the string and bracket scanner starts in a known state), up to ``chars``."""
    rec = info.corpus or {}
    files = [name for name, part in rec.get("files", []) if part == "val"]
    if rec.get("rule") == "files" and files:
        parts, n = [], 0
        for name in files:
            p = Path(rec["root"]) / name if rec.get("kind") == "stdlib" else Path(name)
            if not p.is_file():
                continue
            t = p.read_text(encoding="utf-8", errors="strict").removeprefix("\ufeff")
            parts.append(t if t.endswith("\n") else t + "\n")
            n += len(parts[-1])
            if n >= chars:
                break
        if parts:
            return clip_text("".join(parts), chars)
    return clip_text(reload_corpus(rec).val, chars)


def check_text(text: str, vocab) -> None:
    """ValueError for an empty text or characters the run's vocabulary does not hold."""
    if not text:
        raise ValueError("text: empty, expected at least one character")
    if vocab.kind != "char":
        raise ValueError(f"run: the gate report reads one character per step, this run is {vocab.kind}-level")
    unknown = vocab.unknown(text)
    if unknown:
        shown = ", ".join(repr(c) for c in unknown[:5]) + (" ..." if len(unknown) > 5 else "")
        raise ValueError(f"text: {len(unknown)} character(s) outside the run's vocabulary: {shown}")


def inspect_run(model: torch.nn.Module, info, text: str | None = None, chars: int = DEFAULT_CHARS,
                kind: str = "auto", k: int = 3) -> GateReport:
    """Record and analyse ``model`` (a text run from ``interop.checkpoint.load_run``) over
    ``text`` (default: the start of the run's validation text), clipped to ``chars``."""
    text = validation_text(info, chars) if text is None else clip_text(text, chars)
    check_text(text, info.vocab)
    x = torch.as_tensor(info.vocab.encode(text), dtype=torch.long)[:, None]     # (T, 1)
    device = next(model.parameters()).device
    return analyse(record(model, x.to(device), text), kind, k)


def write_report(report: GateReport, out: str | Path, title: str, show: int = DEFAULT_SHOW) -> Written:
    """``out`` (an .html path) and ``<stem>_saturation.png``, ``_memory.png``, ``_units.png``;
    the page colours the first ``show`` characters (cut after a newline), the figures and
    the table of units cover the whole text."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    pngs = write_pngs(report, out.parent, out.stem)
    show = len(clip_text(report.activations.text, show))
    return Written(write_html(report, out, title, pngs, show), pngs)
