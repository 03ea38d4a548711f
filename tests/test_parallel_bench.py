"""lstmkit bench --long: the parallel-in-time members against the LSTMs and their floor
(validated first, one process), and its refusal of a wrong result or a bad length."""
import json

import pytest
import torch

from lstmkit import benchmark_long as bl
from lstmkit.cli import main


def test_long_bench_writes_every_row(tmp_path, capsys):
    out = tmp_path / "long.json"
    assert main(["bench", "--long", "8", "--threads", "1", "--quiet", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    rows = {r["impl"]: r for r in data["rows"]}
    assert set(rows) == set(bl.LONG_IMPLS) and all(r["T"] == 8 for r in rows.values())
    assert rows["floor"]["to_floor"] == 1.0 and rows["nn.LSTM"]["to_nn_lstm"] == 1.0
    assert all(r["ms"] > 0 for r in rows.values())
    assert max(data["validation"].values()) < 1e-4
    assert "QRNN fused" in capsys.readouterr().out


def test_slow_modes_stop_at_their_length():
    rows = bl.run((8, 5000), B=1, H=4, repeats={8: 1, 5000: 1}, progress=None,
                  impls=["floor", "nn.LSTM", "MinGRU fused", "MinGRU sequential"])
    assert [(r["T"], r["impl"]) for r in rows if r["T"] == 5000] == [
        (5000, "floor"), (5000, "nn.LSTM"), (5000, "MinGRU fused")]


def test_validation_refuses_a_wrong_result(monkeypatch):
    from lstmkit.engines import scan
    real = scan.ChunkedRecurrence.apply
    monkeypatch.setattr(scan.ChunkedRecurrence, "apply", lambda *a: (lambda y, h: (y * 1.01, h))(*real(*a)))
    with pytest.raises(AssertionError, match="fused"):
        bl.validate(8, 2, T=16)


@pytest.mark.parametrize("bad", ["0", "x", ""])
def test_long_bench_rejects_bad_lengths(bad, capsys):
    assert main(["bench", "--long", bad]) == 2
    assert "--long" in capsys.readouterr().err
