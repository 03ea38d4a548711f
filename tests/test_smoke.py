import torch

import lstmkit


def test_lstm_matches_torch_smoke():
    torch.manual_seed(0)
    ref = torch.nn.LSTM(3, 5)
    ours = lstmkit.from_torch(ref)
    x = torch.randn(4, 2, 3)
    assert torch.allclose(ref(x)[0], ours(x)[0], atol=1e-6)
