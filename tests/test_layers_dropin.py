"""lstmkit where a program written for torch.nn puts its LSTM: pickling, flatten_parameters,
TorchScript's clear refusal, malformed packed input, double backward and torch.func."""
from __future__ import annotations

import io

import pytest
import torch
from torch.nn.utils.rnn import PackedSequence

import lstmkit
from lstmkit.engines import fused

from .variants import make, sweep

D, H, T, B = 3, 5, 6, 2


@pytest.mark.parametrize("name", sweep())
def test_double_backward_equals_the_reference_engine(name):
    """A gradient penalty through the fused engine: every second-order gradient is the
    reference engine's (it used to be silently missing for the input and most weights)."""
    got = []
    for backend in ("reference", "fused"):
        torch.manual_seed(0)
        m = make(name, D, H, num_layers=2, dtype=torch.float64, backend=backend).eval()
        x = torch.randn(T, B, D, dtype=torch.float64, requires_grad=True)
        y, _ = m(x)
        gx, = torch.autograd.grad((y ** 2).sum(), x, create_graph=True)
        got.append(torch.autograd.grad((gx ** 2).sum(), [x, *m.parameters()]))
    for a, b in zip(*got):
        torch.testing.assert_close(b, a, atol=1e-9, rtol=1e-9)


def test_torch_func_grad_equals_autograd():
    m = lstmkit.LSTM(D, H, num_layers=2, peepholes=True)
    x = torch.randn(T, B, D)
    params = dict(m.named_parameters())

    def loss(ps):
        y, _ = torch.func.functional_call(m, ps, (x,))
        return (y ** 2).sum()

    got = torch.func.grad(loss)(params)
    want = torch.autograd.grad(loss(params), list(params.values()))
    for k, w in zip(params, want):
        torch.testing.assert_close(got[k], w, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("factory", [
    lambda: lstmkit.LSTM(D, H, 2, peepholes="f", ablate="output_gate", layer_norm=True),
    lambda: lstmkit.DepthGatedLSTM(D, H, 2, proj_size=3),
    lambda: lstmkit.GRU(D, H, bidirectional=True, reset_after=False),
    lambda: lstmkit.RNN(D, H, nonlinearity="relu"),
    lambda: lstmkit.LSTMCell(D, H, coupled=True),
    lambda: lstmkit.GRUCell(D, H),
])
def test_whole_model_pickle_loads_with_weights_only(factory):
    """torch.save(model) / torch.load(weights_only=True) with only public classes allowed,
    as PyTorch's word_language_model example does; the loaded model computes the same."""
    rnn = factory().eval()
    model = torch.nn.Sequential(rnn)
    buf = io.BytesIO()
    torch.save(model, buf)
    buf.seek(0)
    with torch.serialization.safe_globals([type(rnn), torch.nn.Sequential]):
        loaded = torch.load(buf, weights_only=True)
    x = torch.randn(4, D) if "Cell" in type(rnn).__name__ else torch.randn(T, B, D)
    a, b = model(x), loaded(x)
    for u, v in zip(torch.utils._pytree.tree_leaves(a), torch.utils._pytree.tree_leaves(b)):
        torch.testing.assert_close(u, v, atol=0, rtol=0)
    assert loaded[0].state_dict().keys() == rnn.state_dict().keys()


def test_flatten_parameters_is_a_no_op():
    m = lstmkit.GRU(D, H, 2)
    x = torch.randn(T, B, D)
    before = m(x)[0]
    assert m.flatten_parameters() is None
    torch.testing.assert_close(m(x)[0], before, atol=0, rtol=0)


def test_torchscript_gets_a_clear_error():
    with pytest.raises(TypeError, match="TorchScript.*torch.compile.*torch.export"):
        torch.jit.script(lstmkit.LSTM(D, H))


@pytest.mark.parametrize("sizes", [[1, 2, 2], [2, 0], []])
def test_malformed_packed_sequence_names_batch_sizes(sizes):
    bs = torch.tensor(sizes, dtype=torch.int64)
    ps = PackedSequence(torch.randn(int(bs.sum()), D), bs)
    with pytest.raises(ValueError, match="input.batch_sizes"):
        lstmkit.LSTM(D, H)(ps)


def test_fused_engine_is_the_eager_default():
    """The guard is an identity: the first-order gradients are the fused engine's own."""
    torch.manual_seed(0)
    m = lstmkit.LSTM(D, H, dtype=torch.float64)
    assert m._engine_run(m.specs[0]).args[0] is fused.run
