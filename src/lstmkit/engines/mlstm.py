"""The mLSTM (``cells.xlstm.MLSTMSpec``) over a whole sequence, three ways that compute the same
function: "recurrent" (the step in a loop: the oracle), "parallel" (one causal T × T decay
matrix, quadratic in T) and "chunkwise" (chunks of L steps: the parallel form inside each chunk,
the state (C, n, m) carried from chunk to chunk: linear in T).

Per head, with F_t = Σ_{r≤t} log f_r (within the chunk) and the chunk's incoming state
(C₀, n₀, m₀) seen as one more source at s = 0:
    a_ts = F_t − F_s + ĩ_s  (s ≤ t),   a_t0 = F_t + m₀          log weight of source s in step t
    m_t  = max(a_t0, max_s a_ts)                                 = the step's m_t, unrolled
    h̃_t  = normalise(Σ_s e^{a_ts − m_t} (q_t·k_s) v_s + e^{a_t0 − m_t} C₀ q_t,
                      Σ_s e^{a_ts − m_t} (q_t·k_s)   + e^{a_t0 − m_t} n₀·q_t,  m_t)
Unrolling m_t = max(log f_t + m_{t−1}, ĩ_t) gives exactly the row maximum above, so the three
modes agree to rounding (and every weight e^{a − m} is ≤ 1: nothing overflows at any T).

The chunk's outgoing state is the same sum at t = L (``_chunk_states``): with g_s = F_L − F_s + ĩ_s,
M = max_s g_s, K = Σ_s e^{g_s − M} v_s k_sᵀ, N = Σ_s e^{g_s − M} k_s (all chunks at once), then
    m' = max(F_L + m₀, M),   C' = e^{F_L + m₀ − m'} C₀ + e^{M − m'} K,   n' likewise
walked over the chunks in order (T / L small steps). The outputs of all chunks are then one
batched computation. "parallel" is the chunkwise form with one chunk of T steps.

Padding (``lengths``, and a last chunk shorter than L): log f = 0, ĩ = M_FRESH, q = k = v = 0,
so the state passes unchanged. Saved for the backward: what autograd keeps (O(T·L) per head).

mode "traced" (not a module mode: ``xlstm.mLSTM`` takes it under ``torch.export``): the
recurrent step as the body of torch's ``scan`` operator, one graph node with T symbolic
(carries and outputs fresh tensors, as inductor requires: pytorch/pytorch#195977).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch._higher_order_ops.scan import scan as scan_op

from ..cells.xlstm import M_FRESH, MLSTMSpec, MLSTMState, normalise

MODES = ("auto", "parallel", "chunkwise", "recurrent")


def check_chunk(chunk_size) -> int:
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size: expected an int >= 1, got {chunk_size!r}")
    return chunk_size


@dataclass
class MLSTMResult:
    """output: (T, B, H), zero on padded steps.  state: the final MLSTMState (each sequence's
    last valid step).  record: trace letter -> (T, B, ·) detached, or None."""

    output: Tensor
    state: MLSTMState
    record: dict[str, Tensor] | None = None


def _masked(s: dict[str, Tensor], mask: Tensor | None) -> dict[str, Tensor]:
    """Padded steps: log f = 0, ĩ = M_FRESH, q = k = v = 0 (mask (T, B, 1), True on valid steps)."""
    if mask is None:
        return s
    keep = mask[..., None]                                               # (T, B, 1, 1)
    return {**s, "log_f": s["log_f"].masked_fill(~mask, 0.0), "i_tilde": s["i_tilde"].masked_fill(~mask, M_FRESH),
            "q": s["q"] * keep, "k": s["k"] * keep, "v": s["v"] * keep}


def recurrent(spec: MLSTMSpec, s: dict[str, Tensor], state: MLSTMState, mask: Tensor | None):
    """The oracle: ``spec.step`` over time. -> h̃ (T, B, NH, d), final state, m (T, B, NH)."""
    hs, ms = [], []
    for t in range(s["q"].shape[0]):
        h, new, _ = spec.step({k: v[t] for k, v in s.items()}, state)
        if mask is not None:
            mt = mask[t]                                                  # (B, 1)
            new = MLSTMState(torch.where(mt[..., None, None], new.C, state.C),
                             torch.where(mt[..., None], new.n, state.n), torch.where(mt, new.m, state.m))
        state = new
        hs.append(h)
        ms.append(new.m)
    return torch.stack(hs), state, torch.stack(ms)


def traced(spec: MLSTMSpec, s: dict[str, Tensor], state: MLSTMState, mask: Tensor | None):
    """``recurrent`` inside torch's scan operator. -> h̃ (T, B, NH, d), final state, m (T, B, NH)."""
    xs = {k: s[k] for k in ("q", "k", "v", "i_tilde", "log_f")}
    if mask is not None:
        xs["mask"] = mask

    def step(carry, xt):
        old = MLSTMState(*carry)
        h, new, _ = spec.step(xt, old)
        if "mask" in xt:
            mt = xt["mask"]                                               # (B, 1)
            new = MLSTMState(torch.where(mt[..., None, None], new.C, old.C),
                             torch.where(mt[..., None], new.n, old.n), torch.where(mt, new.m, old.m))
        return tuple(t.clone() for t in new), (h.clone(), new.m.clone())

    final, (h, m) = scan_op(step, tuple(state), xs)
    return h, MLSTMState(*final), m


def _chunked(s: dict[str, Tensor], L: int) -> dict[str, Tensor]:
    """(T, B, NH, ·) -> (B, NH, N, L, ·), the tail padded with steps that leave the state as it is."""
    T = s["q"].shape[0]
    pad = -T % L
    out = {}
    for name in ("q", "k", "v", "log_f", "i_tilde"):
        t = s[name]
        if pad:
            fill = M_FRESH if name == "i_tilde" else 0.0
            t = torch.cat([t, t.new_full((pad,) + t.shape[1:], fill)])
        t = t.reshape((t.shape[0] // L, L) + t.shape[1:])                   # N, L, B, NH, ·
        out[name] = t.movedim(2, 0).movedim(3, 1)                           # B, NH, N, L, ·
    return out


def _chunk_states(c: dict[str, Tensor], F: Tensor, state: MLSTMState):
    """Each chunk's incoming state (B, NH, N, ·) and the final one, walking the N chunks."""
    F_L = F[..., -1]                                                        # (B, NH, N)
    g = F_L.unsqueeze(-1) - F + c["i_tilde"]                                # (B, NH, N, L)
    M = g.amax(-1)
    w = torch.exp(g - M.unsqueeze(-1)).unsqueeze(-1)
    K = (c["v"] * w).transpose(-1, -2) @ c["k"]                             # Σ_s w_s v_s k_sᵀ
    Nk = (c["k"] * w).sum(-2)
    Cs, ns, ms = [], [], []
    C, n, m = state
    for j in range(F.shape[2]):
        Cs.append(C)
        ns.append(n)
        ms.append(m)
        m_new = torch.maximum(F_L[..., j] + m, M[..., j])
        a, b = torch.exp(F_L[..., j] + m - m_new), torch.exp(M[..., j] - m_new)
        C = a[..., None, None] * C + b[..., None, None] * K[:, :, j]
        n = a[..., None] * n + b[..., None] * Nk[:, :, j]
        m = m_new
    return MLSTMState(torch.stack(Cs, 2), torch.stack(ns, 2), torch.stack(ms, 2)), MLSTMState(C, n, m)


def _chunk_outputs(c: dict[str, Tensor], F: Tensor, start: MLSTMState) -> tuple[Tensor, Tensor]:
    """h̃ (B, NH, N, L, d) and m (B, NH, N, L) of every step, every chunk at once."""
    L = F.shape[-1]
    a = F.unsqueeze(-1) - F.unsqueeze(-2) + c["i_tilde"].unsqueeze(-2)     # a_ts
    causal = torch.ones(L, L, dtype=torch.bool, device=F.device).tril()
    a = a.masked_fill(~causal, float("-inf"))
    a0 = F + start.m.unsqueeze(-1)                                          # a_t0
    m = torch.maximum(a.amax(-1), a0)
    S = (c["q"] @ c["k"].transpose(-1, -2)) * torch.exp(a - m.unsqueeze(-1))  # e^{a−m} q_t·k_s
    w0 = torch.exp(a0 - m)
    num = S @ c["v"] + w0.unsqueeze(-1) * (c["q"] @ start.C.transpose(-1, -2))
    den = S.sum(-1) + w0 * (c["q"] @ start.n.unsqueeze(-1)).squeeze(-1)
    return normalise(num, den, m), m


def chunkwise(s: dict[str, Tensor], state: MLSTMState, chunk_size: int):
    """The chunkwise form (one chunk of T steps: the parallel form). -> h̃ (T, B, NH, d), final
    state, m (T, B, NH)."""
    T = s["q"].shape[0]
    c = _chunked(s, chunk_size)
    F = torch.cumsum(c["log_f"], -1)
    start, final = _chunk_states(c, F, state)
    h, m = _chunk_outputs(c, F, start)
    B, NH, N, L, d = h.shape
    h = h.movedim(1, 3).movedim(0, 2).reshape(N * L, B, NH, d)[:T]           # T, B, NH, d
    return h, final, m.movedim(1, 3).movedim(0, 2).reshape(N * L, B, NH)[:T]


def run(spec: MLSTMSpec, x: Tensor, state: MLSTMState, p: dict[str, Tensor], *, mask: Tensor | None = None,
        mode: str = "chunkwise", chunk_size: int = 64, record: bool = False) -> MLSTMResult:
    """One mLSTM layer over x (T, B, D) from ``state`` (one layer's C, n, m); mask (T, B, 1)."""
    u = spec.project(x, p)
    s = _masked(spec.split(u), mask)
    T, B = x.shape[:2]
    if mode == "recurrent":
        h_tilde, final, m = recurrent(spec, s, state, mask)
    elif mode == "traced":
        if record:
            raise ValueError("record: a trace() records eager runs only, not a compiled or exported graph")
        h_tilde, final, m = traced(spec, s, state, mask)
    else:
        h_tilde, final, m = chunkwise(s, state, T if mode == "parallel" else chunk_size)
    y = torch.sigmoid(s["o_tilde"]) * h_tilde.reshape(T, B, -1)
    if mask is not None:
        y = y * mask
    rec = None
    if record:
        with torch.no_grad():                   # i' = e^{ĩ − m_t}, f' = e^{log f + m_{t−1} − m_t}
            m_prev = torch.cat([state.m.detach().unsqueeze(0), m[:-1].detach()])
            rec = {"i": torch.exp(s["i_tilde"].detach() - m), "f": torch.exp(s["log_f"].detach() + m_prev - m),
                   "o": torch.sigmoid(s["o_tilde"].detach()), "m": m.detach(), "h": y.detach()}
            if mask is not None:
                rec = {k: v * mask for k, v in rec.items()}
    return MLSTMResult(y, final, rec)
