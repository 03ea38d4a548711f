"""The fused engine: hand-written BPTT with big GEMMs, the CPU fast path.

Same ``run`` signature and results as ``engines.reference`` (the oracle it is tested
against). Per layer-direction:

    forward   u = x W_ihᵀ + b_ih (+ b_hh)     one GEMM for all T steps (autograd, outside the loop)
              per step: one recurrent GEMM into the gate buffer + in-place pointwise update
    backward  per step (time reversed): pointwise gate derivatives, one GEMM dh̃ = dy W_hh
              at the end: dW_hh = dYᵀ H̃ (one large GEMM); dW_ih, dx, db from autograd on du

What the forward saves for the backward (T steps, B batch, H hidden, R = out size, G gates):

    LSTM  A (T, B, G·H) activated gates (i, f, g, o of spec.gates), Hs (T+1, B, R) and
          Cs (T+1, B, H) the states in time order (one slot for the initial state);
          Cn (T, B, H) the pre-zoneout c' (zoneout only); M (T, B, H) m = o⊙tanh(c')
          (projection only); Yh (T, B, G·H) normalised recurrent terms and their rstd
          (T, B, G, 1) (layer norm only); D (T, B, H) the depth gate and c_low (depth gate).
          tanh(c') and the LN(c') statistics are recomputed in the backward (one cheap
          pass) instead of stored, to keep the training step's peak memory low.
    GRU   A (T, B, 3H) r, z, n; Hs (T+1, B, H); Vn (T, B, H) the reset-after term
          W_hn h̃ + b_hn (reset_after) or Q (T, B, H) = r ⊙ h̃ (reset_before);
          Yh, rstd as above (layer norm only). With no backward to come (no_grad, nothing
          requiring grad) the C++ loop keeps only the last step of A and Vn.
    RNN   Hs (T+1, B, H) only: the derivative of tanh/relu is read from h'.

The derivations are in docs/derivations/lstm.md, gru.md and rnn.md, in the symbols of
the code (di, df, dg, do_, dc, dh, ...). The output, the final state and the cell
sequence are views of the saved state buffers, so nothing is copied twice.
"""
from __future__ import annotations

import torch
from torch import Tensor

from . import EngineResult, Noise, _ext
from ..cells.common import LN_EPS


def supports(spec) -> bool:
    """Every variant of the three families (see module docstring) runs fused."""
    return getattr(spec, "family", None) in ("lstm", "gru", "rnn")


def run(spec, x: Tensor, state: tuple[Tensor, ...], p: dict[str, Tensor], *,
        mask: Tensor | None = None, reverse: bool = False, noise: Noise = Noise(),
        c_low: Tensor | None = None, want_cells: bool = False, record: bool = False) -> EngineResult:
    from ._fused_gru import run_gru, run_rnn
    from ._fused_lstm import run_lstm
    fn = {"lstm": run_lstm, "gru": run_gru, "rnn": run_rnn}[spec.family]
    return fn(spec, x, state, p, mask=mask, reverse=reverse, noise=noise, c_low=c_low,
              want_cells=want_cells, record=record)


# ---- shared by the families -------------------------------------------------------------
def slots(T: int, reverse: bool):
    """Time order and the state-buffer slots: step t reads slot prev(t), writes slot new(t).

    The buffers hold T+1 states in time order, the initial one at 0 (forward) or T
    (reverse), so that the per-step outputs are the view [1:] or [:T] without a flip.
    """
    if reverse:
        return range(T - 1, -1, -1), (lambda t: t + 1), (lambda t: t), T
    return range(T), (lambda t: t), (lambda t: t + 1), 0


def prev_view(S: Tensor, reverse: bool) -> Tensor:
    """(T, B, ·): the state each step started from, in time order."""
    return S[1:] if reverse else S[:-1]


def new_view(S: Tensor, reverse: bool) -> Tensor:
    """(T, B, ·): the state after each step, in time order."""
    return S[:-1] if reverse else S[1:]


def tanh_(x: Tensor) -> Tensor:
    """tanh in place as 2σ(2x) − 1. torch.tanh on small float tensors goes through MKL VML's
    own thread pool; on this shared 2-core machine that cost 31 ms per (32, 256) call at 2
    threads (4 µs at 1 thread), while σ stays in ATen's serial loop (6 µs)."""
    return x.mul_(2).sigmoid_().mul_(2).sub_(1)


def tanh(x: Tensor, out: Tensor | None = None) -> Tensor:
    """tanh(x) = 2σ(2x) − 1 into a new tensor or ``out`` (see ``tanh_``)."""
    return (torch.mul(x, 2) if out is None else torch.mul(x, 2, out=out)).sigmoid_().mul_(2).sub_(1)


def at(v, t: int):
    return v[t] if isinstance(v, Tensor) else v


def settle(prev: Tensor, new: Tensor, keep, m: Tensor | None, out: Tensor) -> Tensor:
    """out = where(m, keep⊙prev + (1 − keep)⊙new, prev): zoneout, then padding."""
    if keep is not None:
        new = keep * prev + (1 - keep) * new
    if m is not None:
        new = torch.where(m, new, prev)
    return out.copy_(new)


def unsettle(d: Tensor, keep, mf: Tensor | None):
    """Backward of ``settle``: d (grad of the settled state) -> (d new, d prev or None)."""
    d_prev = None
    if mf is not None:
        d_prev = d * (1 - mf)
        d = d * mf
    if keep is not None:
        d_prev = keep * d if d_prev is None else d_prev + keep * d
        d = (1 - keep) * d
    return d, d_prev


def ln_forward(y: Tensor, n_gates: int, eps: float):
    """Per-gate LN without affine over each block of H: (ŷ, μ, rstd), ŷ = (y − μ)·rstd."""
    yb = y.view(y.shape[0], n_gates, -1)
    yh, mean, rstd = torch.native_layer_norm(yb, yb.shape[-1:], None, None, eps)
    return yh.view(y.shape), mean, rstd


def ln_backward(dyh: Tensor, y: Tensor, mean: Tensor, rstd: Tensor, n_gates: int) -> Tensor:
    """dy = rstd ⊙ (dŷ − mean(dŷ) − ŷ ⊙ mean(dŷ ⊙ ŷ)) per gate block (Ba et al. 2016),
    by torch's own LN backward kernel, as autograd does for the reference engine."""
    B = dyh.shape[0]
    yb = y.reshape(B, n_gates, -1)
    dy = torch.ops.aten.native_layer_norm_backward(dyh.reshape(B, n_gates, -1), yb, yb.shape[-1:],
                                                   mean.contiguous(), rstd.contiguous(), None, None,
                                                   [True, False, False])[0]
    return dy.view(B, -1)


def ln_normalised(Y: Tensor, mean: Tensor, rstd: Tensor) -> Tensor:
    """Ŷ (T, B, G·H) from the saved raw terms Y and their (T, B, G, 1) statistics."""
    T, B, GH = Y.shape
    return ((Y.view(T, B, mean.shape[2], -1) - mean) * rstd).view(T, B, GH)


class _PackedLinear(torch.autograd.Function):
    """y = x Wᵀ through MKL's packed GEMM; backward dx = dy W (packed too), dW = dyᵀ x."""

    @staticmethod
    def forward(ctx, x: Tensor, w: Tensor, pw: Tensor) -> Tensor:
        ctx.save_for_backward(x, w)
        return torch.ops.mkl._mkl_linear(x, pw, w, None, x.shape[0])

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dy: Tensor):
        x, w = ctx.saved_tensors
        dx = dw = None
        if ctx.needs_input_grad[0]:
            wt = w.t().contiguous()
            pwt = _ext.packed(wt, dy.shape[0])
            dx = dy @ w if pwt is None else torch.ops.mkl._mkl_linear(dy.contiguous(), pwt, wt, None, dy.shape[0])
        if ctx.needs_input_grad[1]:
            dw = dy.t() @ x
        return dx, dw, None


def linear(x2: Tensor, w: Tensor) -> Tensor:
    """x2 Wᵀ for the whole sequence's rows (T·B, D): MKL's packed GEMM where available
    (float32; about 20 % faster than mm at these shapes), else mm."""
    pw = _ext.packed(w, x2.shape[0])
    return x2 @ w.t() if pw is None else _PackedLinear.apply(x2.contiguous(), w, pw)


def input_terms(x: Tensor, w: Tensor, b: Tensor | None, gamma: Tensor | None, n_gates: int,
                extra_bias: Tensor | None = None) -> Tensor:
    """u = LN(x Wᵀ)·γ + b (+ extra_bias) for the whole sequence, one GEMM (autograd).

    The recurrent bias b_hh is folded in here where it only adds, so that autograd gives
    db_hh = Σ du with no per-step work.
    """
    T, B, D = x.shape
    if b is not None and extra_bias is not None:
        b = b + extra_bias
    elif b is None:
        b = extra_bias
    x2 = x.reshape(T * B, D)
    if gamma is None:
        y = torch.addmm(b, x2, w.t()) if b is not None else linear(x2, w)
        return y.view(T, B, -1)
    y = linear(x2, w)
    ops = _ext.ops(y.device)
    if ops is not None:
        return _InputLN.apply(y, gamma, b, n_gates, ops).view(T, B, -1)
    yb = y.view(T * B, n_gates, -1)
    y = torch.nn.functional.layer_norm(yb, yb.shape[-1:], eps=LN_EPS).view(T * B, -1) * gamma
    return (y if b is None else y + b).view(T, B, -1)


class _InputLN(torch.autograd.Function):
    """u = LN(y)·γ + b per gate block by csrc/input_ln.cpp: one pass forward and one
    backward, saving y and the block statistics (μ, rstd) only, where autograd makes five
    passes and saves ŷ as well. The autograd lines above it are its twin (the fallback)."""

    @staticmethod
    def forward(ctx, y: Tensor, gamma: Tensor, b: Tensor | None, n_gates: int, ops) -> Tensor:
        u, mu, rstd = ops.input_ln_forward(y, gamma, b, n_gates, LN_EPS)
        ctx.save_for_backward(y, mu, rstd, gamma)
        ctx.ops = ops
        return u

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, du: Tensor):
        y, mu, rstd, gamma = ctx.saved_tensors
        dy, dgamma, db = ctx.ops.input_ln_backward(du.contiguous(), y, mu, rstd, gamma,
                                                   *ctx.needs_input_grad[:3])
        return dy, dgamma, db, None, None

