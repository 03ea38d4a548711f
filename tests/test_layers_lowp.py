"""bfloat16 and float16: modules in low precision compute in float32 and agree with the float32
module; results and gradients come in the right dtypes; under torch.autocast the modules run
their float32 path and return the dtypes torch.nn's modules return."""
import pytest
import torch
from torch import nn

import lstmkit

from .variants import ALL, make

T, B, D, H = 6, 3, 4, 8
# relative error (norm-wise) to the float32 module with the same (rounded) weights and input:
# the float32 arithmetic inside leaves the rounding of the results and gradients at the dtype
# boundary (2^-9 for bfloat16, 2^-12 for float16), grown through sums over T·B; the worst
# measured over every case here was 7.3e-3 (bfloat16) and 7.2e-4 (float16)
RTOL = {torch.bfloat16: 2e-2, torch.float16: 2e-3}
LOWP = list(RTOL)


def _states(s) -> tuple:
    return tuple(s) if isinstance(s, tuple) else (s,)


def _run(m, x, hx):
    """Outputs and every gradient of a fixed float32-weighted loss, as float32 tensors."""
    m.zero_grad(set_to_none=True)
    x = x.detach().clone().requires_grad_()
    hx = tuple(h.detach().clone().requires_grad_() for h in hx)
    y, s = m(x, hx if len(hx) == 2 else hx[0])
    outs = [y, *_states(s)]
    g = torch.Generator().manual_seed(0)
    sum((o.float() * torch.randn(o.shape, generator=g)).sum() for o in outs).backward()
    res = {f"out{i}": o for i, o in enumerate(outs)}
    res.update({"d_input": x.grad, **{f"d_h{i}": h.grad for i, h in enumerate(hx)}})
    res.update({f"d_{n}": p.grad for n, p in m.named_parameters()})
    return res


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.float() - b).norm() / b.norm().clamp_min(1e-12)).item()


@pytest.mark.parametrize("dtype", LOWP, ids=str)
@pytest.mark.parametrize("name", ALL)
def test_low_precision_module_agrees_with_float32(name, dtype):
    torch.manual_seed(0)
    low = make(name, D, H, num_layers=2, bidirectional=True, dtype=dtype).eval()
    ref = make(name, D, H, num_layers=2, bidirectional=True).eval()
    ref.load_state_dict({k: v.float() for k, v in low.state_dict().items()})
    x = torch.randn(T, B, D).to(dtype)
    y, s = low(x)
    hx = tuple(torch.randn_like(t) for t in _states(s))
    got, want = _run(low, x, hx), _run(ref, x.float(), tuple(h.float() for h in hx))
    assert got.keys() == want.keys()
    for k in got:
        assert got[k].dtype == dtype, k                       # results and every gradient
        assert _rel(got[k], want[k]) < RTOL[dtype], (k, _rel(got[k], want[k]))


@pytest.mark.parametrize("dtype", LOWP, ids=str)
@pytest.mark.parametrize("kind", ["LSTMCell", "GRUCell", "RNNCell"])
def test_low_precision_cells(kind, dtype):
    torch.manual_seed(1)
    low, ref = getattr(lstmkit, kind)(D, H, dtype=dtype), getattr(lstmkit, kind)(D, H)
    ref.load_state_dict({k: v.float() for k, v in low.state_dict().items()})
    x = torch.randn(B, D).to(dtype)
    xl, xr = x.clone().requires_grad_(), x.float().requires_grad_()
    h, hr = _states(low(xl))[0], _states(ref(xr))[0]
    h.float().square().sum().backward()
    hr.square().sum().backward()
    assert h.dtype == xl.grad.dtype == low.weight_hh.grad.dtype == dtype
    assert _rel(h, hr) < RTOL[dtype] and _rel(xl.grad, xr.grad) < RTOL[dtype]
    assert _rel(low.weight_hh.grad, ref.weight_hh.grad) < RTOL[dtype]


def test_float32_module_still_refuses_a_bfloat16_input_outside_autocast():
    with pytest.raises(TypeError, match="expected dtype torch.float32"):
        lstmkit.LSTM(D, H)(torch.randn(T, B, D).bfloat16())


def _torch_under_autocast(cls, x):
    """torch.nn's output dtype under CPU bf16 autocast, or None where torch fails (nn.LSTM with
    a float32 input: oneDNN has no primitive for it on some CPUs, this project's AVX2 one among
    them; its autocast op list casts mkldnn_rnn_layer to bfloat16, so that is the intent)."""
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return cls(D, H)(x)[0].dtype
    except RuntimeError:
        return None


@pytest.mark.parametrize("x_dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("kind,torch_cls,want", [
    ("LSTM", nn.LSTM, torch.bfloat16), ("DepthGatedLSTM", nn.LSTM, torch.bfloat16),
    ("GRU", nn.GRU, None), ("RNN", nn.RNN, torch.bfloat16)])
def test_autocast_runs_float32_and_returns_torchs_dtype(kind, torch_cls, want, x_dtype):
    torch.manual_seed(2)
    m = getattr(lstmkit, kind)(D, H)
    x = torch.randn(T, B, D).to(x_dtype).requires_grad_()
    want = want or x_dtype                      # nn.GRU returns the input's dtype
    assert _torch_under_autocast(torch_cls, x.detach()) in (want, None)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y, s = m(x)
    assert y.dtype == want and all(t.dtype == want for t in _states(s))
    y32, s32 = m(x.detach().float())            # the float32 path, cast
    assert torch.equal(y, y32.to(want))
    y.float().sum().backward()
    assert x.grad.dtype == x_dtype and m.weight_hh_l0.grad.dtype == torch.float32


@pytest.mark.parametrize("kind,want", [("LSTMCell", None), ("GRUCell", None), ("RNNCell", torch.bfloat16)])
def test_autocast_cells_return_torchs_dtype(kind, want):
    x = torch.randn(B, D)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours, theirs = getattr(lstmkit, kind)(D, H)(x), getattr(nn, kind)(D, H)(x)
    assert _states(ours)[0].dtype == _states(theirs)[0].dtype == (want or x.dtype)


def test_autocast_accepts_a_state_in_another_dtype():
    m = lstmkit.LSTM(D, H)
    hx = (torch.zeros(1, B, H, dtype=torch.bfloat16), torch.zeros(1, B, H))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y, _ = m(torch.randn(T, B, D), hx)
    assert y.dtype == torch.bfloat16


def test_float16_autocast():
    with torch.autocast("cpu", dtype=torch.float16):
        y, _ = lstmkit.LSTM(D, H)(torch.randn(T, B, D))
    assert y.dtype == torch.float16
