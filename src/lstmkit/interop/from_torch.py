"""``from_torch``: the lstmkit module equivalent to a ``torch.nn`` recurrent module,
with its weights loaded (strict, so every parameter name must match)."""
from __future__ import annotations

from torch import nn

from ..cell_modules import GRUCell, LSTMCell, RNNCell
from ..layers import GRU, LSTM, RNN


def from_torch(module: nn.Module, backend: str = "auto") -> nn.Module:
    """nn.LSTM/GRU/RNN/LSTMCell/GRUCell/RNNCell -> lstmkit module with the same weights."""
    w = module.weight_ih_l0 if hasattr(module, "weight_ih_l0") else getattr(module, "weight_ih", None)
    if w is None or not isinstance(module, (nn.RNNBase, nn.RNNCellBase)):
        raise TypeError(f"module: expected torch.nn.LSTM, GRU, RNN or one of their cells, "
                        f"got {type(module).__name__}")
    kw = dict(device=w.device, dtype=w.dtype)
    if isinstance(module, nn.RNNBase):
        common = dict(num_layers=module.num_layers, bias=module.bias, batch_first=module.batch_first,
                      dropout=float(module.dropout), bidirectional=module.bidirectional,
                      backend=backend, **kw)
        if isinstance(module, nn.LSTM):
            new = LSTM(module.input_size, module.hidden_size, proj_size=module.proj_size, **common)
        elif isinstance(module, nn.GRU):
            new = GRU(module.input_size, module.hidden_size, **common)
        else:
            new = RNN(module.input_size, module.hidden_size, nonlinearity=module.nonlinearity, **common)
    elif isinstance(module, nn.LSTMCell):
        new = LSTMCell(module.input_size, module.hidden_size, module.bias, **kw)
    elif isinstance(module, nn.GRUCell):
        new = GRUCell(module.input_size, module.hidden_size, module.bias, **kw)
    else:
        new = RNNCell(module.input_size, module.hidden_size, module.bias, module.nonlinearity, **kw)
    new.load_state_dict(module.state_dict(), strict=True)
    return new.train(module.training)
