"""Bridges to the outside: torch.nn modules, checkpoints, ONNX."""
from .from_torch import from_torch
from .onnx import export_onnx

__all__ = ["export_onnx", "from_torch"]
