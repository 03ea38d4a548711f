"""Forecasting: windows and scaling invert exactly, metrics and baselines by hand, coverage,
a smoke run of the CLI writing CSV, PNG and JSON, and every bad input refused cleanly."""
import json
import math
import re

import numpy as np
import pandas as pd
import pytest

from lstmkit.cli import main
from lstmkit.tasks import forecast as fc


# ---- windows and scaling ---------------------------------------------------------
@pytest.mark.parametrize("name", ["co2", "sunspots", "nile", "elnino"])
def test_scaling_round_trips_bit_for_bit_on_the_datasets(name):
    y = fc.load_dataset(name).values[0]
    sc = fc.Scaler.fit(y)
    assert math.log2(sc.scale) == round(math.log2(sc.scale))
    assert np.array_equal(sc.inverse(sc.transform(y)), y)


def test_scaling_round_trips_on_awkward_values():
    rng = np.random.default_rng(0)
    for y in [rng.normal(1e6, 1e-3, 500), rng.normal(0, 1e-9, 500), 0.1 * np.arange(100) + 1 / 3,
              rng.standard_cauchy(300) * 1e5, np.r_[0.001, 300.0, -7e-3, 2e8]]:
        sc = fc.Scaler.fit(y)
        z = sc.transform(y)
        assert np.array_equal(sc.inverse(z), y)
        assert 0.5 <= np.mean(np.abs(np.diff(z))) <= 2.0        # one typical step is about 1


def test_scaling_refuses_values_it_cannot_invert():
    with pytest.raises(ValueError, match="values"):
        fc.Scaler.fit(np.array([1e-310, 2e300, 0.0]))


def test_windows_cut_and_reassemble_exactly():
    z = np.random.default_rng(1).normal(size=(40, 3))
    x, y = fc.make_windows(z, 7, 4)
    assert x.shape == (30, 7, 3) and y.shape == (30, 4, 3)
    n = 11
    assert np.array_equal(x[n], z[n:n + 7]) and np.array_equal(y[n], z[n + 7:n + 11])
    assert np.array_equal(fc.series_from_windows(x, y), z)
    with pytest.raises(ValueError, match="shorter than window 30 \\+ horizon 11"):
        fc.make_windows(z, 30, 11)


# ---- metrics, baselines, coverage ------------------------------------------------
def test_metrics_match_hand_computed_values():
    y, f = np.array([1.0, 2.0, 4.0, 0.0]), np.array([2.0, 2.0, 1.0, 0.0])
    assert fc.mae(y, f) == pytest.approx((1 + 0 + 3 + 0) / 4)
    assert fc.rmse(y, f) == pytest.approx(math.sqrt((1 + 0 + 9 + 0) / 4))
    assert fc.smape(y, f) == pytest.approx((200 * 1 / 3 + 0 + 200 * 3 / 5 + 0) / 4)
    assert fc.mase(y, f, 2.0) == pytest.approx(1.0 / 2)
    hist = np.array([1.0, 3.0, 2.0, 6.0, 4.0])          # m = 2: |2-1|, |6-3|, |4-2| -> 2
    assert fc.mase_scale(hist, 2) == pytest.approx(2.0)
    assert fc.mase_scale(hist, 1) == pytest.approx((2 + 1 + 4 + 2) / 4)
    assert fc.pinball(np.array([3.0]), np.array([1.0]), 0.9) == pytest.approx(1.8)
    assert fc.pinball(np.array([1.0]), np.array([3.0]), 0.9) == pytest.approx(0.2)


def test_coverage_counts_the_band_inclusively():
    y = np.array([0.0, 1.0, 2.0, 3.0, 5.0])
    lo, hi = np.array([0.0, 1.5, 1.0, 3.5, 0.0]), np.array([1.0, 2.0, 2.0, 4.0, 4.0])
    assert fc.coverage(y, lo, hi) == pytest.approx(2 / 5)


def test_baselines_on_a_synthetic_seasonal_series():
    pattern = np.array([3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0])
    y = np.tile(pattern, 10) + 0.5 * np.arange(70)                # trend + season 7
    assert np.array_equal(fc.naive(y, 3), [y[-1]] * 3)
    sn = fc.seasonal_naive(y, 10, 7)
    assert np.array_equal(sn, np.r_[y[-7:], y[-7:-4]])
    truth = np.tile(pattern, 12)[70:80] + 0.5 * np.arange(70, 80)
    ets, form = fc.ets(y, 10, 7)
    assert form == ("add", "add")
    assert np.abs(ets - truth).max() < 0.6                       # ETS recovers season + (damped) trend
    assert np.allclose(truth - sn, np.r_[[3.5] * 7, [7.0] * 3])   # one / two cycles of trend behind


def test_seasonal_naive_without_a_season_is_naive():
    y = np.arange(20.0)
    assert np.array_equal(fc.seasonal_naive(y, 5, 1), fc.naive(y, 5))


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
    assert "winner by MASE:" in text and "seasonal_naive" in text
    doc = json.loads(js.read_text())
    assert doc["horizon"] == 6 and set(doc["metrics"]) == {"lstm", "naive", "seasonal_naive", "ets"}
    assert set(doc["metrics"]["lstm"]) == {"mae", "rmse", "smape", "mase", "coverage"}
    assert 0 <= doc["metrics"]["lstm"]["coverage"] <= 1 and doc["metrics"]["ets"]["coverage"] is None
    frame = pd.read_csv(out / "forecast.csv")
    assert list(frame.columns) == ["time", "forecast", "q0.1", "q0.5", "q0.9"] and len(frame) == 6
    assert frame["time"].iloc[0] == "2005-01-01"
    assert (frame["q0.1"] <= frame["q0.5"]).all() and (frame["q0.5"] <= frame["q0.9"]).all()
    assert len(doc["forecast"]) == 6 and doc["forecast"][0]["forecast"] == pytest.approx(frame["forecast"][0])
    assert (out / "forecast.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in out.iterdir()) == ["forecast.csv", "forecast.png"]   # no temp files


def test_global_model_over_several_ids(tmp_path):
    path, frame = _csv(tmp_path)
    two = pd.concat([frame.assign(shop="a"), frame.assign(shop="b", y=frame["y"] * 3)])
    two.to_csv(path, index=False)
    rc = main(["forecast", "--csv", str(path), "--target", "y", "--time", "date", "--id", "shop",
               "--horizon", "4", "--out", str(tmp_path / "o"), *FAST])
    assert rc == 0
    out = pd.read_csv(tmp_path / "o" / "forecast.csv")
    assert list(out["id"].unique()) == ["a", "b"] and len(out) == 8


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


def test_missing_values_are_interpolated_and_said(tmp_path, capsys):
    y = list(10 + np.sin(np.arange(60)))
    y[7] = np.nan
    frame = pd.DataFrame({"y": y})
    data = fc.from_frame(frame, "y")
    assert data.values[0][7] == pytest.approx((y[6] + y[8]) / 2)
    assert data.notes == ["interpolated 1 missing value(s) in column 'y' linearly"]


def test_co2_is_monthly_with_its_gaps_interpolated():
    data = fc.load_dataset("co2")
    assert data.season == 12 and len(data.values[0]) == 526 and str(data.step) == "<MonthBegin>"
    assert data.notes and "interpolated 5 missing" in data.notes[0]
    with pytest.raises(ValueError, match="--missing interpolate"):
        fc.load_dataset("co2", missing="error")


def test_a_failure_while_writing_leaves_nothing_behind(tmp_path):
    def draw(path):
        raise OSError("disk full")

    out, js = tmp_path / "new", tmp_path / "run.json"
    with pytest.raises(OSError, match="disk full"):
        fc.write_all(out, js, pd.DataFrame({"a": [1]}), {"horizon": 1}, draw)
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_early_stopping_keeps_the_best_weights_and_stops_after_patience():
    import torch

    x, y = torch.zeros(4, 6, 2), torch.ones(4, 3)
    task = fc.WindowTask((x, y), (x, y), torch.tensor([0.1, 0.5, 0.9]), batch=2, seed=0, patience=2)
    net = fc.ForecastNet(1, 6, fc.ForecastConfig(horizon=3, hidden=4))
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
