"""Every bad input raises ValueError/TypeError naming the argument, the expected and the
actual value: never a silent broadcast, never a bare shape error from inside torch."""
import pytest
import torch

import lstmkit

D, H = 4, 5


@pytest.mark.parametrize("make,exc,pattern", [
    (lambda: lstmkit.LSTM(D, H, proj_size=H), ValueError, r"proj_size: expected 0 <= proj_size < hidden_size=5, got 5"),
    (lambda: lstmkit.LSTM(D, H, proj_size=-1), ValueError, r"proj_size: expected an int >= 0, got -1"),
    (lambda: lstmkit.LSTM(D, H, coupled=True, ablate="forget_gate"), ValueError, r"coupled=True .* ablate="),
    (lambda: lstmkit.LSTM(D, H, coupled=True, ablate=["input_gate"]), ValueError, r"coupled=True"),
    (lambda: lstmkit.LSTM(D, H, peepholes="ifx"), ValueError, r"peepholes: expected distinct gate letters from 'ifo', got 'ifx'"),
    (lambda: lstmkit.LSTM(D, H, peepholes="ii"), ValueError, r"peepholes: expected distinct"),
    (lambda: lstmkit.LSTM(D, H, peepholes=3), TypeError, r"peepholes: expected a bool or a string"),
    (lambda: lstmkit.LSTM(D, H, coupled=True, peepholes="i"), ValueError, r"peepholes: gate\(s\) 'i' have no weights"),
    (lambda: lstmkit.LSTM(D, H, ablate="output_gate", peepholes=True), ValueError, r"peepholes: gate\(s\) 'o'"),
    (lambda: lstmkit.LSTM(D, H, ablate="no_gate"), ValueError, r"ablate: expected names from"),
    (lambda: lstmkit.GRU(D, H, peepholes=True), TypeError, r"peepholes: GRU does not take this option.*LSTM family"),
    (lambda: lstmkit.GRUCell(D, H, peepholes="f"), TypeError, r"peepholes: GRUCell does not take"),
    (lambda: lstmkit.LSTM(D, H, dropout=1.0), ValueError, r"dropout: expected a float in \[0, 1\), got 1.0"),
    (lambda: lstmkit.LSTM(D, H, dropout=-0.1), ValueError, r"dropout: expected a float in \[0, 1\), got -0.1"),
    (lambda: lstmkit.GRU(D, H, zoneout=1.5), ValueError, r"zoneout: expected a float in \[0, 1\), got 1.5"),
    (lambda: lstmkit.LSTM(D, H, recurrent_dropout="a"), TypeError, r"recurrent_dropout: expected a float"),
    (lambda: lstmkit.DepthGatedLSTM(D, H, num_layers=1), ValueError, r"num_layers: a depth gate joins two stacked layers, expected >= 2, got 1"),
    (lambda: lstmkit.LSTM(D, 0), ValueError, r"hidden_size: expected an int >= 1, got 0"),
    (lambda: lstmkit.LSTM(D, 5.0), TypeError, r"hidden_size: expected an int, got float"),
    (lambda: lstmkit.LSTM(0, H), ValueError, r"input_size: expected an int >= 1, got 0"),
    (lambda: lstmkit.LSTM(D, H, num_layers=0), ValueError, r"num_layers: expected an int >= 1, got 0"),
    (lambda: lstmkit.LSTM(D, H, backend="cuda"), ValueError, r"backend: expected one of 'auto', 'reference', 'fused', got 'cuda'"),
    (lambda: lstmkit.RNN(D, H, nonlinearity="gelu"), ValueError, r"nonlinearity: expected one of 'tanh', 'relu', got 'gelu'"),
    (lambda: lstmkit.LSTM(D, H, ablate="forget_gate", forget_bias=1.0), ValueError, r"forget_bias: expected 0.0 when the forget gate is ablated"),
    (lambda: lstmkit.LSTM(D, H, bias=False, forget_bias=1.0), ValueError, r"forget_bias: expected 0.0 when bias=False"),
])
def test_bad_options(make, exc, pattern):
    with pytest.raises(exc, match=pattern):
        make()


LSTM = lstmkit.LSTM(D, H, num_layers=2)
GRU = lstmkit.GRU(D, H)
x = torch.randn(7, 3, D)


@pytest.mark.parametrize("call,exc,pattern", [
    (lambda: LSTM(torch.randn(7, 3, 2, D)), ValueError, r"input: expected 3 dimensions \(T, B, D\) or 2 \(T, D\) .* got shape \(7, 3, 2, 4\)"),
    (lambda: LSTM(torch.randn(D)), ValueError, r"input: expected 3 dimensions"),
    (lambda: LSTM(torch.randn(7, 3, D + 1)), ValueError, r"input: expected 4 features \(input_size\) in the last dimension, got 5"),
    (lambda: LSTM(torch.randn(0, 3, D)), ValueError, r"input: expected at least one time step"),
    (lambda: LSTM(x.double()), TypeError, r"input: expected dtype torch.float32 \(the parameters' dtype\), got torch.float64"),
    (lambda: LSTM([[1.0]]), TypeError, r"input: expected a torch.Tensor, got list"),
    (lambda: LSTM(x, torch.zeros(2, 3, H)), TypeError, r"hx: expected a tuple \(h_0, c_0\), got Tensor"),
    (lambda: LSTM(x, (torch.zeros(1, 3, H), torch.zeros(2, 3, H))), ValueError, r"h_0: expected shape \(2, 3, 5\) \(num_layers \* num_directions, B, hidden_size\), got \(1, 3, 5\)"),
    (lambda: LSTM(x, (torch.zeros(2, 3, H), torch.zeros(2, 4, H))), ValueError, r"c_0: expected shape \(2, 3, 5\)"),
    (lambda: LSTM(x, (torch.zeros(2, 3, H), torch.zeros(2, 3, H).double())), TypeError, r"c_0: expected dtype torch.float32"),
    (lambda: LSTM(x[:, 0], (torch.zeros(2, 3, H), torch.zeros(2, 3, H))), ValueError, r"h_0: expected shape \(2, 5\)"),
    (lambda: GRU(x, torch.zeros(1, 2, H)), ValueError, r"h_0: expected shape \(1, 3, 5\)"),
    (lambda: GRU(x, torch.zeros(1, 3, H + 1)), ValueError, r"h_0: expected shape"),
    (lambda: LSTM(x, lengths=[7, 3]), ValueError, r"lengths: expected 3 values \(one per sequence\), got shape \(2,\)"),
    (lambda: LSTM(x, lengths=[7, 8, 1]), ValueError, r"lengths: expected values in \[1, 7\] \(the padded length\), got min 1, max 8"),
    (lambda: LSTM(x, lengths=[7, 0, 1]), ValueError, r"lengths: expected values in \[1, 7\]"),
    (lambda: LSTM(x, lengths=[1.0, 2.0, 3.0]), TypeError, r"lengths: expected integers, got dtype torch.float32"),
    (lambda: LSTM(x, lengths=[3, 5, 1], enforce_sorted=True), ValueError, r"lengths: expected descending order because enforce_sorted=True, got \[3, 5, 1\]"),
    (lambda: lstmkit.LSTMCell(D, H)(torch.randn(3, D + 2)), ValueError, r"input: expected 4 features"),
    (lambda: lstmkit.LSTMCell(D, H)(torch.randn(3, D), (torch.zeros(3, H), torch.zeros(2, H))), ValueError, r"c: expected shape \(3, 5\)"),
    (lambda: lstmkit.GRUCell(D, H)(torch.randn(3, D), torch.zeros(3, H, 1)), ValueError, r"hx: expected shape \(3, 5\)"),
    (lambda: lstmkit.RNNCell(D, H)(torch.randn(2, 3, D)), ValueError, r"input: expected 2 dimensions \(B, D\) or 1"),
])
def test_bad_forward_inputs(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()


def test_device_mismatch_is_named():
    m = lstmkit.LSTM(D, H, device="meta")
    with pytest.raises(ValueError, match=r"input: expected device meta \(the parameters' device\), got cpu"):
        m(torch.randn(3, 2, D))


def test_lengths_with_packed_input_is_refused():
    from torch.nn.utils.rnn import pack_padded_sequence
    packed = pack_padded_sequence(x, [7, 5, 2])
    with pytest.raises(ValueError, match="lengths: expected None with a PackedSequence"):
        LSTM(packed, lengths=[7, 5, 2])
