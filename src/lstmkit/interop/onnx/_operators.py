"""One layer (both directions) as ONNX's fixed ``LSTM``, ``GRU`` or ``RNN`` operator.

Weight layouts (ONNX operator spec, https://onnx.ai/onnx/operators/onnx__LSTM.html):

    LSTM  W (dirs, 4H, D) gates i, o, f, c    torch rows i, f, g, o
          B (dirs, 8H) = [Wb | Rb]             P (dirs, 3H) peepholes i, o, f
    GRU   W (dirs, 3H, D) gates z, r, h        torch rows r, z, n
    RNN   W (dirs, H, D)

ONNX's peepholes match ours: i and f see the old cell c, o sees the new cell c'.
GRU ``linear_before_reset=1`` is torch's n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))
(reset_after=True); 0 is Cho et al.'s n = tanh(W_in x + b_in + W_hn (r ⊙ h) + b_hn).

CIFG (i = 1 − f) uses ``input_forget=1``. The spec only says it "couples the input and
forget gates"; onnxruntime keeps i and sets f = 1 − i, the ONNX reference runtime ignores
the flag. We store −(f's weights, bias, peephole) in the i slot and f's own in the f slot:
then i = σ(−a_f) = 1 − σ(a_f) and f = σ(a_f) under every reading (f := 1 − i, i := 1 − f,
or no coupling at all), so the file means the same thing in any runtime.
"""
from __future__ import annotations

import numpy as np

from ._graph import Graph

_LSTM_ORDER = "iofg"       # ONNX i, o, f, c (c is our g)
_GRU_ORDER = "zrn"         # ONNX z, r, h (h is our n)


def supports(spec, zoneout: float, want_cells: bool) -> bool:
    """Whether the layer is exactly one fixed ONNX operator."""
    if spec.family == "rnn":
        return True
    if zoneout or spec.layer_norm or want_cells:
        return False
    if spec.family == "gru":
        return True
    return not (spec.proj_size or spec.depth_gate or spec.ablate)


def _rows(spec, t: np.ndarray | None) -> dict[str, np.ndarray]:
    """Split stacked gate rows (torch order, present gates only) into letter -> block."""
    H = spec.hidden_size
    if t is None:
        return {}
    return {letter: t[j * H:(j + 1) * H] for j, letter in enumerate(spec.gates)}


def _lstm_blocks(spec, t: np.ndarray | None, like: np.ndarray) -> np.ndarray:
    """Torch-order gate rows -> ONNX i, o, f, c rows; CIFG's i slot holds −f (see module doc)."""
    rows = _rows(spec, t if t is not None else np.zeros_like(like))
    if spec.coupled:
        rows["i"] = -rows["f"]
    return np.concatenate([rows[letter] for letter in _LSTM_ORDER])


def _weights(spec, p: dict[str, np.ndarray]):
    """One direction's (W, R, B, P-or-None) in the operator's layout."""
    H = spec.hidden_size
    zeros_b = np.zeros(len(spec.gates) * H, np.float32)
    b_ih, b_hh = p.get("b_ih"), p.get("b_hh")
    if spec.family == "lstm":
        W, R = _lstm_blocks(spec, p["w_ih"], None), _lstm_blocks(spec, p["w_hh"], None)
        B = np.concatenate([_lstm_blocks(spec, b_ih, zeros_b), _lstm_blocks(spec, b_hh, zeros_b)])
        P = None
        if spec.peepholes:
            peep = {f"c{g}": p.get(f"w_c{g}", np.zeros(H, np.float32)) for g in "ifo"}
            if spec.coupled:
                peep["ci"] = -peep["cf"]
            P = np.concatenate([peep["ci"], peep["co"], peep["cf"]])
        return W, R, B, P
    order = _GRU_ORDER if spec.family == "gru" else "h"

    def reorder(t):
        rows = _rows(spec, t)
        return np.concatenate([rows[g] for g in order])
    B = np.concatenate([reorder(b_ih if b_ih is not None else zeros_b),
                        reorder(b_hh if b_hh is not None else zeros_b)])
    return reorder(p["w_ih"]), reorder(p["w_hh"]), B, None


def emit(g: Graph, spec, params: list[dict[str, np.ndarray]], x: str, state0: tuple | None,
         lengths32: str | None):
    """x (T, B, D) -> (y (T, B, dirs·H), finals) with finals = (h_n,) or (h_n, c_n), each
    (dirs, B, H). state0: (h0,) / (h0, c0) of shape (dirs, B, ·), or None for zeros."""
    dirs = len(params)
    per_dir = [_weights(spec, p) for p in params]
    W, R, B, P = (None if per_dir[0][j] is None else np.stack([w[j] for w in per_dir]) for j in range(4))
    op_type = spec.family.upper()
    inputs = [x, g.weight(f"{spec.family}_W", W, channel_axis=1), g.weight(f"{spec.family}_R", R, channel_axis=1),
              g.weight(f"{spec.family}_B", B) if spec.bias else "",
              lengths32 or ""]
    inputs += list(state0) if state0 is not None else [""] * len(spec.state_sizes)
    attrs = dict(hidden_size=spec.hidden_size,
                 direction="bidirectional" if dirs == 2 else "forward")
    if spec.family == "lstm":
        inputs.append(g.weight("lstm_P", P) if P is not None else "")
        if spec.coupled:
            attrs["input_forget"] = 1
    elif spec.family == "gru":
        attrs["linear_before_reset"] = int(spec.reset_after)
    else:
        attrs["activations"] = [spec.nonlinearity.capitalize()] * dirs
    while inputs[-1] == "":
        inputs.pop()
    outs = g.op(op_type, inputs, n_out=1 + len(spec.state_sizes), **attrs)
    y = outs[0]                                           # (T, dirs, B, H)
    if dirs == 1:
        y = g.op("Squeeze", [y, g.const([1], np.int64)])
    else:                                                 # [forward | backward] features, as torch
        y = g.op("Reshape", [g.op("Transpose", [y], perm=[0, 2, 1, 3]), g.const([0, 0, -1], np.int64)])
    return y, tuple(outs[1:])
