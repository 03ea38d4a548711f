"""sLSTM / mLSTM where a user's program captures them: torch.export with a dynamic T (the step
inside torch's scan operator: engines.slstm.traced, engines.mlstm mode "traced"), the ONNX
exporter with default options run in ONNX Runtime, and torch.compile(fullgraph=True) forward
and backward, each against eager; the exported body run eagerly against the step loop."""
import pytest
import torch
from torch import nn

from lstmkit.engines import mlstm as mlstm_engine
from lstmkit.engines import slstm as slstm_engine
from lstmkit.xlstm import MLSTMState, SLSTMState, mLSTM, sLSTM

CLASSES = {"slstm": sLSTM, "mlstm": mLSTM}
T, B, D, H = 7, 2, 3, 4


class UserModel(nn.Module):
    """An xLSTM layer inside a user's model, with a head; returns the output and the whole state."""

    def __init__(self, cls):
        super().__init__()
        self.rnn = cls(D, H, num_heads=2)
        self.head = nn.Linear(H, 1)

    def forward(self, x):
        y, state = self.rnn(x)
        return (self.head(y), *state)


def _model(name):
    torch.manual_seed(0)
    return UserModel(CLASSES[name]).eval()


def _dynamic():
    return ({0: torch.export.Dim("T")},)


@pytest.mark.parametrize("name", CLASSES)
def test_export_keeps_t_symbolic(name):
    m = _model(name)
    ep = torch.export.export(m, (torch.randn(T, B, D),), dynamic_shapes=_dynamic())
    for t in (4, 23):
        x = torch.randn(t, B, D)
        with torch.no_grad():
            want = m(x)
        for got, w in zip(ep.module()(x), want):
            torch.testing.assert_close(got, w, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", CLASSES)
def test_onnx_runtime_equals_pytorch_at_two_lengths(name, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    m = _model(name)
    path = tmp_path / "m.onnx"
    torch.onnx.export(m, (torch.randn(T, B, D),), str(path), dynamo=True, dynamic_shapes=_dynamic())
    sess = ort.InferenceSession(str(path))
    for t in (5, 30):
        x = torch.randn(t, B, D)
        got = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})
        with torch.no_grad():
            want = m(x)
        assert len(got) == len(want)
        for g, w in zip(got, want):
            torch.testing.assert_close(torch.from_numpy(g), w, atol=1e-5, rtol=1e-5)


# aot_eager: Dynamo's whole graph (no break) and AOT autograd's backward, in seconds; inductor
# (the default backend) generates code for every unrolled step (about a minute on 2 cores).
@pytest.mark.parametrize("backend", ["aot_eager", pytest.param("inductor", marks=pytest.mark.slow)])
@pytest.mark.parametrize("name", CLASSES)
def test_compile_fullgraph_equals_eager_with_gradients(name, backend):
    m = _model(name).train()
    x = torch.randn(4, B, D)
    got, want = [], []
    for fn, sink in ((torch.compile(m, fullgraph=True, backend=backend), got), (m, want)):
        m.zero_grad()
        xg = x.clone().requires_grad_()
        outs = fn(xg)
        sum(o.sum() for o in outs).backward()
        sink += [*(o.detach() for o in outs), xg.grad, *(p.grad.clone() for p in m.parameters())]
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_traced_refuses_a_trace():
    s, mm = sLSTM(D, H, num_heads=2), mLSTM(D, H, num_heads=2)
    x = torch.randn(T, B, D)
    with pytest.raises(ValueError, match="record"):
        slstm_engine.traced(s.specs[0], x, s._fresh(B, x), s.layer_params(0), record=True)
    with pytest.raises(ValueError, match="record"):
        mlstm_engine.run(mm.specs[0], x, MLSTMState(*(t[0] for t in mm._fresh(B, x))), mm.layer_params(0),
                         mode="traced", record=True)


def _oracle_and_traced(name):
    """(outputs, final state, gradients) of the step loop and of the traced body, float64,
    with lengths (one sequence padded) and a random initial state."""
    torch.manual_seed(1)
    m = CLASSES[name](D, H, num_heads=2, dtype=torch.float64)
    spec, p = m.specs[0], m.layer_params(0)
    x = torch.randn(T, B, D, dtype=torch.float64, requires_grad=True)
    mask = (torch.arange(T)[:, None] < torch.tensor([T, 3])[None, :]).unsqueeze(-1)
    fresh = m._fresh(B, x)
    state = [(torch.randn_like(t[0]) if f != "m" else torch.randn_like(t[0]) * 2).requires_grad_()
             for f, t in zip(fresh._fields, fresh)]
    if name == "slstm":
        state[2] = (state[2].detach().abs() + 0.5).requires_grad_()           # a normaliser n > 0
        runs = {"traced": lambda st: slstm_engine.traced(spec, x, SLSTMState(*st), p, mask=mask),
                "loop": lambda st: slstm_engine.run(spec, x, SLSTMState(*st), p, mask=mask)}
    else:
        runs = {mode: (lambda st, mode=mode: mlstm_engine.run(spec, x, MLSTMState(*st), p, mask=mask, mode=mode))
                for mode in ("traced", "recurrent")}
    res = []
    for run in runs.values():
        r = run(state)
        loss = (r.output ** 2).sum() + sum((t * (k + 1)).sum() for k, t in enumerate(r.state))
        grads = torch.autograd.grad(loss, [x, *state, *p.values()])
        res.append((r.output, *r.state, *grads))
    return res


@pytest.mark.parametrize("name", CLASSES)
def test_traced_equals_the_step_loop_with_lengths_and_state(name):
    """The exported body, run eagerly: outputs, final state and every gradient as the oracle's."""
    traced, loop = _oracle_and_traced(name)
    assert len(traced) == len(loop)
    for a, b in zip(traced, loop):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-10)


@pytest.mark.parametrize("name", CLASSES)
def test_export_onnx_points_to_torch_onnx_export(name, tmp_path):
    """Their graph exports with torch.onnx.export at a fixed batch size; export_onnx says how."""
    import lstmkit
    with pytest.raises(TypeError, match="torch.onnx.export"):
        lstmkit.export_onnx(CLASSES[name](8, 8).eval(), tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()
