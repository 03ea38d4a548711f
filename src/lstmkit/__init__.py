"""lstmkit: every LSTM variant, correct to the last gradient, drop-in for torch.nn.LSTM."""
from .cell_modules import GRUCell, LSTMCell, RNNCell
from .interop import export_onnx, from_torch
from .layers import GRU, LSTM, RNN, DepthGatedLSTM, LSTMState
from .trace import GateTrace, Trace, trace

__version__ = "0.1.0"

__all__ = [
    "LSTM", "GRU", "RNN", "DepthGatedLSTM", "LSTMCell", "GRUCell", "RNNCell", "LSTMState",
    "from_torch", "export_onnx", "trace", "Trace", "GateTrace", "__version__",
]
