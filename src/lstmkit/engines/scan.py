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

The fused mode (``ChunkedRecurrence``): the recurrence alone in a loop, one fused multiply-add
per step, with a hand-written backward (no autograd graph over the steps), chunk by chunk of
time: a chunk's a, b (and the readout, QRNN's o ⊙ c) are computed from its rows of u, used,
and dropped; the backward recomputes them chunk by chunk and takes their derivative with
autograd over that chunk alone (as gradient checkpointing does). Saved: u, h0 and the states
c (T, B, H); every other temporary is O(chunk · B · G·H), so peak memory does not grow with
large (T, B, H) temporaries:

    c_t = a_t ⊙ c_{t−1} + b_t;   g_t = ∂L/∂c_t + a_{t+1} ⊙ g_{t+1};
    ∂L/∂b_t = g_t,   ∂L/∂a_t = g_t ⊙ c_{t−1},   ∂L/∂h_0 = a_1 ⊙ g_1

(g_t's carry crosses a chunk boundary as a_{t+1} ⊙ g_{t+1} of the chunk after.) Exact (no
logs, no exps of sums), and on a CPU, where the scan has no idle cores to fill, the fastest:
the loop's work is O(T·B·H), against the input GEMM's O(T·B·D·G·H).

Signed b (QRNN: b = (1 − f) ⊙ z with z = tanh(·) of either sign): the scan is linear in b and
h_0, so c = scan(a, b⁺, h_0) − scan(a, b⁻, 0) with b± = max(±b, 0), both positive, run as one
scan over 2H channels (``scan_signed``).

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


def scan_signed(log_a: Tensor, log_b_pos: Tensor, log_b_neg: Tensor, h0: Tensor, *,
                mask: Tensor | None = None, chunk_size: int = CHUNK_SIZE) -> Tensor:
    """h_t = a_t ⊙ h_{t−1} + b_t with b = b⁺ − b⁻ of either sign, given log b⁺, log b⁻ (``_LOG_ZERO``
    where a part is 0): scan(a, b⁺, h_0) − scan(a, b⁻, 0), as one scan over 2H channels."""
    H = h0.shape[-1]
    both = scan(torch.cat([log_a, log_a], -1), torch.cat([log_b_pos, log_b_neg], -1),
                torch.cat([h0, torch.zeros_like(h0)], -1), mask=mask, chunk_size=chunk_size)
    return both[..., :H] - both[..., H:]


@dataclass
class ScanResult:
    """output: (T, B, H), zero on padded steps.  state: h_n (B, H), each sequence's last valid h.
    record: trace letter -> (T, B, H) detached, or None."""

    output: Tensor
    state: Tensor
    record: dict[str, Tensor] | None = None


def run(spec, x: Tensor, h0: Tensor, p: dict[str, Tensor], *, mask: Tensor | None = None,
        mode: str = "parallel", chunk_size: int = CHUNK_SIZE, record: bool = False) -> ScanResult:
    """One layer of a min-RNN or QRNN (``cells.minrnn``, ``cells.qrnn``) over a sequence.
    x: (T, B, D) (QRNN: (T + window − 1, B, D), the carried inputs first); h0: (B, H);
    mode "parallel" (the scan in log space), "fused" (``ChunkedRecurrence``), "sequential"
    (``spec.step`` in a loop, the oracle) or "traced" (``spec.step`` in torch's scan operator:
    for graph capture, see above). The output is the state c, or ``spec.readout(u, c)`` where
    the spec has one (QRNN: o ⊙ c)."""
    u = spec.project(x, p)                                           # (T, B, G·H)
    readout = getattr(spec, "readout", None)
    if mode == "traced":
        if record:
            raise ValueError("record: a trace() records eager runs only, not an exported graph")
        return _traced(spec, u, h0, mask)
    if mode == "fused":
        out, state = ChunkedRecurrence.apply(spec, u, h0, mask, chunk_size)
        cs = None
    else:
        if mode == "sequential":
            cs = _step_loop(spec, u, h0, mask)
        else:
            logs = spec.log_coefficients(u)
            run_scan = scan_signed if len(logs) == 3 else scan
            cs = run_scan(*logs, h0, mask=mask, chunk_size=chunk_size)
        state = cs[-1]
        out = cs if readout is None else readout(u, cs)
        if mask is not None:
            out = out * mask
    rec = None
    if record:
        with torch.no_grad():
            if readout is not None and cs is None:        # the fused run keeps c inside: rerun the loop
                cs = _step_loop(spec, u, h0, mask)
            c_rec = {"c": cs.detach()} if readout is not None else {}
            rec = {**spec.gate_values(u.detach()), **c_rec, "h": out.detach()}
            if mask is not None:
                rec = {k: v * mask for k, v in rec.items()}
    return ScanResult(out, state, rec)


def _step_loop(spec, u: Tensor, h0: Tensor, mask: Tensor | None) -> Tensor:
    """The oracle: ``spec.step`` one step at a time; the state frozen where mask is False. -> c (T, B, H)."""
    cs, h = [], h0
    for t, u_t in enumerate(u):
        h_new, _ = spec.step(u_t, h)
        h = h_new if mask is None else torch.where(mask[t], h_new, h)
        cs.append(h)
    return torch.stack(cs)


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
    if getattr(spec, "readout", None) is not None:
        out = spec.readout(u, out) if mask is None else spec.readout(u, out) * mask
    return ScanResult(out, final)


class ChunkedRecurrence(torch.autograd.Function):
    """(y, c_T) = ChunkedRecurrence.apply(spec, u, h0, mask, chunk_size):
    c_t = a_t ⊙ c_{t−1} + b_t with (a, b) from ``spec.coefficient_parts(u_t)``, y = c (or
    ``spec.readout(u, c)``), zero where mask is False (there a = 1, b = 0: the state frozen);
    chunk by chunk of ``chunk_size`` steps, the backward by hand (see the module docstring;
    the coefficients' own derivative is ``spec.coefficients_backward``, checked against
    autograd of ``spec.coefficients``). u: (T, B, G·H); h0: (B, H); mask: (T, B, 1) bool or
    None. Saved: u, h0, c (T, B, H)."""

    @staticmethod
    def forward(ctx, spec, u: Tensor, h0: Tensor, mask: Tensor | None, chunk_size: int):
        T, n = u.shape[0], chunk_size
        readout = getattr(spec, "readout", None)
        cs = u.new_empty(T, *h0.shape)
        y = cs if readout is None and mask is None else torch.empty_like(cs)
        h = h0
        for s in range(0, T, n):
            m = None if mask is None else mask[s:s + n]
            parts = spec.coefficient_parts(u[s:s + n])
            a, b = parts["a"], parts["b"]
            if m is not None:
                a, b = a.masked_fill(~m, 1.0), b * m
            for t in range(a.shape[0]):
                h = torch.addcmul(b[t], a[t], h, out=cs[s + t])
            if y is not cs:
                y_c = cs[s:s + n] if readout is None else readout(u[s:s + n], cs[s:s + n])
                torch.mul(y_c, m, out=y[s:s + n]) if m is not None else y[s:s + n].copy_(y_c)
        ctx.spec, ctx.mask, ctx.chunk_size = spec, mask, n
        ctx.save_for_backward(u, h0, cs)
        return y, cs[-1].clone()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dy: Tensor, dc_T: Tensor):
        u, h0, cs = ctx.saved_tensors
        spec, mask, n = ctx.spec, ctx.mask, ctx.chunk_size
        readout = getattr(spec, "readout", None)
        du = torch.empty_like(u)
        carry = dc_T                                   # ∂L/∂c_{e−1} from the steps after the chunk
        for s in reversed(range(0, u.shape[0], n)):
            e = min(s + n, u.shape[0])
            m = None if mask is None else mask[s:e]
            dy_c = dy[s:e] if m is None else dy[s:e] * m
            if readout is not None:                    # y = readout(u, c): its rows of du, and ∂L/∂c
                g = spec.readout_backward(u[s:e], cs[s:e], dy_c, du[s:e])
            else:
                g = dy_c.clone()
            parts = spec.coefficient_parts(u[s:e])
            a = parts["a"] if m is None else parts["a"].masked_fill(~m, 1.0)
            g[-1] += carry
            for t in range(e - s - 1, 0, -1):          # g_{t−1} += a_t ⊙ g_t
                g[t - 1].addcmul_(a[t], g[t])
            c_prev = torch.cat([(h0 if s == 0 else cs[s - 1]).unsqueeze(0), cs[s:e - 1]])
            da, db = g * c_prev, g
            if m is not None:                          # a = 1, b = 0 on padding: no gradient there
                da, db = da * m, db * m
            spec.coefficients_backward(parts, da, db, du[s:e])
            carry = a[0] * g[0]
        return None, du, carry, None, None
