"""Bridges to the outside: torch.nn modules, checkpoint files, ONNX (formats only, no task knowledge)."""
from .checkpoint import CheckpointError
from .from_torch import from_torch
from .onnx import export_onnx

__all__ = ["CheckpointError", "export_onnx", "from_torch"]
