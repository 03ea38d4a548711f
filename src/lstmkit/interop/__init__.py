"""Bridges to the outside: torch.nn modules, checkpoints, ONNX."""
from .checkpoint import CheckpointError, load_run
from .from_torch import from_torch
from .onnx import export_onnx

__all__ = ["CheckpointError", "export_onnx", "from_torch", "load_run"]
