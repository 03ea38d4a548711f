"""ONNX for deployment: streaming graphs (states in and out, T down to 1) and int8 graphs in
standard QDQ form, run by ONNX Runtime step by step against PyTorch."""
import json

import numpy as np
import onnx
import pytest
import torch
from torch import nn

import lstmkit
from lstmkit.cli import main as cli_main
from lstmkit.interop.onnx import compare, compare_streaming
from lstmkit.variants import build

TOL = 1e-5
# case -> (registry name, overrides); D 5, H 7
CASES = {
    "vanilla": ("lstm", {}),
    "peepholes": ("peepholes", {}),
    "coupled": ("coupled", {}),
    "projection": ("projection", dict(proj_size=3)),             # Scan: W_hr inside the body
    "layer_norm": ("layer_norm", {}),                           # Scan
    "depth_gated": ("depth_gated", {}),                         # Scan, W_xd
    "gru": ("gru", {}),
    "gru_reset_before": ("gru_reset_before", {}),
    "rnn": ("rnn", {}),
}


def _model(case, **kw):
    torch.manual_seed(0)
    name, options = CASES[case]
    return build(name, 5, 7, **{"num_layers": 2, **options, **kw}).eval()


def _domains(graph: onnx.GraphProto) -> set[str]:
    """Every node's domain, Scan and Loop bodies included."""
    out = set()
    for node in graph.node:
        out.add(node.domain)
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                out |= _domains(attr.g)
    return out


def _int8_initializers(graph: onnx.GraphProto) -> list[str]:
    """int8 weight initializers (the zero points of DequantizeLinear left out)."""
    found = [i.name for i in graph.initializer if i.data_type == onnx.TensorProto.INT8 and len(i.dims) == 2]
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                found += _int8_initializers(attr.g)
    return found


@pytest.mark.parametrize("case", list(CASES))
def test_int8_streaming_graph_agrees_step_by_step(case, tmp_path):
    q = lstmkit.quantize(_model(case, batch_first=case == "gru"))
    r = lstmkit.export_onnx(q, tmp_path / "m.onnx", int8=True, streaming=True)
    assert r.signature.inputs[1:] == ("h0", "c0")[:len(q.specs[0].state_sizes)]
    assert r.max_abs_diff <= TOL
    for B, T in [(1, 1), (2, 9)]:
        assert max(compare_streaming(q, r, batch=B, steps=T, seed=3).values()) <= TOL
        assert max(compare(q, r, batch=B, steps=T, seed=4).values()) <= TOL
    proto = onnx.load(str(tmp_path / "m.onnx"))
    assert _domains(proto.graph) <= {""}                          # no com.microsoft (or any) contrib op
    matrices = sum(1 for n, _ in q.named_buffers() if n.endswith("_int8"))
    assert len(_int8_initializers(proto.graph)) >= min(matrices, 2)
    nodes = [n.op_type for n in proto.graph.node]
    assert "DequantizeLinear" in nodes and "DynamicQuantizeLSTM" not in nodes


def test_float_streaming_graph(tmp_path):
    m = _model("vanilla", batch_first=True)
    r = lstmkit.export_onnx(m, tmp_path / "m.onnx", streaming=True)
    assert r.max_abs_diff <= TOL
    assert max(compare_streaming(m, r, batch=3, steps=12).values()) <= TOL
    assert not _int8_initializers(onnx.load(str(tmp_path / "m.onnx")).graph)


def test_int8_graph_is_under_0_3_of_float(tmp_path):
    torch.manual_seed(0)
    m = lstmkit.LSTM(64, 128).eval()
    f = lstmkit.export_onnx(m, tmp_path / "f.onnx", streaming=True)
    q = lstmkit.export_onnx(lstmkit.quantize(m), tmp_path / "q.onnx", streaming=True, int8=True)
    assert q.path.stat().st_size <= 0.3 * f.path.stat().st_size


def test_int8_export_of_a_float_model_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"not on an int8 grid.*quantize the model first"):
        lstmkit.export_onnx(_model("vanilla"), tmp_path / "m.onnx", int8=True)
    assert not (tmp_path / "m.onnx").exists()


class CharLM(nn.Module):
    def __init__(self, vocab=11):
        super().__init__()
        self.embedding = nn.Embedding(vocab, 6)
        self.rnn = lstmkit.LSTM(6, 8, 2)
        self.decoder = nn.Linear(8, vocab)

    def forward(self, tokens, state=None):
        y, state = self.rnn(self.embedding(tokens), state)
        return self.decoder(y), state


def test_int8_language_model_streams(tmp_path):
    torch.manual_seed(0)
    q = lstmkit.quantize(CharLM().eval())
    r = lstmkit.export_onnx(q, tmp_path / "lm.onnx", int8=True, streaming=True)
    assert r.signature.inputs == ("tokens", "h0", "c0") and r.max_abs_diff <= TOL
    assert max(compare_streaming(q, r, batch=2, steps=7).values()) <= TOL
    # embedding, decoder and 2 x (W, R)
    assert len(_int8_initializers(onnx.load(str(tmp_path / "lm.onnx")).graph)) == 6


def test_streaming_refuses_a_bidirectional_model(tmp_path):
    with pytest.raises(ValueError, match="streaming: a bidirectional model"):
        lstmkit.export_onnx(_model("gru", bidirectional=True), tmp_path / "m.onnx", streaming=True)
    assert not (tmp_path / "m.onnx").exists()


def test_streaming_check_needs_state_inputs(tmp_path):
    m = _model("vanilla")
    r = lstmkit.export_onnx(m, tmp_path / "m.onnx")
    with pytest.raises(ValueError, match="state inputs"):
        compare_streaming(m, r, batch=1, steps=2)


def test_cli_int8_streaming(tmp_path, capsys, monkeypatch):
    torch.manual_seed(0)
    lm = CharLM().eval()
    from lstmkit.cli import export
    monkeypatch.setattr(export, "load_run", lambda run_dir: (lm, {"task": "text"}))
    (tmp_path / "run").mkdir()
    rc = cli_main(["export", str(tmp_path / "run"), "--onnx", str(tmp_path / "q.onnx"), "--int8", "--streaming",
                   "--json", str(tmp_path / "r.json")])
    assert rc == 0, capsys.readouterr().err
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["int8"] and report["streaming"] and report["max_abs_diff"] <= TOL
    assert report["inputs"] == ["tokens", "h0", "c0"] and report["bytes"] == (tmp_path / "q.onnx").stat().st_size
    assert "int8 QDQ weights" in capsys.readouterr().out
    assert cli_main(["export", str(tmp_path / "run"), "--streaming", "--lengths"]) == 2
    assert "--streaming" in capsys.readouterr().err


def test_ort_runs_the_int8_graph_with_numpy_only(tmp_path):
    """What a deployment does: no torch, one step per run, the state fed back."""
    import onnxruntime as ort
    torch.manual_seed(0)
    q = lstmkit.quantize(lstmkit.GRU(4, 6).eval())
    lstmkit.export_onnx(q, tmp_path / "g.onnx", int8=True, streaming=True)
    sess = ort.InferenceSession(str(tmp_path / "g.onnx"), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((10, 1, 4)).astype(np.float32)
    h = np.zeros((1, 1, 6), np.float32)
    for t in range(10):
        y, h = sess.run(None, {"input": x[t:t + 1], "h0": h})
    with torch.no_grad():
        want, h_n = q(torch.from_numpy(x))
    np.testing.assert_allclose(h, h_n.numpy(), atol=TOL, rtol=0)
    np.testing.assert_allclose(y[0], want[-1].numpy(), atol=TOL, rtol=0)
