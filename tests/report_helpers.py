"""A small untrained character model and its gate report, for the page tests."""
from functools import lru_cache

import torch
from torch import nn

import lstmkit
from lstmkit.report.analysis import analyse, record
from lstmkit.report.inspect import write_report

CODE = 'def f(x):\n    """Doc."""\n    s = "a(b)" + x  # note\n    return [s,\n            1]\n' * 2


class CharLM(nn.Module):
    def __init__(self, chars, hidden=8, layers=2, bidirectional=True):
        super().__init__()
        self.chars = chars
        self.embed = nn.Embedding(len(chars), 6)
        self.rnn = lstmkit.LSTM(6, hidden, layers, bidirectional=bidirectional)

    def forward(self, ids):
        return self.rnn(self.embed(ids))[0]


@lru_cache(maxsize=8)                  # the reference engine is slow: record each text once
def make_report(text=CODE, seed=0):
    torch.manual_seed(seed)
    chars = sorted(set(text))
    m = CharLM(chars)
    x = torch.tensor([chars.index(c) for c in text])[:, None]
    return analyse(record(m, x, text))


def write_page(tmp_path, text=CODE, title="test page"):
    return write_report(make_report(text), tmp_path / "report.html", title)
