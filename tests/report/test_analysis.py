"""The gate analysis API: recorded activations are the model's, saturation and memory spans
equal their definitions on gates held constant by hand, correlations equal numpy's."""
import numpy as np
import pytest
import torch
from torch import nn

import lstmkit
from lstmkit.report.analysis import (SNIPPET, Activations, analyse, correlations, memory_spans, record,
                                     saturation, top_units)
from lstmkit.report.features import TextFeatures

TEXT = 'def f(x):\n    return "a(b)" + x  # done\n'


class CharLM(nn.Module):
    """embedding -> recurrent stack -> linear, forward(ids (T, B)) -> logits."""

    def __init__(self, rnn, vocab=len(set(TEXT)), embed=8):
        super().__init__()
        self.embed, self.rnn = nn.Embedding(vocab, embed), rnn
        self.out = nn.Linear(rnn.hidden_size * (2 if rnn.bidirectional else 1), vocab)

    def forward(self, ids):
        return self.out(self.rnn(self.embed(ids))[0])


def ids(text=TEXT):
    chars = sorted(set(TEXT))
    return torch.tensor([chars.index(c) for c in text])[:, None]


def test_record_holds_the_models_own_states():
    torch.manual_seed(0)
    m = CharLM(lstmkit.LSTM(8, 5, num_layers=2, bidirectional=True))
    acts = record(m, ids(), TEXT)
    assert acts.keys == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert acts.quantities == ("i", "f", "g", "o", "c", "tanh(c)", "h")
    with torch.no_grad():
        y, (h_n, c_n) = m.rnn(m.embed(ids()))
    np.testing.assert_allclose(acts.records[1, 0]["h"], y[:, 0, :5].double(), atol=1e-6)
    np.testing.assert_allclose(acts.records[1, 1]["h"], y[:, 0, 5:].double(), atol=1e-6)
    np.testing.assert_allclose(acts.records[1, 0]["c"][-1], c_n[2, 0].double(), atol=1e-6)
    rec = acts.records[0, 1]
    np.testing.assert_allclose(rec["h"], rec["o"] * rec["tanh(c)"], atol=1e-6)     # h = o ⊙ tanh(c)
    assert m.training                                        # record restores the mode


def test_saturation_and_memory_span_on_constant_gates():
    """All weights 0: every gate is σ(its bias), constant in time."""
    rnn = lstmkit.LSTM(8, 3)
    b = torch.tensor([-5.0, 5.0, 0.0])
    with torch.no_grad():
        for p in rnn.parameters():
            p.zero_()
        rnn.bias_ih_l0[0:3] = b          # i
        rnn.bias_ih_l0[3:6] = b.flip(0)  # f: 5, -5, 0
    acts = record(CharLM(rnn), ids(), TEXT)
    sat = {s.gate: s for s in saturation(acts)}
    assert set(sat) == {"i", "f", "o"}
    np.testing.assert_array_equal(sat["i"].left, [1, 0, 0])
    np.testing.assert_array_equal(sat["i"].right, [0, 1, 0])
    np.testing.assert_array_equal(sat["o"].left + sat["o"].right, [0, 0, 0])   # σ(0) = 0.5
    (span,) = memory_spans(acts)
    np.testing.assert_allclose(span.span, 1 + np.exp(b.flip(0).double().numpy()), rtol=1e-5)   # 1/(1−σ(b)) = 1+e^b
    assert span.gate == "f"


def test_gru_spans_use_the_update_gate():
    torch.manual_seed(0)
    acts = record(CharLM(lstmkit.GRU(8, 4)), ids(), TEXT)
    assert acts.quantities == tuple("rznh")
    (span,) = memory_spans(acts)
    z = acts.records[0, 0]["z"]
    np.testing.assert_allclose(span.span, (1 / (1 - z.astype(np.float64))).mean(0))
    assert {s.gate for s in saturation(acts)} == {"r", "z"}


def synthetic(T=600, seed=0):
    """Unit 2 of h follows the feature with noise; the rest is noise."""
    rng = np.random.default_rng(seed)
    feat = (np.arange(T) // 50 % 2).astype(float)
    h = rng.normal(size=(T, 6))
    h[:, 2] = -3 * feat + 0.5 * rng.normal(size=T)
    text = "".join(rng.choice(list("abc "), T))
    return Activations(text, {(0, 0): {"h": h, "c": rng.normal(size=(T, 6))}}), \
        TextFeatures("code", {"in_string": feat, "in_comment": np.zeros(T)})


def test_correlations_equal_numpy_and_top_units_find_the_tracking_unit():
    acts, feats = synthetic()
    corr = correlations(acts, feats)
    for (l, d, q), r in corr.items():
        a = acts.records[l, d][q]
        want = [np.corrcoef(a[:, u], feats.values["in_string"])[0, 1] for u in range(6)]
        np.testing.assert_allclose(r[0], want, atol=1e-12)
        np.testing.assert_array_equal(r[1], 0)                # constant feature: r = 0
    top = top_units(acts, feats, k=2)
    assert [u.feature for u in top] == ["in_string", "in_string"]   # in_comment is constant: skipped
    best = top[0]
    assert (best.quantity, best.unit) == ("h", 2) and best.r < -0.9
    assert len(best.snippet) == SNIPPET == len(best.values)
    assert best.snippet == acts.text[best.start:best.start + SNIPPET]
    np.testing.assert_array_equal(best.values, acts.records[0, 0]["h"][best.start:best.start + SNIPPET, 2])
    seg = feats.values["in_string"][best.start:best.start + SNIPPET]
    assert 0 < seg.mean() < 1                                  # the snippet shows a transition


def test_analyse_on_a_model():
    torch.manual_seed(0)
    rep = analyse(record(CharLM(lstmkit.LSTM(8, 6)), ids(), TEXT), k=2)
    assert rep.features.kind == "code"
    varies = {n for n, v in rep.features.values.items() if v.std() > 0}
    assert {u.feature for u in rep.top_units} == varies and "in_triple_string" not in varies
    assert rep.best("in_string") is not None and abs(rep.best("in_string").r) <= 1


def test_bad_input():
    m = CharLM(lstmkit.LSTM(8, 3))
    with pytest.raises(TypeError, match="lstmkit"):
        record(nn.Sequential(nn.Embedding(30, 4), nn.LSTM(4, 3)), ids(), TEXT)
    with pytest.raises(ValueError, match="text"):
        record(m, ids(), "")
    with pytest.raises(ValueError, match="steps"):
        record(m, ids(), TEXT[:-1])
    with pytest.raises(ValueError, match="batch 1"):
        record(m, ids().repeat(1, 2), TEXT)
