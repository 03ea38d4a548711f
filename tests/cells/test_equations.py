"""Each variant on a tiny example, checked against its equations written out by hand here
(independently of ``cells``): one step from a random state, read back through the trace."""
import pytest
import torch

import lstmkit

D, H, B = 3, 2, 2
sig, tanh = torch.sigmoid, torch.tanh


def one_step(m, x, h0, c0=None):
    with lstmkit.trace(m) as tr:
        y, s = m(x[None], (h0[None], c0[None]) if c0 is not None else h0[None])
    return y[0], s, tr[0]


def chunks(m, x, h, gates):
    """Pre-activations per gate letter from the weights, by hand."""
    a = x @ m.weight_ih_l0.T + m.bias_ih_l0 + h @ m.weight_hh_l0.T + m.bias_hh_l0
    return dict(zip(gates, a.split(H, -1)))


@pytest.fixture(autouse=True)
def float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


@pytest.fixture
def data():
    torch.manual_seed(0)
    return torch.randn(B, D), torch.randn(B, H), torch.randn(B, H)


def test_vanilla_lstm_is_the_seeds_equations(data):
    x, h, c = data
    m = lstmkit.LSTM(D, H)
    y, (h1, c1), rec = one_step(m, x, h, c)
    a = chunks(m, x, h, "ifgo")
    i, f, g, o = sig(a["i"]), sig(a["f"]), tanh(a["g"]), sig(a["o"])
    c_new = f * c + i * g
    torch.testing.assert_close(c1[0], c_new)
    torch.testing.assert_close(h1[0], o * tanh(c_new))
    for k, v in zip("ifgo", (i, f, g, o)):
        torch.testing.assert_close(rec[k][0], v)


def test_peepholes_i_f_see_old_cell_o_sees_new_cell(data):
    x, h, c = data
    m = lstmkit.LSTM(D, H, peepholes=True)
    _, (h1, c1), rec = one_step(m, x, h, c)
    a = chunks(m, x, h, "ifgo")
    i = sig(a["i"] + m.weight_ci_l0 * c)
    f = sig(a["f"] + m.weight_cf_l0 * c)
    c_new = f * c + i * tanh(a["g"])
    o = sig(a["o"] + m.weight_co_l0 * c_new)
    torch.testing.assert_close(rec.o[0], o)
    assert not torch.allclose(rec.o[0], sig(a["o"] + m.weight_co_l0 * c))   # not the old cell
    torch.testing.assert_close(h1[0], o * tanh(c_new))


def test_peephole_subset_only_creates_those_weights():
    m = lstmkit.LSTM(D, H, peepholes="of")
    names = {n for n, _ in m.named_parameters()}
    assert {"weight_cf_l0", "weight_co_l0"} <= names and "weight_ci_l0" not in names


def test_coupled_input_is_one_minus_forget(data):
    x, h, c = data
    m = lstmkit.LSTM(D, H, coupled=True)
    assert m.weight_ih_l0.shape == (3 * H, D)                   # rows f, g, o only
    _, (h1, c1), rec = one_step(m, x, h, c)
    a = chunks(m, x, h, "fgo")
    f = sig(a["f"])
    torch.testing.assert_close(rec.i, 1 - rec.f)
    torch.testing.assert_close(c1[0], f * c + (1 - f) * tanh(a["g"]))


@pytest.mark.parametrize("ablation,gates", [("input_gate", "fgo"), ("forget_gate", "igo"), ("output_gate", "ifg")])
def test_gate_ablations_fix_the_gate_to_one(data, ablation, gates):
    x, h, c = data
    m = lstmkit.LSTM(D, H, ablate=ablation)
    _, (h1, c1), rec = one_step(m, x, h, c)
    a = chunks(m, x, h, gates)
    i = sig(a["i"]) if "i" in a else 1.0
    f = sig(a["f"]) if "f" in a else 1.0
    o = sig(a["o"]) if "o" in a else 1.0
    c_new = f * c + i * tanh(a["g"])
    torch.testing.assert_close(c1[0], c_new)
    torch.testing.assert_close(h1[0], o * tanh(c_new))
    torch.testing.assert_close(rec[ablation[0]], torch.ones(1, B, H))


def test_activation_ablations(data):
    x, h, c = data
    m = lstmkit.LSTM(D, H, ablate=("input_activation", "output_activation"))
    _, (h1, c1), _ = one_step(m, x, h, c)
    a = chunks(m, x, h, "ifgo")
    c_new = sig(a["f"]) * c + sig(a["i"]) * a["g"]             # NIAF: g without tanh
    torch.testing.assert_close(h1[0], sig(a["o"]) * c_new)      # NOAF: h = o ⊙ c'


def _ln(v, gamma, beta=0.0):
    return (v - v.mean(-1, keepdim=True)) / torch.sqrt(v.var(-1, unbiased=False, keepdim=True) + 1e-5) * gamma + beta


def test_layer_norm_per_gate():
    """H = 5: with H = 2, LN of any pair is ±1·γ + β whatever the input, so a wrong
    statistic would pass; here the normalised values depend on the input (checked)."""
    Hn = 5
    torch.manual_seed(0)
    x, h, c = torch.randn(B, D), torch.randn(B, Hn), torch.randn(B, Hn)
    m = lstmkit.LSTM(D, Hn, layer_norm=True)
    with torch.no_grad():
        for p in (m.weight_ln_ih_l0, m.weight_ln_hh_l0, m.weight_ln_c_l0, m.bias_ln_c_l0):
            p.uniform_(0.5, 1.5)
    _, (h1, c1), _ = one_step(m, x, h, c)
    gi, gh = m.weight_ln_ih_l0.split(Hn), m.weight_ln_hh_l0.split(Hn)
    ui, uh = (x @ m.weight_ih_l0.T).split(Hn, -1), (h @ m.weight_hh_l0.T).split(Hn, -1)
    assert not torch.allclose(_ln(ui[0], 1).abs(), torch.ones(B, Hn))      # not degenerate
    b = (m.bias_ih_l0 + m.bias_hh_l0).split(Hn)
    a = [_ln(ui[k], gi[k]) + _ln(uh[k], gh[k]) + b[k] for k in range(4)]
    i, f, g, o = sig(a[0]), sig(a[1]), tanh(a[2]), sig(a[3])
    c_new = f * c + i * g
    torch.testing.assert_close(c1[0], c_new)
    torch.testing.assert_close(h1[0], o * tanh(_ln(c_new, m.weight_ln_c_l0, m.bias_ln_c_l0)))


def test_projection(data):
    x, h, c = data
    m = lstmkit.LSTM(D, 3, proj_size=2)
    x, h, c = x, torch.randn(B, 2), torch.randn(B, 3)
    a = x @ m.weight_ih_l0.T + m.bias_ih_l0 + h @ m.weight_hh_l0.T + m.bias_hh_l0
    i, f, g, o = (sig(a[:, :3]), sig(a[:, 3:6]), tanh(a[:, 6:9]), sig(a[:, 9:]))
    _, (h1, c1), _ = one_step(m, x, h, c)
    c_new = f * c + i * g
    torch.testing.assert_close(h1[0], (o * tanh(c_new)) @ m.weight_hr_l0.T)


@pytest.mark.parametrize("reset_after", [True, False])
def test_gru(data, reset_after):
    x, h, _ = data
    m = lstmkit.GRU(D, H, reset_after=reset_after)
    _, h1, rec = one_step(m, x, h)
    Wi, Wh, bi, bh = m.weight_ih_l0, m.weight_hh_l0, m.bias_ih_l0, m.bias_hh_l0
    u = (x @ Wi.T + bi).split(H, -1)
    r = sig(u[0] + h @ Wh[:H].T + bh[:H])
    z = sig(u[1] + h @ Wh[H:2 * H].T + bh[H:2 * H])
    if reset_after:                          # torch: r ⊙ (W_hn h + b_hn)
        n = tanh(u[2] + r * (h @ Wh[2 * H:].T + bh[2 * H:]))
    else:                                    # Cho 2014, the seeds: W_hn (r ⊙ h)
        n = tanh(u[2] + (r * h) @ Wh[2 * H:].T + bh[2 * H:])
    torch.testing.assert_close(h1[0], (1 - z) * n + z * h)
    torch.testing.assert_close(rec.r[0], r)


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_elman(data, nonlinearity):
    x, h, _ = data
    m = lstmkit.RNN(D, H, nonlinearity=nonlinearity)
    _, h1, _ = one_step(m, x, h)
    a = x @ m.weight_ih_l0.T + m.bias_ih_l0 + h @ m.weight_hh_l0.T + m.bias_hh_l0
    torch.testing.assert_close(h1[0], torch.tanh(a) if nonlinearity == "tanh" else torch.relu(a))


def test_depth_gate_carries_lower_cell_upward():
    torch.manual_seed(1)
    m = lstmkit.DepthGatedLSTM(D, H, num_layers=2)
    x = torch.randn(1, B, D)
    with lstmkit.trace(m) as tr:
        m(x)
    lo, up = tr[0], tr[1]
    x1 = lo.h[0]                                     # layer 1's input is h_low'
    a = x1 @ m.weight_ih_l1.T + m.bias_ih_l1 + m.bias_hh_l1   # h0 = 0
    i, f, g = sig(a[:, :H]), sig(a[:, H:2 * H]), tanh(a[:, 2 * H:3 * H])
    c_low = lo.c[0]
    d = sig(x1 @ m.weight_xd_l1.T + m.bias_d_l1 + m.weight_ld_l1 * c_low)   # c = 0
    torch.testing.assert_close(up.d[0], d)
    torch.testing.assert_close(up.c[0], d * c_low + i * g)
    assert "weight_xd_l0" not in dict(m.named_parameters())


def test_zoneout_eval_is_the_expectation(data):
    x, h, c = data
    p = 0.3
    m, plain = lstmkit.LSTM(D, H, zoneout=p).eval(), lstmkit.LSTM(D, H)
    plain.load_state_dict(m.state_dict())
    _, (h1, c1), _ = one_step(m, x, h, c)
    _, (h2, c2), _ = one_step(plain, x, h, c)
    torch.testing.assert_close(c1[0], p * c + (1 - p) * c2[0])
    torch.testing.assert_close(h1[0], p * h + (1 - p) * h2[0])


def test_zoneout_train_keeps_each_unit_or_updates_it(data):
    x, h, c = data
    torch.manual_seed(3)
    m = lstmkit.LSTM(D, 64, zoneout=0.5).train()
    plain = lstmkit.LSTM(D, 64)
    plain.load_state_dict(m.state_dict())
    h, c = torch.randn(B, 64), torch.randn(B, 64)
    _, (h1, c1), _ = one_step(m, x, h, c)
    _, (h2, c2), _ = one_step(plain, x, h, c)
    kept = torch.isclose(c1[0], c)
    assert torch.equal(kept | torch.isclose(c1[0], c2[0]), torch.ones_like(kept))
    assert 0.3 < kept.double().mean() < 0.7


def test_recurrent_dropout_one_mask_per_sequence():
    torch.manual_seed(0)
    m = lstmkit.LSTM(D, 32, recurrent_dropout=0.5).train()
    noise = m._noise(m.specs[0], 10, B, torch.zeros(()))
    assert noise.drop.shape == (B, 32)                      # one mask, reused at every step
    assert set(noise.drop.unique().tolist()) <= {0.0, 2.0}   # scaled by 1/(1-p)
    m.eval()
    plain = lstmkit.LSTM(D, 32)
    plain.load_state_dict(m.state_dict())
    x = torch.randn(5, B, D)
    torch.testing.assert_close(m(x)[0], plain(x)[0])         # no effect in eval


def test_forget_bias_initialisation():
    m = lstmkit.LSTM(D, H, forget_bias=1.0, coupled=True)   # rows f, g, o
    assert torch.all(m.bias_ih_l0[:H] == 1.0) and torch.all(m.bias_hh_l0[:H] == 0.0)
    m = lstmkit.LSTM(D, H, forget_bias=2.0, num_layers=2, bidirectional=True)
    assert torch.all(m.bias_ih_l1_reverse[H:2 * H] == 2.0)
