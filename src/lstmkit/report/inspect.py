"""The gate report of a trained char-level model: check a text against the vocabulary,
record the gates, analyse, write the page and its PNGs (``lstmkit inspect`` calls this with
a run's model, vocabulary and text; the run's held-out text comes from its task)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

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


def inspect_run(model: torch.nn.Module, vocab, text: str, chars: int = DEFAULT_CHARS,
                kind: str = "auto", k: int = 3) -> GateReport:
    """Record and analyse ``model`` (a char language model, e.g. a text run's from
    ``tasks.runs.load_run``) over ``text`` clipped to ``chars``; ``vocab`` encodes it."""
    text = clip_text(text, chars)
    check_text(text, vocab)
    x = torch.as_tensor(vocab.encode(text), dtype=torch.long)[:, None]     # (T, 1)
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
