"""lstmkit bench --latency: the streaming step of lstmkit float32/bfloat16/int8 against nn.LSTM and
ONNX Runtime, every contender checked before it is timed."""
import json

import pytest
import torch

from lstmkit import benchmark_latency as bl
from lstmkit.cli import main

@pytest.fixture
def threads():
    """--latency runs on one thread (a real-time step's core); give the worker its threads back."""
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def test_latency_bench_writes_every_row(tmp_path, capsys, threads):
    pytest.importorskip("onnxruntime", reason="the ONNX Runtime rows need onnxruntime (the dev extra)")
    out = tmp_path / "latency.json"
    assert main(["bench", "--latency", "16", "--batch", "1,3", "--repeats", "1", "--steps", "2", "--gemm",
                 "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    impls = {"nn.LSTM float32", "lstmkit float32", "lstmkit bfloat16", "lstmkit int8", "ORT float32", "ORT int8"}
    assert {(r["B"], r["impl"]) for r in rows} == {(b, i) for b in (1, 3) for i in impls}
    by = {(r["B"], r["impl"]): r for r in rows}
    assert all(by[(b, "nn.LSTM float32")]["ratio"] == 1.0 for b in (1, 3))
    assert by[(1, "lstmkit int8")]["bytes"] < 0.5 * by[(1, "lstmkit float32")]["bytes"]
    assert by[(1, "lstmkit float32")]["max_abs_err"] < 1e-4 and by[(1, "lstmkit int8")]["max_abs_err"] < 3e-2
    assert "| 16 | 3 | ORT int8 |" in capsys.readouterr().out
    assert "float32 mm" in {r["impl"] for r in json.loads(out.read_text())["gemm"]}


def test_a_wrong_contender_is_refused(monkeypatch, tmp_path):
    """Validation can fail: an int8 model whose steps are off is named, not timed."""
    real = bl.quantize

    def off(model):
        q = real(model)
        q.bias_ih_l0.data += 1.0
        return q
    monkeypatch.setattr(bl, "quantize", off)
    with pytest.raises(AssertionError, match="lstmkit int8 differs from nn.LSTM"):
        bl.contenders(8, tmp_path)


@pytest.mark.parametrize("args, flag", [(["--latency", "0"], "--latency"), (["--latency", "a"], "--latency"),
                                        (["--latency", "8", "--batch", "x"], "--batch"),
                                        (["--latency", "8", "--steps", "0"], "--steps")])
def test_latency_bench_rejects_bad_arguments(args, flag, capsys):
    assert main(["bench", *args]) == 2
    assert flag in capsys.readouterr().err
