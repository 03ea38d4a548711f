"""Figures of the long-time-lag lab: learning curves and gradient flow (PNG, Agg backend)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_learning_curves(curves: dict[str, list[tuple[int, float]]], *, baseline: float, unit: str,
                         title: str, path: str | Path, solved_at: dict[str, int | None] | None = None) -> Path:
    """One line per cell: training error (task unit) against training sequences, the chance
    baseline dashed, a dot where the test set first passed the paper's criterion."""
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    for cell, curve in curves.items():
        if not curve:
            continue
        xs, ys = zip(*curve)
        (line,) = ax.plot(xs, ys, label=cell, lw=1.5)
        at = (solved_at or {}).get(cell)
        if at is not None:
            ax.plot([at], [ys[xs.index(at)] if at in xs else ys[-1]], "o", color=line.get_color())
    ax.axhline(baseline, ls="--", color="grey", lw=1, label=f"chance {baseline:.3g}")
    ax.set_yscale("log")
    ax.set_xlabel("training sequences")
    ax.set_ylabel(f"training error ({unit})")
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_gradflow(flows, *, title: str, path: str | Path) -> Path:
    """‖∂L/∂h_t‖ (solid) and ‖∂L/∂c_t‖ (dotted) against steps back from the loss, log scale;
    one panel per phase (at initialisation, after training)."""
    phases = list(dict.fromkeys(f.phase for f in flows))
    fig, axes = plt.subplots(1, len(phases), figsize=(5.2 * len(phases), 3.8), dpi=100, squeeze=False)
    colors = {}
    for ax, phase in zip(axes[0], phases):
        for f in (f for f in flows if f.phase == phase):
            color = colors.setdefault(f.cell, f"C{len(colors)}")
            ax.plot(range(len(f.grad_h)), f.grad_h, color=color, label=f"{f.cell} h")
            if f.grad_c is not None:            # c_T is not read by the loss: its 0 is left out
                ax.plot(range(len(f.grad_c)), [g or float("nan") for g in f.grad_c], ":", color=color,
                        label=f"{f.cell} c")
        ax.set_yscale("log")
        ax.set_xlabel("steps back from the loss")
        ax.set_ylabel("‖∂L/∂state‖ (mean over sequences)")
        ax.set_title(f"{title}: {phase}", fontsize=10)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
