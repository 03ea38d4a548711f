"""Forecasting data: windows and scaling invert exactly, datasets load with their gaps said."""
import math

import numpy as np
import pandas as pd
import pytest

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


def test_missing_values_are_interpolated_and_said():
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
