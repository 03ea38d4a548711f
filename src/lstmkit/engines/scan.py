"""Parallel-in-time scan for the recurrences h_t = a_t ⊙ h_{t−1} + b_t (minGRU, minLSTM).

Heinsen 2023 (arXiv 2311.06281): with a, b > 0 given as log a, log b and a*_t = Σ_{s≤t} log a_s,

    h_t = exp(a*_t) ⊙ h_0 + exp(a*_t + logcumsumexp_{s≤t}(log b_s − a*_s))

Two O(T) cumulative ops over time instead of T dependent steps. The h_0 term stays outside
the log, so h_0 may be any real (zero, negative: a carried or user state), not only positive.

Chunks: the sequence is cut into chunks of ``chunk_size`` steps and the state carried from one
to the next (h_0 of a chunk = last h of the one before). Memory stays O(chunk · B · H) per
temporary, and a*_t, summed within a chunk only, stays small: float32 keeps its relative
precision in log b_s − a*_s (over T = 10⁴ steps of log a ≈ −1 it would not).

Masks (``lengths``): past a sequence's length a = 1, b = 0, i.e. log a = 0, log b = −inf, so the
state is frozen. −inf is replaced by the finite floor ``_LOG_ZERO``: exp of it is exactly 0 in
float32 and float64, and logcumsumexp's backward stays finite (all −inf would give NaN).

Saved for the backward: whatever autograd keeps for cumsum, logcumsumexp and exp (O(T·B·H)).
``scan_sequential`` is the oracle: the loop h = a ⊙ h + b.

The fused mode (``LinearRecurrence``): a and b for every step from the whole sequence's u
(vectorised, autograd), then only the recurrence itself in a loop, one fused multiply-add per
step, with a hand-written backward (no autograd graph over the steps):

    h_t = a_t ⊙ h_{t−1} + b_t;   g_t = ∂L/∂h_t + a_{t+1} ⊙ g_{t+1};
    ∂L/∂b_t = g_t,   ∂L/∂a_t = g_t ⊙ h_{t−1},   ∂L/∂h_0 = a_1 ⊙ g_1

Exact (no logs, no exps of sums), and on a CPU, where the scan has no idle cores to fill, the
fastest: the loop's work is O(T·B·H), against the input GEMM's O(T·B·D·G·H).

Graph capture: the eager modes loop over T in Python (the steps, or the chunks), which
``torch.export`` would unroll and fix to the example's length. Under export ``run`` takes
mode "traced": ``spec.step`` inside torch's ``scan`` operator (as ``engines.traced`` does for
the LSTM family), one graph node with a symbolic T, which the ONNX exporter turns into a
``Loop``. ``torch.compile`` traces the eager modes as they are (it specialises on T and
recompiles for a new length, as for any Python loop).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch._higher_order_ops.scan import scan as scan_op

_LOG_ZERO = -1e4            # log b on masked steps: exp() == 0 in every float dtype used here
CHUNK_SIZE = 64             # float32: a* over 64 steps keeps ~1e−6 relative error (1024: ~1e−4)
MODES = ("auto", "parallel", "sequential", "fused")


def _check_chunk(chunk_size) -> int:
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size: expected an int >= 1, got {chunk_size!r}")
    return chunk_size


def _masked(log_a: Tensor, log_b: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
    if mask is None:
        return log_a, log_b
    return log_a.masked_fill(~mask, 0.0), log_b.masked_fill(~mask, _LOG_ZERO)


def _scan_chunk(log_a: Tensor, log_b: Tensor, h0: Tensor) -> Tensor:
    """One chunk: (T, B, H) log a, log b and h0 (B, H) -> h (T, B, H)."""
    a_star = torch.cumsum(log_a, 0)
    return torch.exp(a_star) * h0 + torch.exp(a_star + torch.logcumsumexp(log_b - a_star, 0))


def scan(log_a: Tensor, log_b: Tensor, h0: Tensor, *, mask: Tensor | None = None,
         chunk_size: int = CHUNK_SIZE) -> Tensor:
    """h_t = a_t ⊙ h_{t−1} + b_t for all t in parallel (per chunk). log_a, log_b: (T, B, H);
    h0: (B, H); mask: (T, B, 1) bool, False where the state stays frozen. -> h (T, B, H)."""
    chunk_size = _check_chunk(chunk_size)
    log_a, log_b = _masked(log_a, log_b, mask)
    hs, h = [], h0
    for start in range(0, log_a.shape[0], chunk_size):
        part = _scan_chunk(log_a[start:start + chunk_size], log_b[start:start + chunk_size], h)
        hs.append(part)
        h = part[-1]
    return hs[0] if len(hs) == 1 else torch.cat(hs)


def scan_sequential(log_a: Tensor, log_b: Tensor, h0: Tensor, *, mask: Tensor | None = None) -> Tensor:
    """The oracle: the same recurrence one step at a time."""
    log_a, log_b = _masked(log_a, log_b, mask)
    hs, h = [], h0
    for la, lb in zip(log_a, log_b):
        h = torch.exp(la) * h + torch.exp(lb)
        hs.append(h)
    return torch.stack(hs)


@dataclass
class ScanResult:
    """output: (T, B, H), zero on padded steps.  state: h_n (B, H), each sequence's last valid h.
    record: trace letter -> (T, B, H) detached, or None."""

    output: Tensor
    state: Tensor
    record: dict[str, Tensor] | None = None


def run(spec, x: Tensor, h0: Tensor, p: dict[str, Tensor], *, mask: Tensor | None = None,
        mode: str = "parallel", chunk_size: int = CHUNK_SIZE, record: bool = False) -> ScanResult:
    """One layer of a min-RNN (``cells.minrnn``) over a sequence. x: (T, B, D); h0: (B, H);
    mode "parallel" (the scan in log space), "sequential" (``spec.step`` in a loop, the oracle)
    or "traced" (``spec.step`` in torch's scan operator: for graph capture, see above)."""
    u = spec.project(x, p)                                           # (T, B, G·H)
    if mode == "traced":
        if record:
            raise ValueError("record: a trace() records eager runs only, not an exported graph")
        return _traced(spec, u, h0, mask)
    if mode == "fused":
        a, b = spec.coefficients(u)
        if mask is not None:                            # padding: a = 1, b = 0 freeze the state
            a, b = torch.where(mask, a, torch.ones_like(a)), b * mask
        out = LinearRecurrence.apply(a, b, h0)
    elif mode == "sequential":
        hs, h = [], h0
        for t, u_t in enumerate(u):
            h_new, _ = spec.step(u_t, h)
            h = h_new if mask is None else torch.where(mask[t], h_new, h)
            hs.append(h)
        out = torch.stack(hs)
    else:
        log_a, log_b = spec.log_coefficients(u)
        out = scan(log_a, log_b, h0, mask=mask, chunk_size=chunk_size)
    state = out[-1]
    if mask is not None:
        out = out * mask
    rec = None
    if record:
        with torch.no_grad():
            rec = {**spec.gate_values(u.detach()), "h": out.detach()}
            if mask is not None:
                rec = {k: v * mask for k, v in rec.items()}
    return ScanResult(out, state, rec)


def _traced(spec, u: Tensor, h0: Tensor, mask: Tensor | None) -> ScanResult:
    """``spec.step`` as the body of torch's scan over T (carries and outputs fresh tensors,
    as inductor requires: pytorch/pytorch#195977)."""
    xs = {"u": u} if mask is None else {"u": u, "m": mask}

    def step(h, xt):
        h_new, _ = spec.step(xt["u"], h)
        if "m" in xt:                               # padding: the state passes through
            h_new = torch.where(xt["m"], h_new, h)
            return h_new.clone(), h_new * xt["m"]
        return h_new.clone(), h_new.clone()

    final, out = scan_op(step, h0, xs)
    return ScanResult(out, final)


class LinearRecurrence(torch.autograd.Function):
    """h = LinearRecurrence.apply(a, b, h0): h_t = a_t ⊙ h_{t−1} + b_t over (T, B, H), the
    backward by hand (see the module docstring)."""

    @staticmethod
    def forward(a: Tensor, b: Tensor, h0: Tensor) -> Tensor:
        hs = torch.empty_like(b)
        h = h0
        for t in range(b.shape[0]):
            h = torch.addcmul(b[t], a[t], h, out=hs[t])
        return hs

    @staticmethod
    def setup_context(ctx, inputs, output):
        a, _, h0 = inputs
        ctx.save_for_backward(a, h0, output)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g_h: Tensor):
        a, h0, hs = ctx.saved_tensors
        g = g_h.clone()
        for t in range(g.shape[0] - 1, 0, -1):           # g_{t−1} += a_t ⊙ g_t
            g[t - 1].addcmul_(a[t], g[t])
        da = g * torch.cat([h0.unsqueeze(0), hs[:-1]]) if ctx.needs_input_grad[0] else None
        dh0 = a[0] * g[0] if ctx.needs_input_grad[2] else None
        return da, g, dh0
