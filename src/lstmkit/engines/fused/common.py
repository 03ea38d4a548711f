"""Pieces shared by the fused families (a leaf: it imports no family module).

State slots and their views, zoneout/padding settling and its backward, layer norm forward
and backward, MKL-packed weights and the input GEMM (``input_terms``), and the helpers that
hand tensors to the C++ loops.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from ...cells.common import LN_EPS
from . import build


# ---- state buffers ----------------------------------------------------------------------
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


def at(v, t: int):
    """Step t of a zoneout keep: a (T, B, ·) mask's row, or the rate itself."""
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


# ---- activations and layer norm ---------------------------------------------------------
def tanh_(x: Tensor) -> Tensor:
    """tanh in place: torch.tanh off the CPU. On the CPU sign(x)·(−m/(m + 2)) with
    m = e^{−2|x|} − 1 by torch.expm1, in float64 and rounded once (as accurate as torch.tanh):
    torch.tanh on small CPU tensors goes through MKL VML's own thread pool, which costs far
    more than the arithmetic on a busy machine, while expm1 stays in ATen's serial loop
    (docs/fused.md has the figures). Not 2σ(2x) − 1: its error is absolute (up to 1.8e-7 in
    float32), so many ulp near 0, where tanh(c') and the g gate mostly are, and it put float32
    states about three times as far from float64 as the reference engine's
    (tests/engines/fused/test_float32_accuracy.py). The C++ loops: common.h tanh_v."""
    return tanh(x, out=x)


def tanh(x: Tensor, out: Tensor | None = None) -> Tensor:
    """tanh(x) into a new tensor or ``out`` (see ``tanh_``)."""
    if x.device.type != "cpu":
        return torch.tanh(x, out=out)
    m = x.abs().double().mul_(-2).expm1_()          # a copy: x may be float64 already
    return torch.copysign(m.div_(m + 2), x, out=out if out is not None else torch.empty_like(x))


def ln_forward(y: Tensor, n_gates: int, eps: float):
    """Per-gate LN without affine over each block of H: (ŷ, μ, rstd), ŷ = (y − μ)·rstd."""
    yb = y.view(y.shape[0], n_gates, -1)
    yh, mean, rstd = torch.native_layer_norm(yb, yb.shape[-1:], None, None, eps)
    return yh.view(y.shape), mean, rstd


def ln_backward(dyh: Tensor, y: Tensor, mean: Tensor, rstd: Tensor, n_gates: int) -> Tensor:
    """dy = rstd ⊙ (dŷ − mean(dŷ) − ŷ ⊙ mean(dŷ ⊙ ŷ)) per gate block (Ba et al. 2016,
    arXiv 1607.06450), by torch's own LN backward kernel, as autograd does for the reference."""
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


# ---- sums over the whole sequence --------------------------------------------------------
def outer_sum(dY: Tensor, X: Tensor, reverse: bool, rows_per_gemm: int = 32) -> Tensor:
    """Σ_t dY_tᵀ X_t (M, N) for dY (T, B, M), X (T, B, N) in time order: the weight gradient
    of a per-step GEMM (dW_hh = Σ_t dY_tᵀ h̃_t), as GEMMs over runs of whole steps of about
    ``rows_per_gemm`` rows (one step from B = 32 up), added up in the order the backward
    visits them (last step first; first step first for a ``reverse`` layer).

    Not one GEMM over all T·B rows: a GEMM sums each entry's products in one float32 run,
    first row first, whose rounding grows with its length and is worst where the gradient
    grows back through time; at T 100, B 4, H 256 that put dW_hh 1.7 times as far (RMS) from
    float64 as the reference engine's one GEMM per step summed by autograd as the backward
    goes. Runs of 32 rows in that order err as little (tests/engines/fused/test_float32_accuracy.py).
    """
    T, B = dY.shape[:2]
    c = max(1, -(-rows_per_gemm // B))               # steps per GEMM
    starts = range(0, T, c)
    out = None
    for s in (starts if reverse else reversed(starts)):
        a, b = dY[s:s + c].reshape(-1, dY.shape[-1]), X[s:s + c].reshape(-1, X.shape[-1])
        out = a.t() @ b if out is None else out.addmm_(a.t(), b)
    return out


# ---- handing tensors to the C++ loops ---------------------------------------------------
def contiguous(**args) -> dict:
    """Keyword arguments for a C++ loop, every tensor contiguous (the loops read raw memory;
    a no-op for most)."""
    return {k: t.contiguous() if isinstance(t, Tensor) else t for k, t in args.items()}


def keep_tensor(k, like: Tensor):
    """A zoneout keep as the C++ loops take it: a tensor (a rate becomes a 0-dim one)."""
    return k if k is None or isinstance(k, Tensor) else like.new_tensor(float(k))


def absent_as_none(result: NamedTuple, *fields: str) -> NamedTuple:
    """The C++ loops return empty tensors for the absent ones: None in those ``fields``."""
    return result._replace(**{f: None if getattr(result, f).numel() == 0 else getattr(result, f)
                              for f in fields})


def save(ctx, **tensors: Tensor | None) -> None:
    """ctx.save_for_backward by name; ``saved(ctx)`` gives them back."""
    ctx.saved_names = tuple(tensors)
    ctx.save_for_backward(*tensors.values())


def saved(ctx) -> dict[str, Tensor | None]:
    return dict(zip(ctx.saved_names, ctx.saved_tensors))


PACK_MIN_ROWS = 512               # uses · rows below which mm is faster than packing (see packed)


def packed(w: Tensor | None, rows: int, uses: int = 1) -> Tensor | None:
    """w (N, K) in MKL's packed layout for ``uses`` GEMMs x wᵀ with x of ``rows`` rows each
    (a time loop: rows = B, uses = T), or None: where that GEMM is not available (not
    float32, off the CPU, a torch built without MKL), and where the packing would not pay
    for itself (``uses·rows < PACK_MIN_ROWS``). The C++ loops and ``linear`` then use mm.

    Packing reads and rewrites all of w at every call (a cache keyed by the version counter
    went stale under ``p.data`` writes, as PyTorch's word_language_model makes them), and
    at few rows that costs more than it saves: on a 2-core AMD EPYC, 1 thread (docs/fused.md,
    "Packed weights"), pack + T packed GEMMs against T mm at H 512 was 9.3× slower at T 1, B 1
    (the streaming step), 2.3× at T 1, B 32, 1.17× at T 8, B 32, and 0.93× at T 16, B 32."""
    if (w is None or uses * rows < PACK_MIN_ROWS or w.dtype != torch.float32 or w.device.type != "cpu"
            or not torch.backends.mkl.is_available()):
        return None
    return _pack(w, rows)


def _pack(w: Tensor, batch: int) -> Tensor | None:
    try:
        return torch.ops.mkl._mkl_reorder_linear_weight(w.detach().contiguous(), batch)
    except (AttributeError, RuntimeError):
        return None


def call(fn: type[torch.autograd.Function], grad: bool, *args):
    """``fn.apply(*args)`` where a backward may follow (``grad``), else ``fn.forward(*args)``
    alone: without a backward, apply's argument binding (``inspect.signature``) and
    ``setup_context`` are pure overhead, the larger part of a streaming step (T = 1)."""
    return fn.apply(*args) if grad else fn.forward(*args)


# ---- the input terms: one GEMM for the whole sequence ------------------------------------
class PackedLinear(torch.autograd.Function):
    """y = x Wᵀ through MKL's packed GEMM; backward dx = dy W (packed too), dW = dyᵀ x."""

    @staticmethod
    def forward(x: Tensor, w: Tensor, pw: Tensor) -> Tensor:
        return torch.ops.mkl._mkl_linear(x, pw, w, None, x.shape[0])

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, w, _ = inputs
        ctx.save_for_backward(x, w)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dy: Tensor):
        x, w = ctx.saved_tensors
        dx = dw = None
        if ctx.needs_input_grad[0]:
            wt = w.t().contiguous()
            pwt = packed(wt, dy.shape[0])
            dx = dy @ w if pwt is None else torch.ops.mkl._mkl_linear(dy.contiguous(), pwt, wt, None, dy.shape[0])
        if ctx.needs_input_grad[1]:
            dw = dy.t() @ x
        return dx, dw, None


def linear(x2: Tensor, w: Tensor) -> Tensor:
    """x2 Wᵀ for the whole sequence's rows (T·B, D): MKL's packed GEMM where ``packed``
    gives one (float32, enough rows), else mm."""
    pw = packed(w, x2.shape[0])
    if pw is None:
        return x2 @ w.t()
    return call(PackedLinear, torch.is_grad_enabled() and (x2.requires_grad or w.requires_grad),
                x2.contiguous(), w, pw)


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
    ops = build.ops(y.device)
    if ops is not None:
        return input_ln(y, gamma, b, n_gates, ops).view(T, B, -1)
    yb = y.view(T * B, n_gates, -1)
    y = torch.nn.functional.layer_norm(yb, yb.shape[-1:], eps=LN_EPS).view(T * B, -1) * gamma
    return (y if b is None else y + b).view(T, B, -1)


def input_ln(y: Tensor, gamma: Tensor, b: Tensor | None, n_gates: int, ops) -> Tensor:
    """u = LN(y)·γ + b per gate block of H, by the C++ op (``InputLN``)."""
    grad = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (y, gamma, b))
    return InputLNOutputs(*call(InputLN, grad, y, gamma, b, n_gates, ops)).u


class InputLNOutputs(NamedTuple):
    u: Tensor        # (N, G·H) LN(y)·γ + b
    mu: Tensor       # (N, G) block means       (saved; not differentiable)
    rstd: Tensor     # (N, G) block 1/σ         (saved; not differentiable)


class InputLN(torch.autograd.Function):
    """u = LN(y)·γ + b per gate block by input_ln.cpp: one pass forward and one backward,
    saving y and the block statistics (μ, rstd) only, where autograd makes five passes and
    saves ŷ as well. The autograd lines of ``input_terms`` are its twin (without the C++ ops)."""

    @staticmethod
    def forward(y: Tensor, gamma: Tensor, b: Tensor | None, n_gates: int, ops) -> InputLNOutputs:
        return InputLNOutputs(*ops.input_ln_forward(y, gamma, b, n_gates, LN_EPS))

    @staticmethod
    def setup_context(ctx, inputs, output):
        y, gamma, _, _, ops = inputs
        out = InputLNOutputs(*output)
        ctx.mark_non_differentiable(out.mu, out.rstd)
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(y, out.mu, out.rstd, gamma)
        ctx.ops = ops

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, du: Tensor | None, _dmu, _drstd):
        if du is None:                        # u unused
            return None, None, None, None, None
        y, mu, rstd, gamma = ctx.saved_tensors
        dy, dgamma, db = ctx.ops.input_ln_backward(du.contiguous(), y, mu, rstd, gamma,
                                                   *ctx.needs_input_grad[:3])
        return dy, dgamma, db, None, None
