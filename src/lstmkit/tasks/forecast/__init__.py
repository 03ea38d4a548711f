"""Time-series forecasting with an LSTM, honestly compared with classical baselines.

Notebook use::

    from lstmkit.tasks import forecast as fc
    data = fc.load_dataset("co2")                       # or fc.load_csv(path, "y", time="date")
    cfg = fc.ForecastConfig(horizon=12)
    res = fc.backtest(data, cfg); print(fc.format_table(res, 12))
    model = fc.Forecaster(cfg).fit(data)
    q = model.predict(data)                             # (series, horizon, quantiles)
"""
from .backtest import METHODS, BacktestResult, backtest, check_lengths, format_table
from .baselines import Forecast, naive, seasonal_naive
from .classical import ets, ets_forms, theta
from .conformal import conformal_offsets, window_spread
from .data import DATASETS, SeriesSet, from_frame, load_csv, load_dataset
from .fit import Forecaster, WindowTask
from .metrics import band_coverage, calibration, coverage, mae, mase, mase_scale, pinball, rmse, smape, sql
from .model import ForecastConfig, ForecastNet, pinball_loss
from .output import forecast_frame, plot, plot_calibration, summary, write_all
from .transform import SeriesTransform
from .windows import Scaler, make_windows, series_from_windows

__all__ = [
    "METHODS", "BacktestResult", "backtest", "check_lengths", "format_table", "Forecast", "naive",
    "seasonal_naive", "ets", "ets_forms", "theta", "conformal_offsets", "window_spread",
    "DATASETS", "SeriesSet", "from_frame", "load_csv", "load_dataset", "Forecaster", "WindowTask",
    "band_coverage", "calibration", "coverage", "mae", "mase", "mase_scale", "pinball", "rmse", "smape", "sql",
    "ForecastConfig", "ForecastNet", "pinball_loss", "forecast_frame", "plot", "plot_calibration", "summary",
    "write_all", "SeriesTransform", "Scaler", "make_windows", "series_from_windows",
]
