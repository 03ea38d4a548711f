"""What a forecast run leaves behind: a CSV of predictions and intervals, two PNGs (the
forecast; the calibration of every method's quantiles), a JSON.

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

from . import metrics
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
    calib = {name: metrics.calibration(res.actual, q) for name, q in res.quantiles.items()}
    return {"horizon": horizon, "metrics": res.metrics, "winner": res.winner,
            "quantiles": list(res.levels), "calibration": calib, "calibrated_on": res.calibrated_on,
            "lstm_mix": (res.lstm_mix[0] if len(data) == 1 else dict(zip(data.ids, res.lstm_mix))), "season": data.season, "notes": data.notes,
            "ets_forms": [None if f is None else "".join(_letter(p) for p in f) for f in res.ets_forms],
            "forecast": json.loads(frame.to_json(orient="records"))}


def _letter(part) -> str:
    """An ETS form part as R writes it: error A/M, trend N/A/Ad, season N/A/M."""
    return {None: "N", "add": "A", "mul": "M", True: "d", False: ""}[part]


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
            ax.fill_between(span, res.quantiles["lstm"][k, j, :, 0], res.quantiles["lstm"][k, j, :, -1], color="tab:orange",
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


def plot_calibration(path, res: BacktestResult) -> None:
    """Left: for each method, the share of actuals at or below each quantile against its level
    (a PIT summary; the diagonal is perfect calibration). Right: the LSTM's coverage of each
    band per horizon step, with the nominal levels dashed."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot([0, 1], [0, 1], color="0.6", lw=0.8, ls=":")
    for name, q in res.quantiles.items():
        left.plot(res.levels, metrics.calibration(res.actual, q), marker="o", ms=3,
                  lw=2 if name == "lstm" else 1, label=name)
    left.set(xlabel="quantile level", ylabel="share of actuals at or below", title="calibration (backtest)")
    left.legend(fontsize=7)
    q, steps = res.quantiles["lstm"], np.arange(1, res.actual.shape[-1] + 1)
    for i, j in metrics.bands(res.levels):
        inside = (res.actual >= q[..., i]) & (res.actual <= q[..., j])
        line, = right.plot(steps, inside.reshape(-1, len(steps)).mean(0), marker="o", ms=3,
                           label=f"{res.levels[j] - res.levels[i]:.0%} band")
        right.axhline(res.levels[j] - res.levels[i], color=line.get_color(), lw=0.8, ls="--")
    right.set(xlabel="step ahead", ylabel="coverage", ylim=(0, 1.02), title="LSTM coverage per step")
    right.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_all(out_dir: Path, json_path: Path | None, frame: pd.DataFrame, doc: dict, draw,
              draw_calibration=None) -> list[Path]:
    """Write forecast.csv, forecast.png (``draw(path)``), calibration.png (``draw_calibration``,
    when given) and the JSON atomically; -> the paths."""
    made = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    pngs = [(out_dir / "forecast.png", draw)]
    if draw_calibration is not None:
        pngs.append((out_dir / "calibration.png", draw_calibration))
    targets = [out_dir / "forecast.csv"] + [p for p, _ in pngs] + ([json_path] if json_path else [])
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
        for tmp, (_, fn) in zip(temps[1:], pngs):
            fn(tmp)
        if json_path:
            temps[-1].write_text(json.dumps(doc, indent=2) + "\n")
        for tmp, dest in zip(temps, targets):
            os.replace(tmp, dest)
        done = True
    finally:
        for tmp in temps:
            tmp.unlink(missing_ok=True)
        if made and not done and not any(out_dir.iterdir()):
            out_dir.rmdir()
    return targets
