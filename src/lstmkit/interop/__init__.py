"""Bridges to the outside: torch.nn modules, checkpoints, ONNX."""
from .checkpoint import CheckpointError, load_run
from .from_torch import from_torch

__all__ = ["from_torch", "load_run", "CheckpointError"]
