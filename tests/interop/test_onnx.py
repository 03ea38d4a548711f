"""ONNX export: every variant agrees with PyTorch in ONNX Runtime at batch sizes and lengths
other than the export's own check (B = 3, T = 5); unsupported requests fail clearly."""
import json
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import onnx
import onnxruntime as ort

import lstmkit
from lstmkit.variants import build
from lstmkit.cli import main as cli_main
from lstmkit.interop.onnx import compare

TOL = 1e-5
SIZES = [(1, 2), (1, 13), (4, 2), (4, 13)]           # (B, T): two batch sizes x two lengths

# case -> (registry name, constructor overrides, operator expected for every layer); D 5, H 7
CASES = {
    "vanilla": ("lstm", {}, "LSTM"),
    "peepholes ifo": ("peepholes", {}, "LSTM"),
    "peepholes i": ("peepholes", dict(peepholes="i"), "LSTM"),
    "peepholes fo": ("peepholes", dict(peepholes="fo"), "LSTM"),
    "coupled": ("coupled", dict(forget_bias=1.0), "LSTM"),
    "coupled peepholes fo": ("coupled", dict(peepholes="fo"), "LSTM"),
    "coupled bidirectional 2 layers": ("coupled", dict(num_layers=2, bidirectional=True, peepholes="f"), "LSTM"),
    "no bias": ("coupled", dict(bias=False), "LSTM"),
    "no input gate": ("no_input_gate", {}, "Scan"),
    "no forget gate": ("no_forget_gate", dict(peepholes="i"), "Scan"),
    "no output gate": ("no_output_gate", {}, "Scan"),
    "no input activation": ("no_input_activation", {}, "Scan"),
    "no output activation": ("no_output_activation", {}, "Scan"),
    "layer norm": ("layer_norm", dict(peepholes=True), "Scan"),
    "projection": ("projection", dict(proj_size=3), "Scan"),
    "depth gate": ("depth_gated", dict(num_layers=3), "Scan"),
    "depth gate bidirectional": ("depth_gated", dict(bidirectional=True), "Scan"),
    "depth gate projection layer norm": ("depth_gated", dict(proj_size=3, layer_norm=True), "Scan"),
    "layer norm no bias": ("layer_norm", dict(bias=False), "Scan"),
    "zoneout (eval)": ("zoneout", dict(zoneout=0.3, recurrent_dropout=0.2), "Scan"),
    "recurrent dropout (eval)": ("recurrent_dropout", dict(recurrent_dropout=0.2), "LSTM"),
    "everything": ("layer_norm", dict(num_layers=2, bidirectional=True, proj_size=4, peepholes="fo",
                                      coupled=True, zoneout=0.1), "Scan"),
    "gru reset_after": ("gru", {}, "GRU"),
    "gru reset_before": ("gru_reset_before", {}, "GRU"),
    "gru layer norm": ("gru_layer_norm", {}, "Scan"),
    "gru reset_before layer norm zoneout": ("gru_reset_before", dict(layer_norm=True, zoneout=0.2), "Scan"),
    "gru no bias": ("gru_reset_before", dict(bias=False), "GRU"),
    "rnn no bias": ("rnn", dict(bias=False), "RNN"),
    "rnn tanh": ("rnn", {}, "RNN"),
    "rnn relu": ("rnn_relu", {}, "RNN"),
    "lstm 3 layers": ("lstm", dict(num_layers=3, dropout=0.3), "LSTM"),
    "lstm bidirectional 2 layers": ("lstm", dict(num_layers=2, bidirectional=True), "LSTM"),
    "gru bidirectional 2 layers": ("gru", dict(num_layers=2, bidirectional=True), "GRU"),
    "rnn bidirectional": ("rnn_relu", dict(bidirectional=True), "RNN"),
    "batch_first": ("lstm", dict(num_layers=2, batch_first=True, bidirectional=True), "LSTM"),
    "batch_first scan": ("gru_layer_norm", dict(batch_first=True), "Scan"),
}
VARIANTS = {case: ((lambda name=name, kw=kw: build(name, 5, 7, **kw)), op) for case, (name, kw, op) in CASES.items()}
# the fixed-operator variants, also through Scan (force_scan), so both paths are checked
FORCED = ["vanilla", "peepholes fo", "coupled peepholes fo", "gru reset_after", "gru reset_before",
          "rnn relu", "lstm bidirectional 2 layers"]


def _agree(model, result):
    """ONNX Runtime within TOL of PyTorch; where it is not (a small layer-norm group over
    many steps amplifies float32 rounding in both runtimes), within TOL of the exact answer,
    PyTorch's float64 one (measured: ONNX Runtime 9.9e-6 from it, PyTorch's float32 1.8e-6)."""
    worst = 0.0
    for i, (B, T) in enumerate(SIZES):
        diff = compare(model, result, batch=B, steps=T, seed=10 + i)
        assert set(diff) == set(result.signature.outputs)
        if max(diff.values()) > TOL:
            f32, ort64 = _float32_error(model, result, B, T, seed=10 + i)
            assert ort64 <= TOL, \
                f"|ONNX Runtime - float64| = {ort64:.3g}, |PyTorch float32 - float64| = {f32:.3g}"
            continue
        worst = max(worst, *diff.values())
    return worst


def _float32_error(model, result, B, T, seed):
    """(max |PyTorch float32 − float64|, max |ONNX Runtime − PyTorch float64|) on one input."""
    import copy

    from lstmkit.interop.onnx._verify import example_feeds, onnx_outputs, torch_outputs
    sig = result.signature
    feeds = example_feeds(model, sig, B, T, seed)
    exact = torch_outputs(copy.deepcopy(model).double(), sig,
                          {k: v.astype(np.float64) if v.dtype == np.float32 else v for k, v in feeds.items()})
    f32, ort = torch_outputs(model, sig, feeds), onnx_outputs(result.path, feeds)
    gap = lambda a: max(float(np.abs(a[k] - exact[k]).max()) for k in exact)  # noqa: E731
    return gap(f32), gap(ort)


def _model(name, seed=0):
    torch.manual_seed(seed)
    m = VARIANTS[name][0]().eval()
    with torch.no_grad():                 # move LN gains and peepholes off their init values
        for p in m.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return m


@pytest.mark.parametrize("name", list(VARIANTS))
@pytest.mark.parametrize("extras", [False, pytest.param(True, marks=pytest.mark.slow)],
                         ids=["plain", "state+lengths"])
def test_variant_agrees_with_torch(name, extras, tmp_path):
    model = _model(name)
    r = lstmkit.export_onnx(model, tmp_path / "m.onnx", initial_state=extras, lengths=extras)
    assert r.layers == (VARIANTS[name][1],) * model.num_layers
    assert r.max_abs_diff is not None and r.max_abs_diff <= TOL
    want = ["input"] + (["h0", "c0"][:len(model.specs[0].state_sizes)] + ["lengths"] if extras else [])
    assert list(r.signature.inputs) == want
    _agree(model, r)


@pytest.mark.parametrize("name", FORCED)
def test_scan_path_of_operator_variants(name, tmp_path):
    model = _model(name, seed=1)
    r = lstmkit.export_onnx(model, tmp_path / "m.onnx", initial_state=True, lengths=True, force_scan=True)
    assert set(r.layers) == {"Scan"}
    _agree(model, r)


@pytest.mark.parametrize("cell", [lambda: lstmkit.LSTMCell(5, 7, peepholes=True),
                                  lambda: lstmkit.LSTMCell(5, 7, coupled=True, layer_norm=True),
                                  lambda: lstmkit.GRUCell(5, 7, reset_after=False),
                                  lambda: lstmkit.RNNCell(5, 7, nonlinearity="relu")])
@pytest.mark.parametrize("state", [False, True])
def test_cells(cell, state, tmp_path):
    torch.manual_seed(0)
    model = cell().eval()
    r = lstmkit.export_onnx(model, tmp_path / "c.onnx", initial_state=state)
    assert r.signature.outputs[0] == "h_n"
    _agree(model, r)


def test_against_torch_nn_lstm_with_packed_sequences(tmp_path):
    """An independent oracle: torch's own nn.LSTM on packed input, through from_torch."""
    torch.manual_seed(0)
    ref = nn.LSTM(5, 7, num_layers=2, bidirectional=True)
    r = lstmkit.export_onnx(lstmkit.from_torch(ref).eval(), tmp_path / "m.onnx", initial_state=True, lengths=True)
    x, lengths = torch.randn(9, 4, 5), torch.tensor([9, 3, 6, 1])
    h0, c0 = torch.randn(4, 4, 7), torch.randn(4, 4, 7)
    packed = nn.utils.rnn.pack_padded_sequence(x, lengths, enforce_sorted=False)
    with torch.no_grad():
        y, (h, c) = ref(packed, (h0, c0))
    y = nn.utils.rnn.pad_packed_sequence(y, total_length=9)[0]
    sess = ort.InferenceSession(str(r.path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"input": x.numpy(), "h0": h0.numpy(), "c0": c0.numpy(), "lengths": lengths.numpy()})
    for a, b in zip(got, (y, h, c)):
        np.testing.assert_allclose(a, b.numpy(), atol=TOL, rtol=0)


@pytest.mark.parametrize("name", ["vanilla", "projection"])
def test_dynamic_axes_and_other_lengths(name, tmp_path):
    """Exported (and checked) at T = 5, B = 3; run at T = 1 and T = 60 with other batches."""
    model = _model(name)
    r = lstmkit.export_onnx(model, tmp_path / "m.onnx")
    g = onnx.load(str(r.path)).graph
    dims = [d.dim_param or d.dim_value for d in g.input[0].type.tensor_type.shape.dim]
    assert dims == ["T", "B", 5]
    sess = ort.InferenceSession(str(r.path), providers=["CPUExecutionProvider"])
    for T, B in [(1, 2), (60, 7)]:
        x = torch.randn(T, B, 5)
        y = sess.run(["output"], {"input": x.numpy()})[0]
        with torch.no_grad():
            np.testing.assert_allclose(y, model(x)[0].numpy(), atol=TOL, rtol=0)


def test_cifg_graph_is_runtime_independent(tmp_path):
    """The CIFG weights mean i = 1 − f whether a runtime couples the gates (onnxruntime)
    or ignores input_forget (the ONNX reference runtime)."""
    from onnx.reference import ReferenceEvaluator
    from lstmkit.interop.onnx._verify import example_feeds, torch_outputs
    model = _model("coupled peepholes fo")
    r = lstmkit.export_onnx(model, tmp_path / "m.onnx", initial_state=True)
    feeds = example_feeds(model, r.signature, 2, 6, seed=3)
    want = torch_outputs(model, r.signature, feeds)
    got = ReferenceEvaluator(str(r.path)).run(None, feeds)
    for name, a in zip(r.signature.outputs, got):
        np.testing.assert_allclose(a, want[name], atol=TOL, rtol=0)


class CharLM(nn.Module):
    """The shape of a language model: embedding -> lstmkit recurrent core -> decoder."""

    def __init__(self, rnn, vocab=11, tie=False):
        super().__init__()
        self.embedding = nn.Embedding(vocab, rnn.input_size)
        self.drop = nn.Dropout(0.2)
        self.rnn = rnn
        self.decoder = nn.Linear(rnn.hidden_size * rnn.num_directions, vocab)
        if tie:
            self.decoder.weight = self.embedding.weight

    def forward(self, tokens, state=None):
        y, state = self.rnn(self.drop(self.embedding(tokens)), state)
        return self.decoder(self.drop(y)), state


@pytest.mark.parametrize("rnn", [lambda: lstmkit.LSTM(6, 6, 2, peepholes=True),
                                 lambda: lstmkit.LSTM(6, 6, layer_norm=True, batch_first=True, dropout=0.1),
                                 lambda: lstmkit.GRU(6, 8, bidirectional=True)])
def test_language_model(rnn, tmp_path):
    torch.manual_seed(0)
    core = rnn()
    lm = CharLM(core, tie=core.hidden_size == 6 and not core.bidirectional).eval()
    r = lstmkit.export_onnx(lm, tmp_path / "lm.onnx", initial_state=True, lengths=True)
    assert r.signature.inputs[0] == "tokens" and r.signature.outputs[0] == "logits"
    _agree(lm, r)
    plain = lstmkit.export_onnx(lm, tmp_path / "lm2.onnx")
    tokens = torch.randint(0, 11, (3, 8))
    with torch.no_grad():
        want = lm(tokens)[0]
    got = ort.InferenceSession(str(plain.path), providers=["CPUExecutionProvider"]).run(
        ["logits"], {"tokens": tokens.numpy()})[0]
    np.testing.assert_allclose(got, want.numpy(), atol=TOL, rtol=0)


# ---- what cannot be exported -----------------------------------------------------------
@pytest.mark.parametrize("kw", [dict(zoneout=0.1), dict(recurrent_dropout=0.1), dict(num_layers=2, dropout=0.1)])
def test_training_mode_noise_is_refused(kw, tmp_path):
    model = lstmkit.LSTM(3, 4, **kw).train()
    with pytest.raises(ValueError, match=r"training mode.*model\.eval\(\)"):
        lstmkit.export_onnx(model, tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_training_mode_without_noise_exports(tmp_path):
    model = lstmkit.LSTM(3, 4).train()
    assert lstmkit.export_onnx(model, tmp_path / "m.onnx").max_abs_diff <= TOL


@pytest.mark.parametrize("model, error, match", [
    (lambda: lstmkit.LSTM(3, 4).double(), TypeError, "float32"),
    (lambda: CharLM(lstmkit.LSTM(4, 4)).double().eval(), TypeError, "float32"),
    (lambda: nn.LSTM(3, 4), TypeError, "from_torch"),
    (lambda: nn.Sequential(nn.Linear(3, 4)), TypeError, "nn.Embedding"),
    (lambda: CharLM(lstmkit.LSTM(4, 4)).train(), ValueError, "training mode"),
    (lambda: "model", TypeError, "nn.Module"),
])
def test_unsupported_models(model, error, match, tmp_path):
    with pytest.raises(error, match=match):
        lstmkit.export_onnx(model(), tmp_path / "m.onnx")


def test_cell_with_lengths_is_refused(tmp_path):
    with pytest.raises(ValueError, match="lengths"):
        lstmkit.export_onnx(lstmkit.LSTMCell(3, 4), tmp_path / "m.onnx", lengths=True)


def test_lm_with_another_forward_is_refused(tmp_path):
    class Scaled(CharLM):
        def forward(self, tokens, state=None):
            y, state = self.rnn(2.0 * self.embedding(tokens), state)
            return self.decoder(y), state
    with pytest.raises(ValueError, match="is not decoder"):
        lstmkit.export_onnx(Scaled(lstmkit.LSTM(4, 4)).eval(), tmp_path / "m.onnx", verify=False)
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.slow
def test_import_without_onnx(tmp_path):
    code = ("import sys; sys.modules['onnx'] = None\n"
            "import lstmkit\n"
            "try:\n    lstmkit.export_onnx(lstmkit.LSTM(2, 3), 'x.onnx')\n"
            "except ImportError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, check=True)
    assert "lstmkit[onnx]" in out.stdout


# ---- the CLI ------------------------------------------------------------------------
def test_cli_exports_a_run(tmp_path, capsys, monkeypatch):
    torch.manual_seed(0)
    lm = CharLM(lstmkit.LSTM(6, 6, coupled=True)).eval()      # load_run gives eval mode
    from lstmkit.cli import export
    monkeypatch.setattr(export, "load_run", lambda run_dir: (lm, {"task": "text"}))
    (tmp_path / "run").mkdir()
    rc = cli_main(["export", str(tmp_path / "run"), "--json", str(tmp_path / "r.json"), "--lengths"])
    assert rc == 0, capsys.readouterr().err
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["layers"] == ["LSTM"] and report["max_abs_diff"] <= TOL
    assert report["inputs"] == ["tokens", "lengths"]
    assert (tmp_path / "run" / "model.onnx").exists()
    assert cli_main(["export", str(tmp_path / "missing")]) == 2


class _DropConnect(nn.Module):
    """AWD-LSTM's weight drop as a parametrization, the way a language model may use it."""

    def forward(self, w):
        return nn.functional.dropout(w, 0.5, self.training)


def test_parametrized_weights(tmp_path):
    torch.manual_seed(0)
    lm = CharLM(lstmkit.LSTM(6, 6, 2))
    lm.drop.p = 0.0                       # so that the weight drop is the only noise left
    for k in range(2):
        nn.utils.parametrize.register_parametrization(lm.rnn, f"weight_hh_l{k}", _DropConnect())
    with pytest.raises(ValueError, match="parametrized weights"):
        lstmkit.export_onnx(lm.train(), tmp_path / "m.onnx")
    _agree(lm.eval(), lstmkit.export_onnx(lm, tmp_path / "m.onnx", lengths=True))


def test_disagreeing_graph_is_not_left_behind(tmp_path, monkeypatch):
    from lstmkit.interop.onnx import _export
    monkeypatch.setattr(_export, "compare", lambda *a, **k: {"output": 0.5})
    with pytest.raises(RuntimeError, match="disagreed with PyTorch"):
        lstmkit.export_onnx(lstmkit.LSTM(3, 4), tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize("options", [["--layers", "2", "--dropout", "0.1", "--peepholes", "fo", "--coupled"],
                                     ["--layer-norm", "--proj", "8", "--zoneout", "0.1", "--weight-drop", "0.2"]],
                         ids=["cifg-2-layers", "ln-proj-zoneout-weightdrop"])
def test_trained_run_end_to_end(options, tmp_path, capsys):
    """lstmkit train -> lstmkit export RUN -> ONNX Runtime agrees with the loaded run."""
    from lstmkit.tasks.runs import load_run
    text, run = tmp_path / "text.txt", tmp_path / "run"
    text.write_text((Path(sysconfig.get_paths()["stdlib"]) / "colorsys.py").read_text()[:6000])
    tiny = ["--hidden", "16", "--embed", "8", "--batch-size", "4", "--bptt", "8", "--eval-tokens", "256",
            "--eval-every", "6", "--sample-length", "10", "--steps", "6", "--quiet"]
    assert cli_main(["train", "--text", str(text), "--out", str(run), *tiny, *options]) == 0
    rc = cli_main(["export", str(run), "--onnx", str(tmp_path / "lm.onnx"), "--initial-state",
                   "--lengths", "--json", str(tmp_path / "r.json")])
    assert rc == 0, capsys.readouterr().err
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["inputs"][0] == "tokens" and report["outputs"][0] == "logits"
    model, _ = load_run(run)
    r = lstmkit.export_onnx(model, tmp_path / "again.onnx", initial_state=True, lengths=True)
    assert r.layers == tuple(report["layers"])
    _agree(model, r)


def test_cli_refuses_a_folder_that_is_not_a_run(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert cli_main(["export", str(tmp_path / "empty")]) == 2
    assert "not a run directory" in capsys.readouterr().err
