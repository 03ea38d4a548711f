"""Shared by the language-model tests: a few KB of real text and a tiny training recipe."""
from __future__ import annotations

import shutil
import sysconfig
from pathlib import Path

from safetensors.torch import load_file

from lstmkit.cli import main

# tiny model, tiny batches: a step takes milliseconds
TINY = ["--hidden", "16", "--embed", "8", "--batch-size", "4", "--bptt", "8", "--eval-tokens", "256",
        "--eval-every", "6", "--checkpoint-every", "4", "--warmup", "3", "--lr", "1e-2",
        "--sample-length", "20", "--quiet"]


def small_text(folder: Path) -> Path:
    """About 8 KB of Python source (deterministic on a given interpreter)."""
    src = Path(sysconfig.get_paths()["stdlib"]) / "colorsys.py"
    path = folder / "small.txt"
    text = src.read_text()
    path.write_text((text * 3)[:8000])
    return path


def train(out: Path, text: Path, *extra: str) -> int:
    return main(["train", "--text", str(text), "--out", str(out), *TINY, *extra])


def weights(run: Path) -> dict:
    return load_file(str(run / "model.safetensors"))


def copy_run(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst
