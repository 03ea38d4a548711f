"""A real client: a torch.nn program (tests/clients/word_language_model.py) runs unchanged
with torch.nn.LSTM/GRU/RNN swapped for lstmkit's before it is imported, and its training
losses match the torch.nn run's; its saved model reloads under weights_only=True and its
ONNX export runs in ONNX Runtime with PyTorch's numbers."""
from __future__ import annotations

import contextlib
import importlib
import io
import sys

import numpy as np
import pytest
import torch

import lstmkit

ort = pytest.importorskip("onnxruntime")
PROGRAM = "tests.clients.word_language_model"


def _run(name, tmp_path, swap: bool, monkeypatch):
    if swap:
        monkeypatch.setattr(torch.nn, name, getattr(lstmkit, name))
    sys.modules.pop(PROGRAM, None)
    program = importlib.import_module(PROGRAM)
    out = tmp_path / ("lstmkit" if swap else "torch")
    out.mkdir()
    with contextlib.redirect_stdout(io.StringIO()):
        result = program.main(name, str(out))
    monkeypatch.undo()
    return result


@pytest.mark.parametrize("name", ["LSTM", "GRU", "RNN"])
def test_word_language_model_runs_unchanged(name, tmp_path, monkeypatch):
    ref = _run(name, tmp_path, False, monkeypatch)
    ours = _run(name, tmp_path, True, monkeypatch)
    assert isinstance(ours["model"].rnn, getattr(lstmkit, name))
    np.testing.assert_allclose(ours["losses"], ref["losses"], atol=1e-5, rtol=1e-5)
    assert ours["reloaded_loss"] == pytest.approx(ref["reloaded_loss"], abs=1e-5)
    data, hidden = ours["example"]
    sess = ort.InferenceSession(ours["onnx"])
    feeds = dict(zip([i.name for i in sess.get_inputs()],
                     [t.numpy() for t in torch.utils._pytree.tree_leaves((data, hidden))]))
    with torch.no_grad():
        want = ours["model"](data, hidden)[0].numpy()
    np.testing.assert_allclose(sess.run(None, feeds)[0], want, atol=1e-5, rtol=1e-5)
