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


def test_bench_compile_and_bf16_columns(tmp_path):
    """--compile and --bf16 add rows for fused and torch, validated against float32 eager
    first; a variant torch lacks gets only lstmkit's rows."""
    out = tmp_path / "bench.json"
    rc = main(["bench", "--sizes", "XS", "--cell", "rnn,coupled", "--repeats", "1", "--no-memory",
               "--no-streaming", "--reference-sizes", "", "--threads", "1", "--compile", "--bf16",
               "--json", str(out)])
    assert rc == 0
    doc = json.loads(out.read_text())
    impls = {(r["variant"], r["impl"]) for r in doc["rows"]}
    assert {("rnn", i) for i in ("fused+compile", "torch+compile", "fused+bf16", "torch+bf16")} <= impls
    assert ("coupled", "fused+bf16") in impls and ("coupled", "torch+bf16") not in impls
    assert doc["config"]["extras"] == ["compile", "bf16"]
    assert all(r["fwd_ms"] > 0 and r["fb_ms"] > 0 for r in doc["rows"])


def test_validate_extra_catches_a_wrong_result(monkeypatch):
    """The check is real: a compiled model that computes something else is refused."""
    import pytest

    from lstmkit import benchmark as bm
    real = bm.build

    def broken(variant, size, impl, seed=0):
        f, mod = real(variant, size, impl, seed)
        return ((lambda x: f(x) * 1.01) if impl.endswith("+compile") else f), mod

    monkeypatch.setattr(bm, "build", broken)
    with pytest.raises(AssertionError, match="fused\\+compile disagrees"):
        bm.validate_extra("rnn", "XS", "compile")
