"""Shared by the language-model tests: a few KB of real text and a tiny training recipe."""
from __future__ import annotations

import sysconfig
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from lstmkit.cli import main

# tiny model, tiny batches: a step takes milliseconds
TINY = ["--hidden", "16", "--embed", "8", "--batch-size", "4", "--bptt", "8", "--eval-tokens", "256",
        "--eval-every", "6", "--checkpoint-every", "4", "--warmup", "3", "--lr", "1e-2",
        "--sample-length", "20", "--quiet"]


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models gain nothing from threads, and on a shared, busy machine extra
    threads only spin: every test here runs single-threaded, then restores the setting."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def small_text(folder: Path) -> Path:
    """About 8 KB of Python source (deterministic on a given interpreter)."""
    src = Path(sysconfig.get_paths()["stdlib"]) / "colorsys.py"
    path = folder / "small.txt"
    text = src.read_text()
    path.write_text((text * 3)[:8000])
    return path


def train(out: Path, text: Path, *extra: str) -> int:
    return main(["train", "--text", str(text), "--out", str(out), *TINY, *extra])


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A 12-step tiny run on small_text, one per test module: (run folder, text file)."""
    tmp = tmp_path_factory.mktemp("lm")
    text = small_text(tmp)
    assert train(tmp / "run", text, "--steps", "12") == 0
    return tmp / "run", text


def weights(run: Path) -> dict:
    return load_file(str(run / "model.safetensors"))
