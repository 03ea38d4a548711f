"""lstmkit: every LSTM variant, correct to the last gradient, drop-in for torch.nn.LSTM."""
from .cell_modules import GRUCell, LSTMCell, RNNCell
from .interop import export_onnx, from_torch
from . import variants
from .layers import GRU, LSTM, RNN, DepthGatedLSTM
from .parallel import QRNN, MinGRU, MinLSTM, QRNNState
from .pararnn import ParaGRU, ParaLSTM
from .specs import LSTMState
from .trace import GateTrace, Trace, trace
from .xlstm import MLSTMState, SLSTMState, mLSTM, sLSTM
from .quant import load_quantized, quantize, save_quantized
from ._version import __version__

__all__ = [
    "LSTM", "GRU", "RNN", "DepthGatedLSTM", "MinLSTM", "MinGRU", "QRNN", "QRNNState", "ParaLSTM", "ParaGRU", "sLSTM", "mLSTM", "SLSTMState", "MLSTMState", "LSTMCell", "GRUCell", "RNNCell", "LSTMState",
    "from_torch", "export_onnx", "trace", "Trace", "GateTrace", "variants", "__version__",
    "quantize", "save_quantized", "load_quantized",
]
