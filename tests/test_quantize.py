"""lstmkit.quantize: int8 weight matrices per output row, float32 gates and state.

Three comparisons for every variant: the C++ int8 loops against the dequantize-then-float twin
(float32 rounding, 1e-5), the int8 model against the float model (the quantization error,
within QUANT_TOL), and one step at a time against the whole sequence. Then the files, the
model that contains lstmkit layers, and the errors.
"""
import copy

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

import lstmkit
from lstmkit.interop.checkpoint import CheckpointError, save_tensors
from lstmkit.quant import Int8Embedding, Int8Linear, load_quantized, quantize, save_quantized
from lstmkit.quant import layers as qlayers
from lstmkit.quant import modules as qmodules
from lstmkit.quant.weights import dequantize_rows, quantize_rows

from .variants import ALL, make, sweep

D, H = 5, 13           # odd sizes: the C++ kernel's row blocks of 4 and lanes of 8 both have tails
TWIN_TOL = 1e-5        # int8 loops vs the dequantized float twin: float32 rounding
QUANT_TOL = 2e-2       # int8 vs float: max |Δ| / max(1, max |float|) per output and state (seen ≤ 1.7e-2)
LN_FACTOR = 3          # layer norm: int8's error at most this times that of float noise of its size
COVERED = {"lstm", "peepholes", "coupled", "projection", "recurrent_dropout", "peepholes_f", "peepholes_io",
           "coupled_peepholes_fo", "forget_bias", "gru", "gru_reset_before", "rnn", "rnn_relu"}


def _models(case, **kw):
    torch.manual_seed(0)
    kw = {"num_layers": 2, "bidirectional": True, **kw}
    float_model = make(case, D, H, **kw).eval()
    return float_model, quantize(float_model)


def _inputs(model, T, B, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(T, B, D, generator=g)
    n = model.num_layers * model.num_directions
    sizes = model.specs[0].state_sizes
    states = tuple(0.5 * torch.randn(n, B, s, generator=g) for s in sizes)
    return x, (states if len(states) == 2 else states[0])


def _flat(out):
    y, s = out
    return [y, *(s if isinstance(s, tuple) else (s,))]


def _run(model, x, hx, kernel):
    model.kernel = kernel
    try:
        with torch.no_grad():
            return _flat(model(x, hx))
    finally:
        del model.kernel


def _max_diff(a, b):
    return max(float((u - v).abs().max()) for u, v in zip(a, b))


@pytest.fixture
def loop_calls(monkeypatch):
    """Counts the C++ int8 loop calls by family."""
    calls = {}
    for family, fn in list(qlayers._LOOPS.items()):
        def counted(*a, _fn=fn, _family=family):
            calls[_family] = calls.get(_family, 0) + 1
            return _fn(*a)
        monkeypatch.setitem(qlayers._LOOPS, family, counted)
    return calls


@pytest.mark.parametrize("case", sweep())
@pytest.mark.parametrize("T, B", [(5, 7), (40, 2)])    # T·B 35: int8 read (row blocks 4, 2, 1); 80: widened
def test_int8_loops_equal_the_dequantized_twin(case, T, B, loop_calls):
    _, q = _models(case)
    x, hx = _inputs(q, T, B)
    fast, twin = _run(q, x, hx, "int8"), _run(q, x, hx, "dequantize")
    assert _max_diff(fast, twin) <= TWIN_TOL
    if qlayers.int8_ops() is not None:                               # built: the covered ones take the C++ loops
        assert (sum(loop_calls.values()) == 4) == (case in COVERED)  # 2 layers x 2 directions


def _rel_diff(a, b):
    return max(float((u - v).abs().max()) / max(1.0, float(u.abs().max())) for u, v in zip(a, b))


def _noisy_twin(f):
    """The float model with each weight matrix moved by its own int8 rounding error, rows
    shuffled: a perturbation of the same size as int8's that is not int8's."""
    g = copy.deepcopy(f)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in g.named_parameters():
            if name.startswith(("weight_ih", "weight_hh", "weight_hr", "weight_xd")):
                q, s = quantize_rows(p)
                err = dequantize_rows(q, s) - p
                p.add_(err[torch.randperm(err.shape[0], generator=gen)])
    return g


@pytest.mark.parametrize("case", sweep())
def test_int8_model_is_close_to_the_float_model(case):
    """Within QUANT_TOL; the layer-norm variants (at initialisation LN(h W) has unit variance
    whatever the size of h, and a perturbation of the weights grows over the steps: 0.15 at
    T 20 for weight noise of int8's size) within LN_FACTOR times what noise of int8's size does."""
    f, q = _models(case)
    x, hx = _inputs(q, 20, 3)
    with torch.no_grad():
        want = _flat(f(x, hx))
        diff = _rel_diff(want, _flat(q(x, hx)))
        noise = _rel_diff(want, _flat(_noisy_twin(f)(x, hx)))
    assert diff > 0
    if any(getattr(s, "layer_norm", False) for s in f.specs):
        assert diff <= LN_FACTOR * noise
    else:
        assert diff <= QUANT_TOL


@pytest.mark.parametrize("case", ["lstm", "projection", "coupled_peepholes_fo", "gru", "gru_reset_before", "rnn"])
def test_streaming_steps_equal_the_whole_sequence(case, loop_calls):
    _, q = _models(case, bidirectional=False, batch_first=True)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 9, D, generator=g)
    with torch.no_grad():
        whole = _flat(q(x))
        state, ys = None, []
        for t in range(9):
            y, state = q(x[:, t:t + 1], state)
            ys.append(y)
    assert bool(loop_calls) == (qlayers.int8_ops() is not None)
    assert _max_diff(whole, [torch.cat(ys, 1), *_flat((None, state))[1:]]) <= 1e-6


def test_unbatched_and_batch_first_match_the_twin():
    _, q = _models("lstm", batch_first=True)
    x = torch.randn(6, D)
    fast, twin = _run(q, x, None, "int8"), _run(q, x, None, "dequantize")
    assert fast[0].shape == (6, 2 * H) and _max_diff(fast, twin) <= TWIN_TOL


def test_without_the_cpp_loops_the_twin_runs(monkeypatch):
    _, q = _models("lstm")
    x, hx = _inputs(q, 5, 2)
    want = _run(q, x, hx, "dequantize")
    monkeypatch.setattr(qlayers, "int8_ops", lambda: None)
    monkeypatch.setattr(qmodules, "int8_ops", lambda: None)
    with torch.no_grad():
        assert _max_diff(_flat(q(x, hx)), want) == 0


def test_weights_are_int8_per_row_and_the_rest_float():
    f, q = _models("peepholes", bidirectional=False)
    buffers = dict(q.named_buffers())
    assert buffers["weight_hh_l1_int8"].dtype == torch.int8
    assert buffers["weight_hh_l1_scale"].shape == (4 * H,)
    assert {n for n, _ in q.named_parameters()} == {n for n, _ in f.named_parameters()
                                                     if not n.startswith("weight_ih") and not n.startswith("weight_hh")}
    assert all(p.dtype == torch.float32 and not p.requires_grad for p in q.parameters())
    assert torch.allclose(q.weight_hh_l0, f.weight_hh_l0, atol=float(q.weight_hh_l0_scale.max()) / 2 + 1e-7)
    assert f.weight_hh_l0.dtype == torch.float32          # the float model is left as it was


def test_quantize_rows():
    w = torch.randn(6, 9)
    w[2] = 0
    q, s = quantize_rows(w)
    assert q.dtype == torch.int8 and int(q.abs().max()) == 127 and s[2] == 1
    assert (q.abs().amax(1)[[0, 1, 3, 4, 5]] == 127).all()
    assert ((dequantize_rows(q, s) - w).abs() <= s[:, None] / 2 + 1e-7).all()
    q2, s2 = quantize_rows(dequantize_rows(q, s))                  # idempotent: the ONNX export relies on it
    assert torch.equal(q, q2) and torch.allclose(s, s2, rtol=1e-6, atol=0)


@pytest.mark.parametrize("shape", [(3, 5), (70, 13)])
def test_int8_linear_equals_its_twin(shape):
    torch.manual_seed(0)
    lin = nn.Linear(shape[1], 11)
    q = Int8Linear(lin)
    x = torch.randn(2, *shape)
    with torch.no_grad():
        got = q(x)
        q.kernel = "dequantize"
        want, exact = q(x), lin(x)
    assert got.shape == (2, shape[0], 11) and float((got - want).abs().max()) <= TWIN_TOL
    assert 0 < float((got - exact).abs().max()) <= QUANT_TOL


class _LM(nn.Module):
    def __init__(self, vocab=17):
        super().__init__()
        self.embedding = nn.Embedding(vocab, 8)
        self.rnn = lstmkit.LSTM(8, 24, 2)
        self.head = nn.Sequential(nn.Dropout(0.1), nn.Linear(24, vocab))

    def forward(self, tokens, state=None):
        y, state = self.rnn(self.embedding(tokens), state)
        return self.head(y), state


def test_a_model_that_contains_lstmkit_layers():
    torch.manual_seed(0)
    lm = _LM().eval()
    q = quantize(lm)
    assert isinstance(q.embedding, Int8Embedding) and isinstance(q.rnn, qlayers.QuantizedLSTM)
    assert isinstance(q.head[1], Int8Linear) and isinstance(q.head[0], nn.Dropout)
    assert not q.training and isinstance(lm.rnn, lstmkit.LSTM) and type(lm.head[1]) is nn.Linear
    tokens = torch.randint(0, 17, (12, 3))
    with torch.no_grad():
        want, got = _flat(lm(tokens)), _flat(q(tokens))
    assert 0 < _max_diff(want, got) <= QUANT_TOL
    assert torch.equal(q.embedding(tokens), nn.functional.embedding(tokens, q.embedding.weight))


def test_save_and_load(tmp_path):
    torch.manual_seed(0)
    lm = _LM().eval()
    q = quantize(lm)
    save_quantized(q, tmp_path / "lm.safetensors")
    raw = load_file(tmp_path / "lm.safetensors")                  # a plain safetensors file
    assert raw["rnn.weight_ih_l0_int8"].dtype == torch.int8 and raw["rnn.weight_ih_l0_scale"].dtype == torch.float32
    torch.manual_seed(5)
    back = load_quantized(_LM(), tmp_path / "lm.safetensors")       # other float weights: not used
    tokens = torch.randint(0, 17, (6, 2))
    with torch.no_grad():
        assert _max_diff(_flat(q(tokens)), _flat(back(tokens))) == 0
    with pytest.raises(CheckpointError, match="incompatible"):
        load_quantized(nn.Sequential(lstmkit.LSTM(8, 24)), tmp_path / "lm.safetensors")
    save_tensors(tmp_path / "float.safetensors", lm.state_dict(), {})
    with pytest.raises(CheckpointError, match="not an lstmkit int8 file"):
        load_quantized(_LM(), tmp_path / "float.safetensors")


def test_int8_file_is_under_0_3_of_float(tmp_path):
    torch.manual_seed(0)
    f = lstmkit.LSTM(64, 128).eval()
    save_tensors(tmp_path / "f.safetensors", f.state_dict(), {})
    save_quantized(quantize(f), tmp_path / "q.safetensors")
    ratio = (tmp_path / "q.safetensors").stat().st_size / (tmp_path / "f.safetensors").stat().st_size
    assert ratio <= 0.3


@pytest.mark.parametrize("model, dtype, error, match", [
    (lambda: lstmkit.LSTM(3, 4), "int4", ValueError, "dtype: expected 'int8', got 'int4'"),
    (lambda: lstmkit.LSTM(3, 4), torch.float16, ValueError, "dtype: expected 'int8'"),
    (lambda: nn.LSTM(3, 4), "int8", TypeError, "torch.nn.LSTM; convert it with lstmkit.from_torch"),
    (lambda: nn.Sequential(nn.Linear(3, 4)), "int8", ValueError, "found none"),
    (lambda: nn.Sequential(lstmkit.LSTM(3, 4), lstmkit.MinLSTM(4, 4)), "int8", TypeError, "MinLSTM"),
    (lambda: nn.Sequential(lstmkit.LSTM(3, 4), lstmkit.QRNN(4, 4)), "int8", TypeError, "1 is QRNN"),
    (lambda: nn.Sequential(lstmkit.LSTM(3, 4), lstmkit.ParaLSTM(4, 4)), "int8", TypeError, "1 is ParaLSTM"),
    (lambda: nn.Sequential(lstmkit.LSTM(3, 4), lstmkit.ParaGRU(4, 4)), "int8", TypeError, "1 is ParaGRU"),
    (lambda: nn.Sequential(lstmkit.LSTM(3, 4), lstmkit.sLSTM(4, 4)), "int8", TypeError, "1 is sLSTM"),
    (lambda: "model", "int8", TypeError, "model: expected an nn.Module, got str"),
])
def test_bad_arguments(model, dtype, error, match):
    with pytest.raises(error, match=match):
        quantize(model(), dtype)


def test_save_refuses_a_float_model(tmp_path):
    with pytest.raises(ValueError, match="lstmkit.quantize"):
        save_quantized(lstmkit.LSTM(3, 4), tmp_path / "m.safetensors")


def test_every_case_is_swept():
    assert COVERED <= set(ALL)
