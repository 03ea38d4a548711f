"""lstmkit against torch.nn, the outside referee: outputs, final states and every gradient
over a grid of layers, directions, batch_first, proj_size, initial states, padded/packed
and unbatched input; float32 within 1e-5, float64 within 1e-10."""
import itertools
import zlib

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

import lstmkit

from .helpers import TOL, assert_close_all, run_with_grads

T, B, D, H, P = 5, 3, 4, 6, 3
GRID = list(itertools.product(
    ("LSTM", "GRU", "RNN"), (1, 2, 3), (False, True), (False, True), (0, P), (False, True),
    ("plain", "packed", "lengths", "unbatched")))
GRID = [g for g in GRID if not (g[4] and g[0] != "LSTM")]
# fast subset: 2 layers with every direction, layout, projection, state and input mode
GRID = [g if g[1] == 2 else pytest.param(*g, marks=pytest.mark.slow) for g in GRID]


def _state(kind, L, dirs, batch, proj, dtype, g):
    n = L * dirs
    shape = (n, batch) if batch else (n,)
    h = torch.randn(*shape, proj or H, generator=g, dtype=dtype)
    if kind != "LSTM":
        return h
    return h, torch.randn(*shape, H, generator=g, dtype=dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("kind,L,bidir,batch_first,proj,with_state,mode", GRID)
def test_parity_with_torch(kind, L, bidir, batch_first, proj, with_state, mode, dtype):
    g = torch.Generator().manual_seed(zlib.crc32(repr((kind, L, bidir, batch_first, proj, with_state, mode)).encode()))
    kw = dict(num_layers=L, bidirectional=bidir, batch_first=batch_first, dtype=dtype)
    if proj:
        kw["proj_size"] = proj
    torch.manual_seed(1)
    ref = getattr(torch.nn, kind)(D, H, **kw)
    ours = lstmkit.from_torch(ref, backend="reference")
    dirs = 2 if bidir else 1
    x = torch.randn(T, B, D, generator=g, dtype=dtype)
    lengths = torch.tensor([5, 2, 4])
    hx = _state(kind, L, dirs, None if mode == "unbatched" else B, proj, dtype, g) if with_state else None
    if mode == "unbatched":
        x = x[:, 0]
    elif batch_first:
        x = x.transpose(0, 1).contiguous()
    extra = {}
    if mode == "packed":
        x = pack_padded_sequence(x, lengths, batch_first=batch_first, enforce_sorted=False)
    elif mode == "lengths":
        extra = {"lengths": lengths}
    a = run_with_grads(ours, x, hx, **extra)
    if mode == "lengths":   # torch's way to the same thing: pack, run, pad
        from torch.nn.utils.rnn import pad_packed_sequence

        class Padded(torch.nn.Module):
            def __init__(self, m):
                super().__init__()
                self.m = m

            def forward(self, x, hx):
                y, s = self.m(pack_padded_sequence(x, lengths, batch_first=batch_first, enforce_sorted=False), hx)
                return pad_packed_sequence(y, batch_first=batch_first, total_length=T)[0], s
        b = run_with_grads(Padded(ref), x, hx)
        b = {k.replace("d_m.", "d_"): v for k, v in b.items()}
    else:
        b = run_with_grads(ref, x, hx)
    assert_close_all(a, b, TOL[dtype])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("kind", ["LSTMCell", "GRUCell", "RNNCell"])
@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("with_state", [False, True])
def test_cell_parity_with_torch(kind, batched, with_state, dtype):
    torch.manual_seed(2)
    ref = getattr(torch.nn, kind)(D, H, dtype=dtype)
    ours = lstmkit.from_torch(ref)
    x = torch.randn(B, D, dtype=dtype) if batched else torch.randn(D, dtype=dtype)
    shape = (B, H) if batched else (H,)
    hx = None
    if with_state:
        hx = (torch.randn(shape, dtype=dtype), torch.randn(shape, dtype=dtype)) if kind == "LSTMCell" \
            else torch.randn(shape, dtype=dtype)

    def collect(m):
        m.zero_grad()
        xx = x.clone().requires_grad_()
        hh = None if hx is None else (tuple(h.clone().requires_grad_() for h in hx)
                                       if isinstance(hx, tuple) else hx.clone().requires_grad_())
        out = m(xx, hh)
        outs = out if isinstance(out, tuple) else (out,)
        sum((o * (k + 1.5)).sum() for k, o in enumerate(outs)).backward()
        res = {f"out{k}": o.detach() for k, o in enumerate(outs)}
        res["d_input"] = xx.grad
        if hh is not None:
            for k, h in enumerate(hh if isinstance(hh, tuple) else (hh,)):
                res[f"d_h{k}"] = h.grad
        res.update({f"d_{n}": p.grad for n, p in m.named_parameters()})
        return res

    assert_close_all(collect(ours), collect(ref), TOL[dtype])


def test_state_dict_loads_strict_both_ways():
    for ref, ours in [(torch.nn.LSTM(3, 5, 2, bidirectional=True, proj_size=2),
                       lstmkit.LSTM(3, 5, 2, bidirectional=True, proj_size=2)),
                      (torch.nn.GRU(3, 5, 3), lstmkit.GRU(3, 5, 3)),
                      (torch.nn.RNN(3, 5, nonlinearity="relu"), lstmkit.RNN(3, 5, nonlinearity="relu")),
                      (torch.nn.LSTMCell(3, 5), lstmkit.LSTMCell(3, 5))]:
        ours.load_state_dict(ref.state_dict(), strict=True)
        ref.load_state_dict(ours.state_dict(), strict=True)
        assert list(dict(ours.named_parameters())) == list(dict(ref.named_parameters()))
