"""Graph capture of a user's model holding lstmkit modules: torch.compile(fullgraph=True)
against eager (outputs and every gradient), torch.export with a dynamic T run at two other
lengths, and torch.onnx.export with default arguments run in ONNX Runtime at two lengths.
Compiling takes tens of seconds per model on two cores: one variant per family runs in
the fast subset, the whole registry under the slow marker."""
from __future__ import annotations

import contextlib
import io
import warnings

import numpy as np
import pytest
import torch

from .variants import make, sweep

D, H, B = 4, 6, 2


class UserModel(torch.nn.Module):
    """What a user writes: their layers around the recurrent one."""

    def __init__(self, case):
        super().__init__()
        self.rnn = make(case, D, H, num_layers=2, bidirectional=case != "depth_gated")
        width = (self.rnn.proj_size or H) * (2 if self.rnn.bidirectional else 1)
        self.head = torch.nn.Linear(width, 3)

    def forward(self, x):
        y, _ = self.rnn(x)
        return self.head(torch.tanh(y))


def _model(case):
    torch.manual_seed(0)
    return UserModel(case).eval()


@pytest.mark.parametrize("backend", ["inductor", "aot_eager"])
@pytest.mark.parametrize("case", sweep(fast=("lstm",)))
def test_compile_fullgraph_equals_eager(case, backend):
    """Inductor, what users get, compiles for tens of seconds per model; aot_eager traces the
    same graph (forward and backward through lstmkit::run) in seconds, so it sweeps the
    registry and inductor runs on the families."""
    if backend == "inductor" and case not in ("lstm", "gru", "rnn", "depth_gated"):
        pytest.skip("inductor on one case per family; the rest with aot_eager")
    torch._dynamo.reset()
    m = _model(case)
    x = torch.randn(7, B, D, requires_grad=True)
    want = m(x)
    gwant = torch.autograd.grad((want ** 2).sum(), [x, *m.parameters()])
    got = torch.compile(m, fullgraph=True, backend=backend)(x)
    ggot = torch.autograd.grad((got ** 2).sum(), [x, *m.parameters()])
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    for a, b in zip(ggot, gwant):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("case", sweep(fast=("layer_norm",)))
def test_export_with_a_dynamic_time_dimension(case):
    m = _model(case)
    T = torch.export.Dim("T", min=2)
    program = torch.export.export(m, (torch.randn(5, B, D),), dynamic_shapes={"x": {0: T}})
    for steps in (3, 11):
        x = torch.randn(steps, B, D)
        torch.testing.assert_close(program.module()(x), m(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("case", sweep(fast=("gru",)))
def test_onnx_export_of_a_user_model(case, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    m = _model(case)
    path = tmp_path / "m.onnx"
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(m, (torch.randn(5, B, D),), path,
                          dynamic_shapes={"x": {0: torch.export.Dim("T", min=2)}})
    sess = ort.InferenceSession(str(path))
    for steps in (3, 11):
        x = torch.randn(steps, B, D)
        got = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
        np.testing.assert_allclose(got, m(x).detach().numpy(), atol=1e-5, rtol=1e-5)
