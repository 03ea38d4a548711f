"""Trained runs on disk, whatever their task: a run's config.json names its task
(``"task"``), and ``LOADERS`` maps that name to the task's loader. The commands that open
runs (``generate``, ``evaluate``, ``export``, ``inspect``) go through ``load_run``; a new
task that saves runs adds its loader here.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from ..interop import checkpoint as ckpt
from .text.run import load_text_run

# task name -> loader(run folder, config.json, device) -> (model in eval mode, task info)
LOADERS: dict[str, Callable[[Path, dict, Any], tuple[nn.Module, Any]]] = {
    "text": load_text_run,
}


def load_run(run_dir: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[nn.Module, Any]:
    """Load a trained run for use: ``-> (model, task_info)``, the model in eval mode.

    ``task_info`` is what the task needs beside the weights: for text runs a
    ``lstmkit.tasks.text.TextRun`` (config, vocabulary, corpus record). Raises
    CheckpointError (one line) for a folder that is not a run, a run of a task this lstmkit
    cannot load, or a missing, corrupt or incompatible file.
    """
    cfg = ckpt.read_config(run_dir)
    task = cfg.get("task")
    loader = LOADERS.get(task) if isinstance(task, str) else None
    if loader is None:
        raise ckpt.CheckpointError(f"{run_dir}: unknown task {task!r} in {ckpt.CONFIG} "
                                   f"(this lstmkit loads runs of: {', '.join(LOADERS)})")
    return loader(Path(run_dir), cfg, device)


__all__ = ["LOADERS", "load_run"]
