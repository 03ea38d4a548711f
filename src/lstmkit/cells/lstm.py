"""The LSTM family: the seeds' LSTM and the variants of Greff et al. 2017 (arXiv 1503.04069).

Gate order i, f, g, o as in torch; weight rows hold only the gates that exist. One step:

    a    = u + LN(h̃ W_hhᵀ)·γ_hh + b_hh         u = LN(x W_ihᵀ)·γ_ih + b_ih (whole sequence)
    i    = σ(a_i + w_ci ⊙ c)                    f = σ(a_f + w_cf ⊙ c)      (peepholes: old c)
    g    = tanh(a_g)                            (the seeds' C̃)
    c'   = f ⊙ c + i ⊙ g  [+ d ⊙ c_low']         (depth gate, Yao et al. 2015)
    o    = σ(a_o + w_co ⊙ c')                   (output peephole: new c')
    m    = o ⊙ tanh(LN(c')·γ_c + β_c)
    h'   = m W_hrᵀ                               (projection, LSTMP; otherwise h' = m)

with h̃ = h ⊙ mask (recurrent dropout, Gal & Ghahramani 2016, arXiv 1512.05287) and
zoneout on c' and h' (Krueger et al. 2016, arXiv 1606.01305). Variants:

- peepholes (Gers & Schmidhuber 2000): any subset of "ifo"; i and f see c, o sees c'.
- coupled (CIFG, the seeds' "coupled forget and input gates"): i = 1 − f, no input rows.
- ablations: NIG i = 1, NFG f = 1, NOG o = 1, NIAF g = a_g, NOAF m = o ⊙ c'.
- layer norm (Ba et al. 2016, arXiv 1607.06450): the LN terms above, one LN per gate.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from .common import project, zoneout
from .depth_gated import depth_gate

ABLATIONS = ("input_gate", "forget_gate", "output_gate", "input_activation", "output_activation")


@dataclass(frozen=True)
class LSTMSpec:
    """One LSTM layer-direction's options (validated by the module that builds it).

    hidden_size: H.  proj_size: P (0 = none).  peepholes: subset of "ifo".
    coupled: CIFG.  ablate: names from ABLATIONS.  layer_norm: Ba et al. LN.
    depth_gate: this layer receives the depth gate from the layer below.
    """

    hidden_size: int
    proj_size: int = 0
    bias: bool = True
    peepholes: str = ""
    coupled: bool = False
    ablate: frozenset = field(default_factory=frozenset)
    layer_norm: bool = False
    depth_gate: bool = False

    family = "lstm"

    @property
    def gates(self) -> str:
        """Letters of the gates that have weight rows, in i, f, g, o order."""
        a = self.ablate
        return ("" if self.coupled or "input_gate" in a else "i") + \
               ("" if "forget_gate" in a else "f") + "g" + ("" if "output_gate" in a else "o")

    @property
    def out_size(self) -> int:
        """R: width of h (P with a projection, else H)."""
        return self.proj_size or self.hidden_size

    @property
    def state_sizes(self) -> tuple[int, int]:
        """(R, H): widths of h and c."""
        return (self.out_size, self.hidden_size)

    def param_shapes(self, input_size: int) -> dict[str, tuple[int, ...]]:
        """Short symbol -> shape of every parameter this layer-direction owns."""
        H, G, R = self.hidden_size, len(self.gates), self.out_size
        s = {"w_ih": (G * H, input_size), "w_hh": (G * H, R)}
        if self.bias:
            s.update(b_ih=(G * H,), b_hh=(G * H,))
        if self.proj_size:
            s["w_hr"] = (self.proj_size, H)
        for letter in self.peepholes:
            s[f"w_c{letter}"] = (H,)
        if self.layer_norm:
            s.update(g_ih=(G * H,), g_hh=(G * H,), g_c=(H,), b_c=(H,))
        if self.depth_gate:
            s.update(w_xd=(H, input_size), b_d=(H,), w_cd=(H,), w_ld=(H,))
        return s

    def project(self, x: Tensor, p: dict[str, Tensor]) -> tuple[Tensor, ...]:
        """Input terms for all steps at once: (u,) or (u, xd); u: (T, B, G*H)."""
        u = project(x, p["w_ih"], p.get("b_ih"), p.get("g_ih"), len(self.gates))
        if not self.depth_gate:
            return (u,)
        return (u, x @ p["w_xd"].t() + p["b_d"])

    def step(self, u: tuple[Tensor, ...], state: tuple[Tensor, Tensor], p: dict[str, Tensor], *,
             keep_c=None, keep_h=None, drop: Tensor | None = None, c_low: Tensor | None = None):
        """One step. Returns ((h', c'), gates) with gates {i, f, g, o[, d]} (1.0 where ablated)."""
        h, c = state
        G, ab, pe = len(self.gates), self.ablate, self.peepholes
        h_in = h if drop is None else h * drop
        a = u[0] + project(h_in, p["w_hh"], p.get("b_hh"), p.get("g_hh"), G)
        a = dict(zip(self.gates, a.chunk(G, -1)))
        f = torch.sigmoid(a["f"] + p["w_cf"] * c if "f" in pe else a["f"]) if "f" in a else 1.0
        if "i" in a:
            i = torch.sigmoid(a["i"] + p["w_ci"] * c if "i" in pe else a["i"])
        else:
            i = 1 - f if self.coupled else 1.0
        g = a["g"] if "input_activation" in ab else torch.tanh(a["g"])
        c_new = f * c + i * g
        gates = {"i": i, "f": f, "g": g}
        if self.depth_gate:
            d = depth_gate(u[1], c, c_low, p["w_cd"], p["w_ld"])
            c_new = c_new + d * c_low
            gates["d"] = d
        o = torch.sigmoid(a["o"] + p["w_co"] * c_new if "o" in pe else a["o"]) if "o" in a else 1.0
        gates["o"] = o
        s = c_new
        if self.layer_norm:
            s = torch.nn.functional.layer_norm(c_new, c_new.shape[-1:], p["g_c"], p["b_c"])
        m = o * (s if "output_activation" in ab else torch.tanh(s))
        h_new = m @ p["w_hr"].t() if self.proj_size else m
        return (zoneout(h, h_new, keep_h), zoneout(c, c_new, keep_c)), gates


__all__ = ["ABLATIONS", "LSTMSpec"]
