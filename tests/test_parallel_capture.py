"""MinLSTM / MinGRU / QRNN where a user's program captures them: torch.export with a dynamic T (the
scan operator, engines.scan's "traced" mode), the ONNX exporter with default options run in
ONNX Runtime, and torch.compile(fullgraph=True) forward and backward, each against eager."""
import pytest
import torch
from torch import nn

from lstmkit.parallel import QRNN, MinGRU, MinLSTM

CLASSES = {"mingru": MinGRU, "minlstm": MinLSTM, "qrnn": QRNN}
T, B, D, H = 9, 2, 3, 4


class UserModel(nn.Module):
    """A min-RNN stack inside a user's model, with a head."""

    def __init__(self, cls, **kw):
        super().__init__()
        self.rnn = cls(D, H, num_layers=2, **kw)
        self.head = nn.Linear(H, 1)

    def forward(self, x):
        y, h = self.rnn(x)                          # h: a tensor, or the QRNN's (c, x) state
        return (self.head(y), *h) if isinstance(h, tuple) else (self.head(y), h)


def _model(name, **kw):
    torch.manual_seed(0)
    return UserModel(CLASSES[name], **kw).eval()


@pytest.mark.parametrize("mode", ["parallel", "sequential"])
@pytest.mark.parametrize("name", CLASSES)
def test_export_keeps_t_symbolic(name, mode):
    m = _model(name, mode=mode)
    ep = torch.export.export(m, (torch.randn(T, B, D),), dynamic_shapes=({0: torch.export.Dim("T", min=2)},))
    for t in (4, 31):
        x = torch.randn(t, B, D)
        for got, want in zip(ep.module()(x), m(x)):
            torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", CLASSES)
def test_onnx_runtime_equals_pytorch_at_two_lengths(name, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    m = _model(name)
    path = tmp_path / "m.onnx"
    torch.onnx.export(m, (torch.randn(T, B, D),), str(path), dynamo=True,
                      dynamic_shapes=({0: torch.export.Dim("T", min=2)},))
    sess = ort.InferenceSession(str(path))
    for t in (5, 40):
        x = torch.randn(t, B, D)
        got = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})
        with torch.no_grad():
            want = m(x)
        for g, w in zip(got, want):
            torch.testing.assert_close(torch.from_numpy(g), w, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", CLASSES)
def test_compile_fullgraph_equals_eager_with_gradients(name):
    m = _model(name, mode="parallel").train()
    x = torch.randn(T, B, D)
    got, want = [], []
    for fn, sink in ((torch.compile(m, fullgraph=True), got), (m, want)):
        m.zero_grad()
        xg = x.clone().requires_grad_()
        y, *hs = fn(xg)
        (y.sum() + sum(h.sum() for h in hs)).backward()
        sink += [y.detach(), *(h.detach() for h in hs), xg.grad, *(p.grad.clone() for p in m.parameters())]
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_traced_mode_refuses_a_trace():
    from lstmkit.engines import scan
    m = MinGRU(D, H)
    with pytest.raises(ValueError, match="record"):
        scan.run(m.specs[0], torch.randn(T, B, D), torch.zeros(B, H), m.layer_params(0), mode="traced",
                 record=True)


@pytest.mark.parametrize("name", CLASSES)
def test_traced_mode_equals_the_step_loop_with_lengths_and_h0(name):
    """The exported body, run eagerly: outputs, final state and gradients as the oracle's."""
    from lstmkit.engines import scan
    torch.manual_seed(1)
    m = CLASSES[name](D, H, dtype=torch.float64)
    spec, p = m.specs[0], m.layer_params(0)
    extra = getattr(spec, "window", 1) - 1             # the QRNN reads its carried inputs first
    x = torch.randn(T + extra, B, D, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(B, H, dtype=torch.float64, requires_grad=True)
    mask = (torch.arange(T)[:, None] < torch.tensor([T, 3])[None, :]).unsqueeze(-1)
    res = []
    for mode in ("traced", "sequential"):
        r = scan.run(spec, x, h0, p, mask=mask, mode=mode)
        grads = torch.autograd.grad((r.output ** 2).sum() + r.state.sum(), [x, h0, *p.values()])
        res.append((r.output, r.state, *grads))
    for a, b in zip(*res):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-10)


@pytest.mark.parametrize("name, batch_first", [("mingru", False), ("minlstm", True), ("qrnn", False)])
def test_export_onnx_writes_them_with_dynamic_t_and_b(name, batch_first, tmp_path):
    """lstmkit.export_onnx takes the min cells and the QRNN (through torch's exporter): batch size
    and length stay dynamic, the final state (all of its fields) comes out, ONNX Runtime agrees."""
    ort = pytest.importorskip("onnxruntime")
    import lstmkit
    torch.manual_seed(0)
    m = CLASSES[name](D, H, num_layers=2, batch_first=batch_first).eval()
    r = lstmkit.export_onnx(m, tmp_path / "m.onnx")
    assert r.max_abs_diff is not None and r.max_abs_diff < 1e-5
    assert r.signature.outputs == (("output", "c_n", "x_n") if name == "qrnn" else ("output", "h_n"))
    sess = ort.InferenceSession(str(r.path))
    for t, b in ((3, 1), (20, 5)):
        x = torch.randn(b, t, D) if batch_first else torch.randn(t, b, D)
        got = sess.run(None, {"input": x.numpy()})
        with torch.no_grad():
            y, state = m(x)
        for g, w in zip(got, (y, *(state if isinstance(state, tuple) else (state,)))):
            torch.testing.assert_close(torch.from_numpy(g), w, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"streaming": True}, ValueError, "streaming: expected False for a MinLSTM"),
    ({"int8": True}, ValueError, "int8: expected False"),
])
def test_export_onnx_refuses_what_the_captured_graph_lacks(kwargs, error, match, tmp_path):
    import lstmkit
    with pytest.raises(error, match=match):
        lstmkit.export_onnx(MinLSTM(D, H).eval(), tmp_path / "m.onnx", **kwargs)
    assert not (tmp_path / "m.onnx").exists()


def test_export_onnx_refuses_training_mode_dropout(tmp_path):
    import lstmkit
    with pytest.raises(ValueError, match="model.eval"):
        lstmkit.export_onnx(MinGRU(D, H, num_layers=2, dropout=0.5), tmp_path / "m.onnx")
