"""`lstmkit forecast`: a smoke run writing CSV, PNGs and JSON, a global model, every bad input
refused in one line with nothing written, atomic writes, early stopping."""
import json
import math
import re

import numpy as np
import pandas as pd
import pytest

from lstmkit.cli import main
from lstmkit.tasks import forecast as fc


# ---- the command line ------------------------------------------------------------
FAST = ["--steps", "20", "--hidden", "8", "--window", "12", "--backtest-windows", "2", "--quiet"]


def _csv(tmp_path, n=60, **cols):
    t = pd.date_range("2000-01-01", periods=n, freq="MS")
    k = np.arange(n)
    frame = pd.DataFrame({"date": t.strftime("%Y-%m-%d"), "y": 10 + np.sin(2 * np.pi * k / 12) + 0.05 * k,
                          "x": np.cos(k / 5.0)})
    for name, values in cols.items():
        frame[name] = values
    path = tmp_path / "series.csv"
    frame.to_csv(path, index=False)
    return path, frame


def test_smoke_run_writes_csv_png_and_json(tmp_path, capsys):
    path, _ = _csv(tmp_path)
    out, js = tmp_path / "out", tmp_path / "run.json"
    rc = main(["forecast", "--csv", str(path), "--target", "y", "--time", "date", "--covariates", "x",
               "--horizon", "6", "--season", "12", "--out", str(out), "--json", str(js), *FAST])
    assert rc == 0
    text = capsys.readouterr().out
    assert "winner by MASE:" in text and "seasonal_naive" in text and "theta" in text and "cov 0.80" in text
    assert "combo" in text and "lstm bands calibrated on held-out forecasts" in text
    doc = json.loads(js.read_text())
    methods = {"lstm", "naive", "seasonal_naive", "ets", "theta", "combo"}
    assert doc["horizon"] == 6 and set(doc["metrics"]) == methods and set(doc["calibration"]) == methods
    for m in methods:                                     # every method has intervals, so every one is scored
        assert set(doc["metrics"][m]) == {"mae", "rmse", "smape", "mase", "sql", "coverage"}
        assert set(doc["metrics"][m]["coverage"]) == {"0.90", "0.80", "0.50"}
        assert all(0 <= c <= 1 for c in doc["metrics"][m]["coverage"].values()) and doc["metrics"][m]["sql"] > 0
        assert len(doc["calibration"][m]) == 7
    assert re.fullmatch(r"[AM](N|A|Ad)[NAM]", doc["ets_forms"][0])
    assert doc["calibrated_on"].startswith("held-out forecasts")
    assert doc["lstm_mix"] in {k / 8 for k in range(9)}       # "ets"'s shrink weight: the mean of two halves' choices
    assert "each band widened to hold auto-ETS's own (the envelope)" in doc["calibrated_on"]
    assert (doc["lstm_mix"] == 1.0) != ("auto-ETS + " in text)
    frame = pd.read_csv(out / "forecast.csv")
    qs = ["q0.05", "q0.1", "q0.25", "q0.5", "q0.75", "q0.9", "q0.95"]
    assert list(frame.columns) == ["time", "forecast", *qs] and len(frame) == 6
    assert frame["time"].iloc[0] == "2005-01-01"
    assert (np.diff(frame[qs].to_numpy(), axis=1) >= 0).all()
    assert len(doc["forecast"]) == 6 and doc["forecast"][0]["forecast"] == pytest.approx(frame["forecast"][0])
    for png in ("forecast.png", "calibration.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in out.iterdir()) == ["calibration.png", "forecast.csv", "forecast.png"]   # no temps


def test_global_model_over_several_ids(tmp_path):
    path, frame = _csv(tmp_path)
    two = pd.concat([frame.assign(shop="a"), frame.assign(shop="b", y=frame["y"] * 3)])
    two.to_csv(path, index=False)
    rc = main(["forecast", "--csv", str(path), "--target", "y", "--time", "date", "--id", "shop",
               "--horizon", "4", "--out", str(tmp_path / "o"), "--json", str(tmp_path / "run.json"), *FAST])
    assert rc == 0
    out = pd.read_csv(tmp_path / "o" / "forecast.csv")
    assert list(out["id"].unique()) == ["a", "b"] and len(out) == 8
    mix = json.loads((tmp_path / "run.json").read_text())["lstm_mix"]      # each series' own shrink weight
    assert sorted(mix) == ["a", "b"] and set(mix.values()) <= {k / 8 for k in range(9)}


def test_no_envelope_keeps_the_conformal_bands_alone(tmp_path):
    path, _ = _csv(tmp_path)
    runs = {}
    for flag in ([], ["--no-envelope"]):
        js = tmp_path / f"run{len(flag)}.json"
        rc = main(["forecast", "--csv", str(path), "--target", "y", "--time", "date", "--horizon", "6",
                   "--season", "12", "--out", str(tmp_path / f"o{len(flag)}"), "--json", str(js), *flag, *FAST])
        assert rc == 0
        runs[bool(flag)] = json.loads(js.read_text())
    assert "(the envelope)" in runs[False]["calibrated_on"] and "envelope" not in runs[True]["calibrated_on"]
    assert runs[True]["calibrated_on"].startswith("held-out forecasts")      # what the envelope does: test_ets_norm.py


def _bad_cases():
    n = 60
    y = list(10 + np.sin(np.arange(n)))
    dates = list(pd.date_range("2000-01-01", periods=n, freq="MS").strftime("%Y-%m-%d"))
    unsorted = dates[:]
    unsorted[10], unsorted[11] = unsorted[11], unsorted[10]
    dup = dates[:]
    dup[20] = dup[19]
    irregular = list(pd.date_range("2000-01-01", periods=n + 1, freq="MS").strftime("%Y-%m-%d"))
    del irregular[30]
    text_y = y[:]
    text_y[5] = "n/a?"
    hole = y[:]
    hole[7] = np.nan
    return {
        "missing value": ({"y": hole}, ["--missing", "error"], "'y'.*missing"),
        "non-numeric target": ({"y": text_y}, [], "--target 'y': expected numbers"),
        "duplicate timestamps": ({"date": dup}, [], "--time 'date': duplicate"),
        "unsorted timestamps": ({"date": unsorted}, [], "--time 'date': time stamps are not sorted"),
        "irregular time index": ({"date": irregular[:n]}, [], "--time 'date': irregular"),
        "too short": ({}, ["--window", "58"], r"shorter than --window 58 \+ --horizon 6"),
        "too short to backtest": ({}, ["--backtest-windows", "8"], "--backtest-windows 8"),
        "missing column": ({}, ["--covariates", "nope"], "--covariates: column 'nope' does not exist"),
        "missing target": ({}, ["--target", "Y"], "--target: column 'Y' does not exist"),
        "horizon 0": ({}, ["--horizon", "0"], "--horizon: expected an int >= 1, got 0"),
        "horizon < 0": ({}, ["--horizon", "-3"], "--horizon: expected an int >= 1, got -3"),
        "bad quantiles": ({}, ["--quantiles", "0.1,1.5"], "--quantiles"),
        "ensemble 0": ({}, ["--ensemble", "0"], "--ensemble: expected an int >= 1, got 0"),
    }


@pytest.mark.parametrize("case", list(_bad_cases()))
def test_bad_input_is_refused_in_one_line_with_nothing_written(case, tmp_path, capsys):
    cols, extra, message = _bad_cases()[case]
    path, _ = _csv(tmp_path, **cols)
    out, js = tmp_path / "out", tmp_path / "run.json"
    argv = ["forecast", "--csv", str(path), "--target", "y", "--time", "date", "--horizon", "6",
            "--out", str(out), "--json", str(js), "--quiet"]
    argv += extra
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2
    assert len(err.strip().splitlines()) == 1 and err.startswith("lstmkit forecast: error: ")
    assert re.search(message, err), err
    assert not out.exists() and not js.exists()


def test_a_failure_while_writing_leaves_nothing_behind(tmp_path):
    def draw(path):
        raise OSError("disk full")

    out, js = tmp_path / "new", tmp_path / "run.json"
    with pytest.raises(OSError, match="disk full"):
        fc.write_all(out, js, pd.DataFrame({"a": [1]}), {"horizon": 1}, draw)
    assert not out.exists() and list(tmp_path.iterdir()) == []
    with pytest.raises(OSError, match="disk full"):           # the second picture fails after the first
        fc.write_all(out, js, pd.DataFrame({"a": [1]}), {"horizon": 1}, lambda p: p.write_bytes(b"x"), draw)
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_early_stopping_keeps_the_best_weights_and_stops_after_patience():
    import torch

    x, y = torch.zeros(4, 6, 2), torch.ones(4, 3)
    task = fc.WindowTask((x, y), (x, y), torch.tensor([0.1, 0.5, 0.9]), batch=2, seed=0, patience=2)
    net = fc.ForecastNet(1, 6, fc.ForecastConfig(horizon=3, hidden=4, quantiles=(0.1, 0.9)))
    assert task.evaluate(net)["val_loss"] == task.best
    best = {k: v.clone() for k, v in task.best_state.items()}
    with torch.no_grad():
        net.head.bias.add_(10.0)                          # worse: every output moves far from 1
    task.evaluate(net)
    assert all(torch.equal(best[k], v) for k, v in task.best_state.items())
    assert not task.should_stop()
    task.evaluate(net)
    assert task.should_stop()
    assert torch.equal(task.batch(5)[0], task.batch(5)[0])   # the batch is a function of the step
