"""The language model: embedding -> lstmkit recurrent stack -> linear decoder.

    e_t = E[w_t]                      (E: V × D embedding; dropout on e_t)
    h_t = RNN(e_t, state)             (any lstmkit family and variant option; MinLSTM/MinGRU/QRNN
                                       and sLSTM/mLSTM too, with dropout their only option)
    p(w_{t+1} | w_≤t) = softmax(W h_t + b)      (W = E when weights are tied, needs D = R)

Regularisers (AWD-LSTM, Merity et al. 2017, arXiv 1708.02182): dropout on embeddings,
between layers and before the decoder; DropConnect on the recurrent weights W_hh (one
mask per forward pass, i.e. per truncated-BPTT segment, so the recurrence stays fixed
within a sequence, Wan et al. 2013); zoneout (Krueger et al. 2016, arXiv 1606.01305)
and recurrent dropout (Gal & Ghahramani 2016, arXiv 1512.05287) from the modules;
weight tying (Press & Wolf 2017, arXiv 1608.05859; Inan et al. 2017, arXiv 1611.01462).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor, nn
from torch.nn.utils import parametrize

from ... import layers
from ...variants import FAMILIES, PARALLEL_FAMILIES, XLSTM_FAMILIES

# The families beyond torch.nn's (no W_hh-level options: no projection, peepholes, zoneout,
# recurrent dropout, layer norm or DropConnect); the mLSTM has no inter-layer dropout.
OTHER_FAMILIES = {**PARALLEL_FAMILIES, **XLSTM_FAMILIES}


@dataclass
class LMConfig:
    """vocab_size: V.  cell: family ("lstm", "gru", "rnn", "depth_gated", and "minlstm",
    "mingru", "qrnn", "slstm", "mlstm": OTHER_FAMILIES, whose H must divide by 4 heads for the xLSTM).  embed: D.
    hidden: H.  layers: L.  proj: LSTM projection P (0 = none).  dropout: embeddings,
    between layers and before the decoder.  weight_drop: DropConnect rate on W_hh.
    zoneout, recurrent_dropout: module options.  tie_weights: decoder W = E (D must equal R).
    peepholes ("", "ifo" or a subset), coupled, ablate, layer_norm, forget_bias: LSTM options
    (layer_norm also GRU).  reset_after: GRU.  nonlinearity: RNN.  backend: engine choice.
    """

    vocab_size: int
    cell: str = "lstm"
    embed: int = 64
    hidden: int = 512
    layers: int = 1
    proj: int = 0
    dropout: float = 0.0
    weight_drop: float = 0.0
    zoneout: float = 0.0
    recurrent_dropout: float = 0.0
    tie_weights: bool = False
    peepholes: str = ""
    coupled: bool = False
    ablate: list[str] = field(default_factory=list)
    layer_norm: bool = False
    forget_bias: float = 1.0
    reset_after: bool = True
    nonlinearity: str = "tanh"
    backend: str = "auto"

    def __post_init__(self):
        if self.cell not in FAMILIES and self.cell not in OTHER_FAMILIES:
            raise ValueError(f"cell: expected a family, one of {(*FAMILIES, *OTHER_FAMILIES)}, got {self.cell!r}")
        if self.cell in OTHER_FAMILIES:
            for name, off in (("layer_norm", False), ("zoneout", 0.0), ("recurrent_dropout", 0.0),
                              ("weight_drop", 0.0)):
                if getattr(self, name) != off:
                    raise ValueError(f"{name}: not available for cell={self.cell!r}")
            if self.cell in XLSTM_FAMILIES and self.hidden % 4:
                raise ValueError(f"hidden: the {self.cell} splits H over 4 heads, expected a multiple "
                                 f"of 4, got {self.hidden}")
        lstm = self.cell in ("lstm", "depth_gated")
        if not lstm:
            for name, off in (("proj", 0), ("peepholes", ""), ("coupled", False), ("ablate", [])):
                if getattr(self, name) != off:
                    raise ValueError(f"{name}: an LSTM option, not available for cell={self.cell!r}")
        if self.cell == "rnn" and (self.layer_norm or self.zoneout or self.recurrent_dropout):
            raise ValueError("layer_norm/zoneout/recurrent_dropout: not available for cell='rnn'")
        if not 0 <= self.weight_drop < 1:
            raise ValueError(f"weight_drop: expected a float in [0, 1), got {self.weight_drop}")
        out = self.proj or self.hidden
        if self.tie_weights and self.embed != out:
            raise ValueError(f"tie_weights: needs embed == {'proj' if self.proj else 'hidden'} "
                             f"({out}), got embed={self.embed}")


class DropConnect(nn.Module):
    """W̃_hh = W_hh ⊙ M / (1 − p), M ~ Bernoulli(1 − p) each time the weight is read in
    training (once per layer per forward pass); W̃_hh = W_hh in evaluation."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, w: Tensor) -> Tensor:
        return nn.functional.dropout(w, self.p, self.training)


class LanguageModel(nn.Module):
    """forward(tokens (T, B) int64, state) -> (logits (T, B, V), new state)."""

    def __init__(self, cfg: LMConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.embed)
        common = dict(num_layers=cfg.layers, dropout=cfg.dropout if cfg.layers > 1 else 0.0,
                      backend=cfg.backend)
        if cfg.cell in OTHER_FAMILIES:
            if cfg.cell == "mlstm":
                del common["dropout"]
            if cfg.cell not in ("slstm",):
                del common["backend"]
            self.rnn = OTHER_FAMILIES[cfg.cell](cfg.embed, cfg.hidden, **common)
        elif cfg.cell in ("lstm", "depth_gated"):
            cls = layers.DepthGatedLSTM if cfg.cell == "depth_gated" else layers.LSTM
            self.rnn = cls(cfg.embed, cfg.hidden, proj_size=cfg.proj, peepholes=cfg.peepholes or False,
                           coupled=cfg.coupled, ablate=tuple(cfg.ablate), layer_norm=cfg.layer_norm,
                           forget_bias=cfg.forget_bias, zoneout=cfg.zoneout,
                           recurrent_dropout=cfg.recurrent_dropout, **common)
        elif cfg.cell == "gru":
            self.rnn = layers.GRU(cfg.embed, cfg.hidden, reset_after=cfg.reset_after,
                                  layer_norm=cfg.layer_norm, zoneout=cfg.zoneout,
                                  recurrent_dropout=cfg.recurrent_dropout, **common)
        else:
            self.rnn = layers.RNN(cfg.embed, cfg.hidden, nonlinearity=cfg.nonlinearity, **common)
        self.drop = nn.Dropout(cfg.dropout)
        self.decoder = nn.Linear(cfg.proj or cfg.hidden, cfg.vocab_size)
        if cfg.tie_weights:
            self.decoder.weight = self.embed.weight
        if cfg.weight_drop:
            for k in range(cfg.layers):
                parametrize.register_parametrization(self.rnn, f"weight_hh_l{k}", DropConnect(cfg.weight_drop))

    def forward(self, tokens: Tensor, state=None):
        y, state = self.rnn(self.drop(self.embed(tokens)), state)
        return self.decoder(self.drop(y)), state


def detach_state(state):
    """Cut the graph between truncated-BPTT segments, keep the values."""
    if state is None:
        return None
    if isinstance(state, Tensor):
        return state.detach()
    parts = tuple(s.detach() for s in state)
    return type(state)(*parts) if hasattr(state, "_fields") else parts     # LSTMState or a plain (h, c)
