"""lstmkit bench: validates, times and writes a table and JSON (smallest quick run)."""
import json

from lstmkit.cli import main


def test_bench_quick_run_writes_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    rc = main(["bench", "--sizes", "XS", "--cell", "rnn,coupled", "--repeats", "1", "--no-memory",
               "--reference-sizes", "", "--json", str(out)])
    assert rc == 0
    doc = json.loads(out.read_text())
    impls = {(r["variant"], r["impl"]) for r in doc["rows"]}
    assert impls == {("rnn", "fused"), ("rnn", "torch"), ("rnn", "loop"),
                     ("coupled", "fused"), ("coupled", "torch")}
    assert all(r["fwd_ms"] > 0 and r["fb_ms"] > 0 for r in doc["rows"])
    torch_row = next(r for r in doc["rows"] if r["impl"] == "torch")
    assert torch_row["fwd_ratio"] == 1.0 and torch_row["fb_ratio"] == 1.0
    assert torch_row["step_ratio"] == 1.0                  # the streaming column: fused and torch
    assert all((r["step_us"] or 0) > 0 for r in doc["rows"] if r["impl"] in ("fused", "torch"))
    assert doc["environment"]["torch"] and doc["config"]["threads"] == 2
    assert "rnn" in capsys.readouterr().out


def test_bench_rejects_unknown_size(capsys):
    assert main(["bench", "--sizes", "XL"]) == 2
    assert "--sizes" in capsys.readouterr().err
