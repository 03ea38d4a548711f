"""PNG figures of a GateReport (matplotlib, Agg backend): saturation, memory spans, units."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .analysis import HIGH, LOW, GateReport  # noqa: E402

_DIR = {0: "fwd", 1: "bwd"}
WINDOW = 300                      # characters shown per unit in units.png


def layer_label(layer: int, direction: int, bidirectional: bool) -> str:
    return f"layer {layer} {_DIR[direction]}" if bidirectional else f"layer {layer}"


def _bidirectional(report: GateReport) -> bool:
    return any(d for _, d in report.activations.keys)


def saturation_png(report: GateReport, path: Path) -> Path:
    """One panel per σ gate: each unit a point (fraction left-saturated, fraction right-
    saturated), coloured by layer, as Fig. 3 of Karpathy et al. (arXiv 1506.02078)."""
    gates = sorted({s.gate for s in report.saturation}, key="ifodrz".index)
    bi = _bidirectional(report)
    fig, axes = plt.subplots(1, max(1, len(gates)), figsize=(3.2 * max(1, len(gates)), 3.4), squeeze=False)
    for ax, gate in zip(axes[0], gates):
        for s in (s for s in report.saturation if s.gate == gate):
            ax.scatter(s.left, s.right, s=9, alpha=0.6, label=layer_label(s.layer, s.direction, bi))
        ax.plot([0, 1], [1, 0], color="0.8", lw=0.8)
        ax.set(xlim=(-0.02, 1.02), ylim=(-0.02, 1.02), title=f"gate {gate}",
               xlabel=f"fraction left-saturated (< {LOW})")
        ax.set_aspect("equal")
    axes[0][0].set_ylabel(f"fraction right-saturated (> {HIGH})")
    if not gates:
        axes[0][0].text(0.5, 0.5, "no σ gates", ha="center")
    else:
        axes[0][0].legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def memory_span_png(report: GateReport, path: Path) -> Path:
    """Per layer-direction, every unit's span mean(1/(1 − f)) sorted, log scale."""
    bi = _bidirectional(report)
    fig, ax = plt.subplots(figsize=(6, 3.4))
    for m in report.memory_spans:
        ax.plot(np.sort(m.span)[::-1], marker=".", ms=3, lw=1,
                label=f"{layer_label(m.layer, m.direction, bi)} ({m.gate})")
    ax.set(yscale="log", xlabel="unit (sorted)", ylabel="span mean 1/(1−f), steps",
           title="effective memory span per unit")
    if report.memory_spans:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def units_png(report: GateReport, path: Path) -> Path:
    """For each feature, its best unit's activation beside the feature (both scaled to
    [0, 1]) over WINDOW characters around the unit's snippet."""
    best = [u for u in (report.best(n) for n in report.features.names) if u is not None]
    fig, axes = plt.subplots(max(1, len(best)), 1, figsize=(8, 1.5 * max(1, len(best))), squeeze=False)
    bi = _bidirectional(report)
    for ax, u in zip(axes[:, 0], best):
        a = report.activations.records[u.layer, u.direction][u.quantity][:, u.unit]
        f = report.features.values[u.feature]
        lo = max(0, min(u.start - WINDOW // 3, len(a) - WINDOW))
        sl = slice(lo, lo + WINDOW)
        for y, lab in ((f[sl], u.feature), (a[sl], f"{u.quantity}[{u.unit}]")):
            span = y.max() - y.min()
            ax.plot(np.arange(sl.start, sl.start + len(y)), (y - y.min()) / (span or 1), lw=1, label=lab)
        ax.set_title(f"{u.feature}: {layer_label(u.layer, u.direction, bi)} {u.quantity}[{u.unit}], "
                     f"r = {u.r:+.2f}", fontsize=8, loc="left")
        ax.set_yticks([])
        ax.legend(fontsize=6, loc="upper right")
    axes[-1, 0].set_xlabel("character")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def write_pngs(report: GateReport, out_dir: Path, stem: str) -> dict[str, Path]:
    """Write ``{stem}_saturation.png``, ``{stem}_memory.png``, ``{stem}_units.png``."""
    out_dir = Path(out_dir)
    return {"saturation": saturation_png(report, out_dir / f"{stem}_saturation.png"),
            "memory": memory_span_png(report, out_dir / f"{stem}_memory.png"),
            "units": units_png(report, out_dir / f"{stem}_units.png")}
