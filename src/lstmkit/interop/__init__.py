"""Bridges to the outside: torch.nn modules, checkpoints, ONNX."""
from .from_torch import from_torch

__all__ = ["from_torch"]
