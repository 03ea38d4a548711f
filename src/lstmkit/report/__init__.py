"""Plots and the HTML gate report."""
from .analysis import (Activations, GateReport, MemorySpan, Saturation, UnitCorrelation, analyse,
                       correlations, memory_spans, record, saturation, top_units)
from .features import TextFeatures, text_features

__all__ = ["Activations", "GateReport", "MemorySpan", "Saturation", "UnitCorrelation", "analyse",
           "correlations", "memory_spans", "record", "saturation", "top_units", "TextFeatures",
           "text_features"]
