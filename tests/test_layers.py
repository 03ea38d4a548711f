"""The module front: layer == stepping the cell by hand, tracing never changes the numbers,
packed == padded + lengths, unbatched, from_torch for every module type."""
import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import lstmkit

from .variants import ALL, make

T, B, D, H = 6, 3, 4, 5


@pytest.mark.parametrize("kw", [{}, {"peepholes": True}, {"coupled": True}, {"layer_norm": True},
                                {"ablate": ("output_gate", "input_activation")}])
def test_layer_equals_stepping_the_cell(kw):
    torch.manual_seed(0)
    layer = lstmkit.LSTM(D, H, **kw)
    cell = lstmkit.LSTMCell(D, H, **kw)
    cell.load_state_dict({k[:-3]: v for k, v in layer.state_dict().items()})
    x = torch.randn(T, B, D)
    y, (h_n, c_n) = layer(x)
    state = None
    with lstmkit.trace(cell) as tr:
        for t in range(T):
            state = cell(x[t], state)
            torch.testing.assert_close(state.h, y[t])
    torch.testing.assert_close(state.c, c_n[0])
    with lstmkit.trace(layer) as tl:
        layer(x)
    for k in tl[0]:
        torch.testing.assert_close(tr[0][k], tl[0][k])


@pytest.mark.parametrize("kind", ["GRU", "RNN"])
def test_gru_rnn_layer_equals_stepping_the_cell(kind):
    torch.manual_seed(0)
    layer, cell = getattr(lstmkit, kind)(D, H), getattr(lstmkit, kind + "Cell")(D, H)
    cell.load_state_dict({k[:-3]: v for k, v in layer.state_dict().items()})
    x = torch.randn(T, B, D)
    y, _ = layer(x)
    h = None
    for t in range(T):
        h = cell(x[t], h)
        torch.testing.assert_close(h, y[t])


@pytest.mark.parametrize("name", ALL)
def test_tracing_on_equals_tracing_off(name):
    torch.manual_seed(0)
    m = make(name, D, H, num_layers=2, bidirectional=True).eval()
    x = torch.randn(T, B, D)
    y0, s0 = m(x, lengths=[6, 3, 5])
    with lstmkit.trace(m) as tr:
        y1, s1 = m(x, lengths=[6, 3, 5])
    assert torch.equal(y0, y1)
    for a, b in zip(s0 if isinstance(s0, tuple) else (s0,), s1 if isinstance(s1, tuple) else (s1,)):
        assert torch.equal(a, b)
    assert len(tr.keys()) == 4
    rec = tr[1, "reverse"]
    letters = {"GRU": "rznh"}.get(type(m).__name__, "ifgoch" if "rnn" not in name else "h")
    assert set(letters) <= set(rec)
    for k, v in rec.items():
        assert v.shape[:2] == (T, B), k
        assert torch.all(v[3:, 1] == 0), f"{k} not zero on padding"
    out_width = m.proj_size or H
    torch.testing.assert_close(tr[1, 0].h, y1[..., :out_width])
    torch.testing.assert_close(tr[1, 1].h, y1[..., out_width:])


def test_trace_concatenates_calls_and_indexes_by_module_name():
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.enc, self.dec = lstmkit.LSTM(D, H), lstmkit.GRU(H, H)

        def forward(self, x):
            return self.dec(self.enc(x)[0])

    net = Net()
    with lstmkit.trace(net) as tr:
        net(torch.randn(2, B, D))
        net(torch.randn(3, B, D))
    assert tr["enc", 0, 0].f.shape == (5, B, H)
    assert tr["dec", 0, "forward"].z.shape == (5, B, H)
    with pytest.raises(KeyError, match="several modules"):
        tr[0]
    assert net.enc._trace_sink is None                        # recording is off again


def test_trace_rejects_a_model_without_recurrent_layers():
    with pytest.raises(TypeError, match="model: expected a module containing lstmkit"):
        with lstmkit.trace(torch.nn.Linear(2, 2)):
            pass


@pytest.mark.parametrize("name", ["lstm", "peepholes", "gru_reset_before", "depth_gated", "rnn"])
def test_packed_equals_padded_with_lengths(name):
    torch.manual_seed(0)
    m = make(name, D, H, num_layers=2, bidirectional=True)
    x, lengths = torch.randn(T, B, D), torch.tensor([4, 6, 2])
    y_pad, s_pad = m(x, lengths=lengths)
    y_pk, s_pk = m(pack_padded_sequence(x, lengths, enforce_sorted=False))
    y_pk, _ = pad_packed_sequence(y_pk, total_length=T)
    torch.testing.assert_close(y_pad, y_pk)
    for a, b in zip(s_pad if isinstance(s_pad, tuple) else (s_pad,), s_pk if isinstance(s_pk, tuple) else (s_pk,)):
        torch.testing.assert_close(a, b)
    # each sequence alone gives the same result as in the padded batch
    for b_ in range(B):
        y1, _ = m(x[:lengths[b_], b_:b_ + 1])
        torch.testing.assert_close(y1[:, 0], y_pad[:lengths[b_], b_])


@pytest.mark.parametrize("name", ["coupled", "coupled_peepholes_fo", "forget_bias", "layer_norm", "ln_proj_peep", "no_forget_gate", "gru", "depth_gated"])
def test_unbatched_equals_batch_of_one(name):
    torch.manual_seed(0)
    m = make(name, D, H).eval()
    x = torch.randn(T, D)
    y1, s1 = m(x)
    y2, s2 = m(x[:, None])
    torch.testing.assert_close(y1, y2[:, 0])
    for a, b in zip(s1 if isinstance(s1, tuple) else (s1,), s2 if isinstance(s2, tuple) else (s2,)):
        torch.testing.assert_close(a, b[:, 0])


def test_batch_first_is_a_transpose():
    torch.manual_seed(0)
    a = lstmkit.LSTM(D, H, 2, batch_first=True, peepholes=True)
    b = lstmkit.LSTM(D, H, 2, peepholes=True)
    b.load_state_dict(a.state_dict())
    x = torch.randn(B, T, D)
    torch.testing.assert_close(a(x)[0], b(x.transpose(0, 1))[0].transpose(0, 1))


def test_inter_layer_dropout_only_in_training():
    torch.manual_seed(0)
    m = lstmkit.LSTM(D, H, 3, dropout=0.5)
    x = torch.randn(T, B, D)
    assert not torch.equal(m(x)[0], m(x)[0])                 # training: random
    m.eval()
    assert torch.equal(m(x)[0], m(x)[0])


def test_state_is_a_named_tuple():
    y, state = lstmkit.LSTM(D, H)(torch.randn(T, B, D))
    assert isinstance(state, lstmkit.LSTMState) and state.h is state[0] and state.c is state[1]


def test_from_torch_rejects_other_modules():
    with pytest.raises(TypeError, match="module: expected torch.nn.LSTM"):
        lstmkit.from_torch(torch.nn.Linear(2, 3))


def test_gradients_flow_into_every_parameter_of_every_variant():
    for name in ALL:
        torch.manual_seed(0)
        m = make(name, D, H, num_layers=2)
        y, _ = m(torch.randn(T, B, D))
        y.square().sum().backward()
        for n, p in m.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, f"{name}: no gradient for {n}"
