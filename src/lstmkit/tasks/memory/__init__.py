"""Long-time-lag memory tasks (the experiments that introduced the LSTM) and a small lab
to train gated and ungated cells on them and to watch gradients flow back in time.

``make_task(name, length)`` builds a task; every task draws its sequences from a seeded
``torch.Generator`` and scores predictions against its paper's criterion and chance baseline.
"""
from __future__ import annotations

from .adding import Adding, AddingArjovsky
from .base import Batch, MemoryTask, Score
from .copy import Copy, SelectiveCopy
from .mqar import MultiQueryRecall
from .order import TemporalOrder
from .parity import Parity
from .reber import EmbeddedReber

TASKS: dict[str, type[MemoryTask]] = {
    "adding": Adding, "adding-arjovsky": AddingArjovsky, "copy": Copy, "selective-copy": SelectiveCopy,
    "order": TemporalOrder, "reber": EmbeddedReber, "parity": Parity, "mqar": MultiQueryRecall,
}


def make_task(name: str, length: int) -> MemoryTask:
    """The task ``name`` (a key of TASKS) at sequence length ``length``."""
    if name not in TASKS:
        raise ValueError(f"task: expected one of {', '.join(TASKS)}, got {name!r}")
    return TASKS[name](length)


__all__ = ["TASKS", "make_task", "Batch", "MemoryTask", "Score", "Adding", "AddingArjovsky",
           "Copy", "SelectiveCopy", "TemporalOrder", "EmbeddedReber", "Parity", "MultiQueryRecall"]
