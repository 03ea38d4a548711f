"""Loss curves of a run, from its metrics.csv, as a PNG (matplotlib, Agg backend)."""
from __future__ import annotations

import csv
from pathlib import Path


def plot_metrics(csv_path: str | Path, png_path: str | Path) -> None:
    """Training loss and validation loss (nats per item) against the step, one PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)

    def series(key):
        pts = [(int(r["step"]), float(r[key])) for r in rows if r.get(key) not in (None, "")]
        return zip(*pts) if pts else ((), ())

    ax.plot(*series("train_loss"), label="train", lw=1)
    if rows and "val_loss" in rows[0]:
        ax.plot(*series("val_loss"), "o-", label="validation", ms=3)
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats per item)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(png_path)
    plt.close(fig)
