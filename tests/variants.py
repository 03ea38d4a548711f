"""Every variant of the family modules, named, for tests that sweep them all."""
import lstmkit

LSTM_VARIANTS = {
    "vanilla": {},
    "peepholes": {"peepholes": True},
    "peephole_f": {"peepholes": "f"},
    "peephole_io": {"peepholes": "io"},
    "coupled": {"coupled": True},
    "coupled_peep_fo": {"coupled": True, "peepholes": "fo"},
    "no_input_gate": {"ablate": "input_gate"},
    "no_forget_gate": {"ablate": "forget_gate"},
    "no_output_gate": {"ablate": "output_gate"},
    "no_input_act": {"ablate": "input_activation"},
    "no_output_act": {"ablate": "output_activation"},
    "layer_norm": {"layer_norm": True},
    "projection": {"proj_size": 3},
    "ln_proj_peep": {"layer_norm": True, "proj_size": 3, "peepholes": True},
    "forget_bias": {"forget_bias": 1.0},
    "zoneout": {"zoneout": 0.3},
    "recurrent_dropout": {"recurrent_dropout": 0.3},
}
GRU_VARIANTS = {
    "gru": {}, "gru_cho": {"reset_after": False}, "gru_ln": {"layer_norm": True},
    "gru_cho_ln": {"reset_after": False, "layer_norm": True}, "gru_zoneout": {"zoneout": 0.3},
}


def make(name, D, H, **kw):
    """Module for a variant name from the tables above, or 'depth', 'rnn_tanh', 'rnn_relu'."""
    if name in LSTM_VARIANTS:
        return lstmkit.LSTM(D, H, **LSTM_VARIANTS[name], **kw)
    if name in GRU_VARIANTS:
        return lstmkit.GRU(D, H, **GRU_VARIANTS[name], **kw)
    if name == "depth":
        kw.setdefault("num_layers", 2)
        return lstmkit.DepthGatedLSTM(D, H, **kw)
    if name.startswith("rnn_"):
        return lstmkit.RNN(D, H, nonlinearity=name[4:], **kw)
    raise KeyError(name)


ALL = [*LSTM_VARIANTS, *GRU_VARIANTS, "depth", "rnn_tanh", "rnn_relu"]
