"""Series from a CSV or from the datasets bundled in statsmodels, validated.

Every refusal is a ``ValueError`` whose message names the column or option at fault,
so the CLI can print it as one line. Missing values are a policy, ``missing``:
``"interpolate"`` (the default) fills them linearly in time and records a note that the
CLI prints; ``"error"`` refuses the file.
"""
from __future__ import annotations

import importlib
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

MISSING = ("interpolate", "error")
DATASETS = ("sunspots", "co2", "nile", "elnino")


@dataclass
class SeriesSet:
    """One or more regular series of the same target.

    ids: one name per series ("" for a single series).  times: per series, its time index
    (a DatetimeIndex with a frequency, or an integer/float array with a constant step).
    values: per series, the target as float64 (T,).  covariates: per series (T, C) float64.
    season: the seasonal period m in steps (1 = none).  step: the time step, a pandas
    offset or a number, used to date the forecast.  notes: what was done to the data.
    """

    target: str
    ids: list[str]
    times: list[pd.Index]
    values: list[np.ndarray]
    covariates: list[np.ndarray]
    covariate_names: tuple[str, ...] = ()
    season: int = 1
    step: object = 1
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.values)

    def subset(self, keep: list[int]) -> "SeriesSet":
        """The series at positions ``keep``, in that order (the same lists' items, not copies)."""
        pick = lambda items: [items[k] for k in keep]  # noqa: E731
        return SeriesSet(self.target, pick(self.ids), pick(self.times), pick(self.values), pick(self.covariates),
                         self.covariate_names, self.season, self.step, list(self.notes))

    def future_times(self, k: int, horizon: int) -> pd.Index:
        """The ``horizon`` time stamps after the end of series ``k``."""
        last = self.times[k][-1]
        if isinstance(self.times[k], pd.DatetimeIndex):
            return pd.date_range(last, periods=horizon + 1, freq=self.step)[1:]
        return pd.Index([last + self.step * (j + 1) for j in range(horizon)])


def _numeric(frame: pd.DataFrame, col: str, what: str) -> np.ndarray:
    """The column as float64; a value that is present but not a number is refused."""
    raw = frame[col]
    num = pd.to_numeric(raw, errors="coerce")
    bad = num.isna() & raw.notna() & (raw.astype(str).str.strip() != "")
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise ValueError(f"{what} {col!r}: expected numbers, got {raw.iloc[row]!r} at data row {row + 1}")
    vals = num.to_numpy(dtype=np.float64)
    if np.isinf(vals).any():
        raise ValueError(f"{what} {col!r}: expected finite numbers, got inf")
    return vals


def _fill_missing(vals: np.ndarray, col: str, label: str, missing: str, notes: list[str]) -> np.ndarray:
    """Linear interpolation in time (ends: the nearest value), or a refusal."""
    nan = np.isnan(vals)
    if not nan.any():
        return vals
    if missing == "error":
        row = int(np.flatnonzero(nan)[0])
        raise ValueError(f"column {col!r}{label}: {int(nan.sum())} missing value(s), the first at data "
                         f"row {row + 1}; pass --missing interpolate to fill them linearly")
    if nan.all():
        raise ValueError(f"column {col!r}{label}: every value is missing")
    pos = np.arange(len(vals))
    out = vals.copy()
    out[nan] = np.interp(pos[nan], pos[~nan], vals[~nan])
    notes.append(f"interpolated {int(nan.sum())} missing value(s) in column {col!r}{label} linearly")
    return out


def _regular_time(t: pd.Series, col: str, label: str) -> tuple[pd.Index, object]:
    """Parse, and refuse duplicate, unsorted or irregular stamps. -> (index, step)."""
    if t.isna().any():
        raise ValueError(f"--time {col!r}{label}: missing time stamp at data row {int(np.flatnonzero(t.isna())[0]) + 1}")
    num = None if pd.api.types.is_datetime64_any_dtype(t) else pd.to_numeric(t, errors="coerce")
    if num is not None and num.notna().all():
        idx = pd.Index(num.to_numpy())
    else:
        try:
            idx = pd.DatetimeIndex(pd.to_datetime(t, format="mixed"))
        except (ValueError, TypeError) as e:
            raise ValueError(f"--time {col!r}{label}: expected dates or numbers, got {t.iloc[0]!r} ({e})") from None
    if idx.has_duplicates:
        raise ValueError(f"--time {col!r}{label}: duplicate time stamp {idx[idx.duplicated()][0]}")
    if not idx.is_monotonic_increasing:
        row = int(np.flatnonzero(np.asarray(idx[1:] < idx[:-1]))[0])
        raise ValueError(f"--time {col!r}{label}: time stamps are not sorted ({idx[row + 1]} comes after "
                         f"{idx[row]}); sort the file by time")
    if len(idx) < 3:
        raise ValueError(f"--time {col!r}{label}: {len(idx)} time stamp(s), need at least 3 to know the step")
    if isinstance(idx, pd.DatetimeIndex):
        with warnings.catch_warnings():              # pandas 3 announces an offset instead of a str
            warnings.simplefilter("ignore")
            freq = pd.infer_freq(idx)
        if freq is None:
            raise ValueError(f"--time {col!r}{label}: irregular time index (no constant frequency); resample "
                             f"the series to a regular step first")
        return pd.DatetimeIndex(idx, freq=freq), pd.tseries.frequencies.to_offset(freq)
    d = np.diff(idx.to_numpy(dtype=np.float64))
    if not np.allclose(d, d[0], rtol=1e-9, atol=0):
        row = int(np.flatnonzero(~np.isclose(d, d[0], rtol=1e-9, atol=0))[0])
        raise ValueError(f"--time {col!r}{label}: irregular time index (step {d[0]:g}, then {d[row]:g} "
                         f"after {idx[row]})")
    return idx, d[0].item() if d[0] != int(d[0]) else int(d[0])


def from_frame(frame: pd.DataFrame, target: str, *, time: str | None = None, id: str | None = None,
               covariates: tuple[str, ...] = (), season: int = 1, missing: str = "interpolate") -> SeriesSet:
    """Validate a table and split it into series (one per ``id`` value, in order of appearance)."""
    if missing not in MISSING:
        raise ValueError(f"--missing: expected one of {', '.join(MISSING)}, got {missing!r}")
    for opt, col in [("--target", target), ("--time", time), ("--id", id)] + [("--covariates", c) for c in covariates]:
        if col is not None and col not in frame.columns:
            raise ValueError(f"{opt}: column {col!r} does not exist; columns are {', '.join(map(str, frame.columns))}")
    if target in covariates or (time is not None and time in (target, *covariates)):
        raise ValueError(f"--covariates/--time: a column may play one role, got {target!r} twice")
    if len(frame) == 0:
        raise ValueError("--csv: the file has no data rows")
    groups = [("", frame)] if id is None else [(str(k), g) for k, g in frame.groupby(id, sort=False)]
    out = SeriesSet(target, [], [], [], [], tuple(covariates), season)
    steps = set()
    for name, g in groups:
        label = f" (series {name!r})" if id is not None else ""
        vals = _fill_missing(_numeric(g, target, "--target"), target, label, missing, out.notes)
        covs = [_fill_missing(_numeric(g, c, "--covariates"), c, label, missing, out.notes) for c in covariates]
        if time is not None:
            idx, step = _regular_time(g[time], time, label)
        else:
            idx, step = pd.RangeIndex(len(g)), 1
        steps.add(str(step))
        out.ids.append(name)
        out.times.append(idx)
        out.values.append(vals)
        out.covariates.append(np.stack(covs, 1) if covs else np.zeros((len(vals), 0)))
        out.step = step
    if len(steps) > 1:
        raise ValueError(f"--time {time!r}: the series have different steps ({', '.join(sorted(steps))})")
    return out


def load_csv(path: str, target: str, **kw) -> SeriesSet:
    """Read ``path`` and validate it (see ``from_frame`` for the options)."""
    try:
        frame = pd.read_csv(path)
    except FileNotFoundError:
        raise ValueError(f"--csv: no such file {path!r}") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise ValueError(f"--csv: cannot read {path!r} as CSV ({str(e).splitlines()[0]})") from None
    return from_frame(frame, target, **kw)


def load_dataset(name: str, missing: str = "interpolate") -> SeriesSet:
    """A series bundled in statsmodels (offline), with its natural season.

    sunspots: yearly sunspot numbers 1700-2008, m = 11 (the solar cycle).  co2: Mauna Loa
    weekly CO2 1958-2001 resampled to monthly means (a month with no reading stays missing
    and follows ``missing``), m = 12.  nile: yearly Nile flow 1871-1970, m = 1.
    elnino: monthly sea surface temperature 1950-2010, m = 12.
    """
    if name not in DATASETS:
        raise ValueError(f"--dataset: expected one of {', '.join(DATASETS)}, got {name!r}")
    data = importlib.import_module(f"statsmodels.datasets.{name}").load_pandas().data
    if name == "sunspots":
        frame, time, target, season = data.astype({"YEAR": int}), "YEAR", "SUNACTIVITY", 11
    elif name == "nile":
        frame, time, target, season = data.astype({"year": int}), "year", "volume", 1
    elif name == "co2":
        monthly = data["co2"].resample("MS").mean()
        frame, time, target, season = monthly.rename_axis("month").reset_index(), "month", "co2", 12
    else:
        long = data.melt(id_vars="YEAR", var_name="month_name", value_name="temperature")
        months = {m: k + 1 for k, m in enumerate(data.columns[1:])}
        long["month"] = pd.to_datetime(dict(year=long["YEAR"].astype(int), month=long["month_name"].map(months), day=1))
        frame, time, target, season = long.sort_values("month")[["month", "temperature"]], "month", "temperature", 12
    out = from_frame(frame.reset_index(drop=True), target, time=time, season=season, missing=missing)
    out.ids = [name]
    return out
