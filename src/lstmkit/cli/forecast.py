"""Forecast a time series from a CSV or a bundled dataset, backtested against classical baselines.

The LSTM and the naive, seasonal-naive, auto-ETS and Theta forecasts are scored on the same
windows, points and quantiles alike.

Writes OUT/forecast.csv (predictions and quantiles past the end of the data), OUT/forecast.png
(history, backtest and forecast with its band), OUT/calibration.png (every method's quantile
calibration, the LSTM's coverage per step) and, with --json, the metrics and forecast.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ._common import UsageError

# dataset -> default horizon: one season for the monthly series, about one solar cycle
# for sunspots, a decade for the Nile.
DATASET_HORIZON = {"sunspots": 11, "co2": 12, "nile": 10, "elnino": 12}
QUANTILES = "0.05,0.1,0.25,0.5,0.75,0.9,0.95"


def add_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group()
    src.add_argument("--csv", metavar="PATH", help="a CSV file with a header row")
    src.add_argument("--dataset", choices=sorted(DATASET_HORIZON),
                     help="a series bundled in statsmodels (offline); default sunspots when no --csv")
    p.add_argument("--target", metavar="COL", help="the column to forecast (required with --csv)")
    p.add_argument("--time", metavar="COL", help="time stamps (dates or numbers, regular, sorted)")
    p.add_argument("--id", metavar="COL", help="series id: one global model over all series")
    p.add_argument("--covariates", metavar="A,B", default="", help="extra numeric input columns (past values only)")
    p.add_argument("--horizon", type=int, help="steps to forecast (required with --csv)")
    p.add_argument("--season", type=int, help="seasonal period m in steps (default: dataset's, else 1)")
    p.add_argument("--quantiles", default=QUANTILES, help=f"interval quantile levels (default {QUANTILES})")
    p.add_argument("--missing", choices=("interpolate", "error"), default="interpolate",
                   help="missing values: fill linearly in time and say so (default), or refuse")
    p.add_argument("--window", type=int, help="input window length (default max(12, 3 seasons, 2 horizons))")
    p.add_argument("--backtest-windows", type=int, default=5, help="rolling origins (default 5)")
    p.add_argument("--steps", type=int, default=300, help="training steps budget per fit (default 300)")
    p.add_argument("--hidden", type=int, default=32, help="LSTM hidden size (default 32)")
    p.add_argument("--transform", choices=("ets", "auto", "none"), default="ets",
                   help="the LSTM corrects each series' auto-ETS forecast (ets, default), or sees the series less "
                        "a per-series Box-Cox power and season (auto), or as it is (none)")
    p.add_argument("--ensemble", type=int, default=3,
                   help="LSTMs trained with different seeds, their quantiles averaged (default 3)")
    p.add_argument("--no-envelope", action="store_true",
                   help="with --transform ets: the conformal bands alone, not widened to hold auto-ETS's own band")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--out", default="forecast_out", metavar="DIR", help="output folder (default forecast_out)")
    p.add_argument("--json", metavar="PATH", help="also write the metrics and forecast as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _config(args, horizon: int):
    from ..tasks.forecast import ForecastConfig

    try:
        qs = tuple(float(q) for q in args.quantiles.split(",") if q.strip())
    except ValueError:
        raise UsageError(f"--quantiles: expected comma-separated numbers, got {args.quantiles!r}") from None
    return ForecastConfig(horizon=horizon, window=args.window, quantiles=qs, hidden=args.hidden,
                          steps=args.steps, backtest_windows=args.backtest_windows, seed=args.seed,
                          transform=args.transform, ensemble=args.ensemble, envelope=not args.no_envelope)


def _check_paths(args) -> tuple[Path, Path | None]:
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out: {out} exists and is not a folder")
    js = Path(args.json) if args.json else None
    if js is not None and (js.is_dir() or not js.parent.is_dir()):
        raise UsageError(f"--json: expected a file path in an existing folder, got {args.json!r}")
    return out, js


def run(args) -> int:
    from ..tasks import forecast as fc

    out, js = _check_paths(args)
    try:
        if args.csv is None and args.dataset is None:
            args.dataset = "sunspots"
        if args.dataset:
            if args.target or args.time or args.id or args.covariates:
                raise UsageError("--dataset: --target/--time/--id/--covariates only apply to --csv")
            horizon = args.horizon if args.horizon is not None else DATASET_HORIZON[args.dataset]
            data = fc.load_dataset(args.dataset, missing=args.missing)
        else:
            if not args.target:
                raise UsageError("--target: required with --csv")
            if args.horizon is None:
                raise UsageError("--horizon: required with --csv")
            horizon = args.horizon
            covs = tuple(c.strip() for c in args.covariates.split(",") if c.strip())
            data = fc.load_csv(args.csv, args.target, time=args.time, id=args.id, covariates=covs,
                               missing=args.missing)
        if args.season is not None:
            if args.season < 1:
                raise UsageError(f"--season: expected an int >= 1, got {args.season}")
            data.season = args.season
        cfg = _config(args, horizon)
        fc.check_lengths(data, cfg)
    except ValueError as e:
        raise UsageError(str(e)) from None
    for note in data.notes:
        print(f"note: {note}", file=sys.stderr)
    result = fc.backtest(data, cfg, progress=not args.quiet)
    print(fc.format_table(result, horizon))
    model = fc.Forecaster(cfg).fit(data, progress=not args.quiet)
    quant = model.predict(data)
    frame = fc.forecast_frame(data, quant, cfg.quantiles)
    doc = fc.summary(horizon, result, frame, data)
    paths = fc.write_all(out, js, frame, doc, lambda p: fc.plot(p, data, result, quant),
                         lambda p: fc.plot_calibration(p, result))
    print("wrote " + ", ".join(map(str, paths)))
    return 0
