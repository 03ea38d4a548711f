"""What a forecast run leaves behind: a CSV of predictions and intervals, a PNG, a JSON.

Every file is written to a temporary name beside its destination and renamed only when all
of them are written, so a failure leaves nothing half-written.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from .backtest import BacktestResult
from .data import SeriesSet

MAX_PANELS = 6


def forecast_frame(data: SeriesSet, quantiles: np.ndarray, levels: tuple[float, ...]) -> pd.DataFrame:
    """quantiles (S, H, Q) -> one row per (series, step): [id,] time, forecast, q<level>..."""
    rows = []
    for k in range(len(data)):
        times = data.future_times(k, quantiles.shape[1])
        for h, t in enumerate(times):
            row = {"id": data.ids[k]} if len(data) > 1 else {}
            row.update(time=str(t.date()) if hasattr(t, "date") else t,
                       forecast=quantiles[k, h, levels.index(0.5)])
            row.update({f"q{q:g}": quantiles[k, h, i] for i, q in enumerate(levels)})
            rows.append(row)
    return pd.DataFrame(rows)


def summary(horizon: int, res: BacktestResult, frame: pd.DataFrame, data: SeriesSet) -> dict:
    """The --json document: {"horizon", "metrics": {method: {...}}, "forecast": [...], ...}."""
    return {"horizon": horizon, "metrics": res.metrics, "winner": res.winner,
            "quantiles": list(res.levels), "season": data.season, "notes": data.notes,
            "forecast": json.loads(frame.to_json(orient="records"))}


def plot(path, data: SeriesSet, res: BacktestResult, quantiles: np.ndarray) -> None:
    """History, the LSTM's backtest forecasts with their band, and the forecast past the end."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    S = min(len(data), MAX_PANELS)
    fig, axes = plt.subplots(S, 1, figsize=(10, 3.2 * S), squeeze=False)
    H = quantiles.shape[1]
    for k, ax in enumerate(axes[:, 0]):
        t, y = data.times[k], data.values[k]
        start = max(0, res.origins[k, 0] - 6 * H)
        ax.plot(t[start:], y[start:], color="0.2", lw=1, label="history")
        for j, o in enumerate(res.origins[k]):
            span = t[o:o + H]
            ax.fill_between(span, res.quantiles[k, j, :, 0], res.quantiles[k, j, :, -1], color="tab:orange",
                            alpha=0.25, lw=0)
            ax.plot(span, res.forecasts["lstm"][k, j], color="tab:orange", lw=1.2,
                    label="backtest (LSTM)" if j == 0 else None)
            ax.plot(span, res.forecasts["ets"][k, j], color="tab:green", lw=0.8, ls="--",
                    label="backtest (ETS)" if j == 0 else None)
        future = data.future_times(k, H)
        ax.fill_between(future, quantiles[k, :, 0], quantiles[k, :, -1], color="tab:blue", alpha=0.25, lw=0,
                        label=f"{res.levels[0]:g}-{res.levels[-1]:g} band")
        ax.plot(future, quantiles[k, :, res.levels.index(0.5)], color="tab:blue", lw=1.5, label="forecast")
        ax.axvline(t[res.origins[k, 0]], color="0.6", lw=0.8, ls=":")
        ax.set_title(f"{data.ids[k] or data.target}: backtest MASE lstm {res.metrics['lstm']['mase']:.3f}, "
                     f"winner {res.winner}", fontsize=9)
        ax.set_ylabel(data.target)
        ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_all(out_dir: Path, json_path: Path | None, frame: pd.DataFrame, doc: dict, draw) -> list[Path]:
    """Write forecast.csv, forecast.png (``draw(path)``) and the JSON atomically; -> the paths."""
    made = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    targets = [out_dir / "forecast.csv", out_dir / "forecast.png"] + ([json_path] if json_path else [])
    temps, done = [], False
    umask = os.umask(0)
    os.umask(umask)
    try:
        for dest in targets:
            fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=dest.suffix, dir=dest.parent)
            os.close(fd)
            os.chmod(tmp, 0o666 & ~umask)           # mkstemp's 0600 would outlive the rename
            temps.append(Path(tmp))
        frame.to_csv(temps[0], index=False, float_format="%.7g")
        draw(temps[1])
        if json_path:
            temps[2].write_text(json.dumps(doc, indent=2) + "\n")
        for tmp, dest in zip(temps, targets):
            os.replace(tmp, dest)
        done = True
    finally:
        for tmp in temps:
            tmp.unlink(missing_ok=True)
        if made and not done and not any(out_dir.iterdir()):
            out_dir.rmdir()
    return targets
