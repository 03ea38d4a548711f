"""What a trained recurrent model does over a text, gate by gate, as named results.

    acts = record(model, x, text)               # runs model(x) inside lstmkit.trace
    report = analyse(acts, kind="auto")         # saturation, memory spans, nameable units

Everything follows Karpathy, Johnson & Fei-Fei 2015, "Visualizing and Understanding
Recurrent Networks" (arXiv 1506.02078): per-unit activations over a text, the fraction of
time each gate unit is saturated, and units whose activation tracks a property of the
text (there: inside quotes, line position, indentation; here found automatically by
correlation with ``features.text_features``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..trace import trace
from .features import TextFeatures, text_features

# Gates squashed by σ (saturation is defined for them): LSTM i, f, o; depth gate d; GRU r, z.
SIGMOID_GATES = ("i", "f", "o", "d", "r", "z")
# The gate that keeps the old state: LSTM c' = f⊙c + ..., GRU h' = ... + z⊙h.
KEEP_GATES = ("f", "z")
LOW, HIGH = 0.1, 0.9      # Karpathy et al.: left-saturated < 0.1, right-saturated > 0.9
SNIPPET = 80              # characters shown with a nameable unit


@dataclass(frozen=True)
class Activations:
    """text: the characters fed, one step each.  records: (layer, direction) -> quantity ->
    (T, H) float32 array: i, f, g, o, c, tanh(c), h for an LSTM (tanh(c), what the cell
    hands the output gate, h = o ⊙ tanh(c), is the quantity Karpathy et al. colour by);
    r, z, n, h for a GRU; h for an RNN."""

    text: str
    records: dict[tuple[int, int], dict[str, np.ndarray]]

    @property
    def keys(self) -> list[tuple[int, int]]:
        return sorted(self.records)

    @property
    def quantities(self) -> tuple[str, ...]:
        return tuple(next(iter(self.records.values())))


@dataclass(frozen=True)
class Saturation:
    """Fraction of time steps each unit of one σ gate spends below LOW (left) or above HIGH
    (right): (H,) arrays in [0, 1]."""

    layer: int
    direction: int
    gate: str
    left: np.ndarray
    right: np.ndarray


@dataclass(frozen=True)
class MemorySpan:
    """Effective memory of each unit, span = mean_t 1 / (1 − f_t), in steps: with a constant
    forget gate f the cell keeps a fraction f^k of a value after k steps, a geometric decay
    with mean lifetime 1 / (1 − f). gate is "f" (LSTM) or "z" (GRU); span is (H,)."""

    layer: int
    direction: int
    gate: str
    span: np.ndarray


@dataclass(frozen=True)
class UnitCorrelation:
    """A unit that tracks a feature: Pearson r of its activation with the feature over the
    text, and the SNIPPET-character window (text[start:start+len(snippet)]) that contributes
    most to r, with the unit's activations over it."""

    feature: str
    layer: int
    direction: int
    quantity: str
    unit: int
    r: float
    start: int
    snippet: str
    values: np.ndarray


@dataclass(frozen=True)
class GateReport:
    activations: Activations
    features: TextFeatures
    saturation: list[Saturation]
    memory_spans: list[MemorySpan]
    top_units: list[UnitCorrelation]
    correlations: dict[tuple[int, int, str], np.ndarray]     # as ``correlations()`` returns

    def best(self, feature: str) -> UnitCorrelation | None:
        """The unit with the largest |r| for ``feature`` (None when the feature is constant)."""
        hits = [u for u in self.top_units if u.feature == feature]
        return max(hits, key=lambda u: abs(u.r)) if hits else None


def record(model: nn.Module, x, text: str) -> Activations:
    """Run ``model(x)`` once under ``lstmkit.trace`` (no grad) and keep batch element 0.

    ``x`` is whatever the model takes for ``text`` with batch size 1 and one time step per
    character of ``text``. Raises TypeError when the model holds no lstmkit recurrent
    module, ValueError when the model holds several or the steps do not match the text.
    """
    if not isinstance(text, str) or not text:
        raise ValueError(f"text: expected a non-empty str, got {text!r:.40}")
    was_training = model.training
    model.eval()                        # dropout / zoneout off: the activations of use
    try:
        with torch.no_grad(), trace(model) as tr:
            model(x)
    finally:
        model.train(was_training)
    names = sorted({k[0] for k in tr.keys()})
    if len(names) != 1:
        raise ValueError(f"model: expected one lstmkit recurrent module, found {names}")
    records = {}
    for _, layer, direction in tr.keys():
        gt = tr[names[0], layer, direction]
        rec = {k: v.detach().to(torch.float32).cpu().numpy() for k, v in gt.items()}
        shape = next(iter(rec.values())).shape
        if shape[0] != len(text) or shape[1] != 1:
            raise ValueError(f"x: expected {len(text)} steps (one per character) and batch 1, "
                             f"the trace holds (T, B) = {shape[:2]}")
        records[layer, direction] = {k: v[:, 0, :] for k, v in rec.items()}
        if "c" in rec:
            records[layer, direction] = _with_tanh_c(records[layer, direction])
    return Activations(text, records)


def _with_tanh_c(rec: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The record with tanh(c) inserted right after c."""
    out = {}
    for k, v in rec.items():
        out[k] = v
        if k == "c":
            out["tanh(c)"] = np.tanh(v)
    return out


def saturation(acts: Activations, low: float = LOW, high: float = HIGH) -> list[Saturation]:
    """Left/right saturation fractions of every σ gate of every layer-direction."""
    out = []
    for key in acts.keys:
        for gate, a in acts.records[key].items():
            if gate in SIGMOID_GATES:
                out.append(Saturation(*key, gate, (a < low).mean(0), (a > high).mean(0)))
    return out


def memory_spans(acts: Activations, eps: float = 1e-6) -> list[MemorySpan]:
    """mean_t 1 / (1 − f_t) per unit; f is clipped at 1 − eps so an open gate gives 1/eps."""
    out = []
    for key in acts.keys:
        for gate in KEEP_GATES:
            if gate in acts.records[key]:
                f = np.minimum(acts.records[key][gate].astype(np.float64), 1.0 - eps)
                out.append(MemorySpan(*key, gate, (1.0 / (1.0 - f)).mean(0)))
    return out


def _standardise(a: np.ndarray) -> np.ndarray:
    """Columns to zero mean, unit variance, in float64; a constant column becomes zeros (r = 0)."""
    a = a - a.mean(0, dtype=np.float64)
    sd = a.std(0)
    return np.divide(a, sd, out=np.zeros_like(a), where=sd > 1e-12)


def correlations(acts: Activations, features: TextFeatures) -> dict[tuple[int, int, str], np.ndarray]:
    """Pearson r of every unit with every feature: (layer, direction, quantity) -> (F, H),
    rows in ``features.names`` order. A constant feature or unit has r = 0."""
    F = _standardise(np.stack([features.values[n] for n in features.names], 1))   # (T, F)
    T = F.shape[0]
    return {(*key, q): F.T @ _standardise(a) / T
            for key in acts.keys for q, a in acts.records[key].items()}


def _best_window(contrib: np.ndarray, width: int) -> int:
    """Start of the ``width``-long window with the largest sum of ``contrib``."""
    if len(contrib) <= width:
        return 0
    c = np.concatenate([[0.0], np.cumsum(contrib)])
    return int(np.argmax(c[width:] - c[:-width]))


def top_units(acts: Activations, features: TextFeatures, k: int = 3,
              corr: dict[tuple[int, int, str], np.ndarray] | None = None) -> list[UnitCorrelation]:
    """For each non-constant feature, the ``k`` units (distinct layer, direction, unit; each
    with its best quantity) of largest |r|, best first. ``corr``: ``correlations(acts,
    features)`` when the caller has it already."""
    corr = correlations(acts, features) if corr is None else corr
    out = []
    for fi, name in enumerate(features.names):
        f = features.values[name]
        if f.std() < 1e-12:
            continue
        best: dict[tuple[int, int, int], tuple[float, str]] = {}
        for (layer, direction, q), r in corr.items():
            for unit in np.flatnonzero(np.abs(r[fi]) > 0):
                key = (layer, direction, int(unit))
                if abs(r[fi, unit]) > abs(best.get(key, (0.0, ""))[0]):
                    best[key] = (float(r[fi, unit]), q)
        fz = _standardise(f[:, None])[:, 0]
        for (layer, direction, unit), (r, q) in sorted(best.items(), key=lambda kv: -abs(kv[1][0]))[:k]:
            a = acts.records[layer, direction][q][:, unit]
            start = _best_window(np.sign(r) * fz * _standardise(a[:, None])[:, 0], SNIPPET)
            end = start + SNIPPET
            out.append(UnitCorrelation(name, layer, direction, q, unit, r, start,
                                       acts.text[start:end], a[start:end].copy()))
    return out


def analyse(acts: Activations, kind: str = "auto", k: int = 3) -> GateReport:
    """Saturation, memory spans and the ``k`` most feature-like units per feature."""
    feats = text_features(acts.text, kind)
    corr = correlations(acts, feats)
    return GateReport(acts, feats, saturation(acts), memory_spans(acts), top_units(acts, feats, k, corr), corr)
