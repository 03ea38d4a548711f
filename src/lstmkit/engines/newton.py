"""A diagonal-recurrence cell (``cells.diagonal``) over a whole sequence, solved in parallel over
time by Newton's method: ParaRNN (Danieli et al. 2025, arXiv 2510.21450), after DEER
(Lim et al. 2024, arXiv 2309.12252).

The trajectory s = (s_0 … s_{T−1}), s_t = (h_t, c_t) stacked as (T, K, B, H), solves the T
equations s_t = f(s_{t−1}, u_t), with s_{−1} the initial state. Newton iteration k linearises f
around the current guess s^k:

    s_t^{k+1} = f(s_{t−1}^k, u_t) + J_t^k (s_{t−1}^{k+1} − s_{t−1}^k),   J_t = ∂f/∂s_{t−1}

so the change δ_t = s_t^{k+1} − s_t^k obeys a *linear* recurrence, run by a parallel scan:

    δ_t = J_t δ_{t−1} + r_t,   r_t = f(s_{t−1}^k, u_t) − s_t^k,   δ_{−1} = 0

With a diagonal recurrence J_t is one K × K block per unit (K = 2 for the LSTM's (h, c),
1 for the GRU), stored as (T, K, K, B, H), written out by the cell (``spec.jacobian``); the
scan composes blocks with a few pointwise products. The guess is f(0, u_t) for every t (each step from a zero state; ParaRNN's choice).
It stops when max |δ| ≤ tol, or after max_iters; an iteration that is not finite (unstable
dynamics, or a NaN/inf in the input) hands the layer to the step loop instead. After k
iterations the first k steps are exact (step t is exact once step t − 1 was, and δ_{−1} = 0),
so T iterations give the sequential answer from any guess; the paper's cells need about three.

The scan (``linear_scan``): odd–even reduction. Pairs (2i, 2i+1) are composed into one map
(A_{2i+1} A_{2i}, A_{2i+1} b_{2i} + b_{2i+1}), the half-length problem is solved recursively
(the odd states), and the even states follow in one step each: O(T) work, O(log T) depth.
(The log-space scan of ``engines.scan`` needs positive coefficients; J and r have any sign.)

The backward (implicit function theorem): at the solution the loss's total derivative with
respect to s_t is the adjoint

    λ_t = g_t + J_{t+1}ᵀ λ_{t+1},   λ_{T−1} = g_{T−1}     (g_t = ∂L/∂s_t, direct)

a reverse linear recurrence, solved by the same scan on reversed time with transposed blocks.
Then ∂L/∂θ = Σ_t λ_tᵀ ∂f(s_{t−1}, u_t)/∂θ for every parameter θ, the input and the initial
state: one parallel evaluation y = f(s_{t−1}, u_t) at the detached solution (s_{−1} attached)
carries the autograd graph, and ``_Adjoint`` (identity forward) turns the incoming g into λ.
Saved for the backward: the Jacobian blocks at the solution (T·K²·B·H) and the graph of that
one parallel step. Double backward is not supported.

``mode="sequential"``: ``spec.step`` in a Python loop with autograd through it, the oracle.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

MODES = ("auto", "newton", "sequential")
_TOL = {torch.float64: 1e-10, torch.float32: 1e-5}      # others (float16, bfloat16): 1e-2


def default_tol(dtype: torch.dtype) -> float:
    """The stopping tolerance on max |δ| when none is given. Newton converges quadratically
    near the solution, so the error left after the last change δ is about |δ|²."""
    return _TOL.get(dtype, 1e-2)


def _mm(A2: Tensor, A1: Tensor) -> Tensor:
    """Per-unit block product A2 A1: (…, K, K, B, H) × (…, K, K, B, H)."""
    return (A2.unsqueeze(-3) * A1.unsqueeze(-5)).sum(-4)


def _mv(A: Tensor, b: Tensor) -> Tensor:
    """Per-unit block times vector A b: (…, K, K, B, H) × (…, K, B, H)."""
    return (A * b.unsqueeze(-4)).sum(-3)


def linear_scan(A: Tensor, b: Tensor) -> Tensor:
    """s_t = A_t s_{t−1} + b_t for t = 0 … T−1 from s_{−1} = 0, by odd–even reduction.
    A: (T, K, K, B, H) per-unit blocks; b: (T, K, B, H). -> s (T, K, B, H)."""
    T = b.shape[0]
    if T == 1:
        return b.clone()
    n = T // 2
    A_e, A_o = A[0:2 * n:2], A[1:2 * n:2]
    s_odd = linear_scan(_mm(A_o, A_e), _mv(A_o, b[0:2 * n:2]) + b[1:2 * n:2])   # s_1, s_3, …
    s = torch.empty_like(b)
    s[1::2] = s_odd
    s[0] = b[0]
    s[2::2] = b[2::2] + _mv(A[2::2], s_odd[:(T - 1) // 2])                      # s_2i = A s_2i−1 + b
    return s


def linear_scan_sequential(A: Tensor, b: Tensor) -> Tensor:
    """The oracle of ``linear_scan``: the same recurrence one step at a time."""
    s, out = torch.zeros_like(b[0]), []
    for A_t, b_t in zip(A, b):
        s = _mv(A_t, s) + b_t
        out.append(s)
    return torch.stack(out)


def adjoint(J: Tensor, g: Tensor) -> Tensor:
    """λ_t = g_t + J_{t+1}ᵀ λ_{t+1} (λ_{T−1} = g_{T−1}): ``linear_scan`` on reversed time with
    the transposed blocks (entry τ ≥ 1 of the reversed sequence multiplies by J_{T−τ}ᵀ)."""
    Jt = J.transpose(-4, -3)
    A = torch.cat([Jt[1:], torch.zeros_like(Jt[:1])]).flip(0)
    return linear_scan(A, g.flip(0)).flip(0)


@dataclass
class NewtonStats:
    """iterations: Newton iterations run.  change: max |s^{k+1} − s^k| of the last one.
    fallback: an iteration was not finite (unstable dynamics, or a non-finite input), so the
    step loop gave the solution instead."""

    iterations: int
    change: float
    fallback: bool = False


def solve(fn, guess: Tensor, s0: Tensor, tol: float, max_iters: int) -> tuple[Tensor, NewtonStats]:
    """Newton's method for s_t = f(s_{t−1}), s_{−1} = s0 (K, B, H), from ``guess`` (T, K, B, H);
    fn(prev) -> (f(prev), J) on all T steps at once. Stops at max |δ| ≤ tol, after max_iters,
    or after T iterations (exact). -> (s, stats)."""
    s, T = guess, guess.shape[0]
    k, change = 0, math.inf
    while k < max_iters:
        prev = torch.cat([s0.unsqueeze(0), s[:-1]])
        value, J = fn(prev)
        delta = linear_scan(J, value - s)
        s = s + delta
        k += 1
        change = delta.abs().max().item()
        if change <= tol or k >= T or not math.isfinite(change):     # converged, exact, or diverged
            break
    return s, NewtonStats(k, change)


def _loop(spec, u: Tensor, s0: tuple[Tensor, ...], p: dict[str, Tensor]) -> Tensor:
    """``spec.step`` one step at a time (autograd through it where enabled): s (T, K, B, H)."""
    s, out = s0, []
    for u_t in u:
        s, _ = spec.step(u_t, s, p)
        out.append(torch.stack(s))
    return torch.stack(out)


class _Adjoint(torch.autograd.Function):
    """y = _Adjoint.apply(y, J): y unchanged forward; backward g -> λ (``adjoint``).
    Saved: J (T, K, K, B, H), the Jacobian blocks at the solution."""

    @staticmethod
    def forward(y: Tensor, J: Tensor) -> Tensor:
        return y.clone()

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(inputs[1])

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g: Tensor):
        (J,) = ctx.saved_tensors
        return adjoint(J, g), None


@dataclass
class NewtonResult:
    """output: h_t (T, B, H).  state: the final state, one (B, H) tensor per component (h[, c]).
    stats: the solver's (None for the sequential mode)."""

    output: Tensor
    state: tuple[Tensor, ...]
    stats: NewtonStats | None = None


def run(spec, x: Tensor, s0: tuple[Tensor, ...], p: dict[str, Tensor], *, mode: str = "newton",
        tol: float | None = None, max_iters: int | None = None) -> NewtonResult:
    """One layer of a diagonal cell over a sequence. x: (T, B, D); s0: K tensors (B, H);
    mode "newton" (see the module docstring) or "sequential" (the step loop: the oracle)."""
    u = spec.project(x, p)                                            # (T, B, G·H)
    if mode == "sequential":
        s = _loop(spec, u, s0, p)
        return NewtonResult(s[:, 0], tuple(s[-1].unbind(0)))
    T = u.shape[0]
    tol = default_tol(u.dtype) if tol is None else tol
    max_iters = T if max_iters is None else max_iters
    u_d, p_d = u.detach(), {k: v.detach() for k, v in p.items()}

    def fn(prev: Tensor) -> tuple[Tensor, Tensor]:                  # (T, K, B, H) -> value, J
        value, J = spec.jacobian(u_d, prev.unbind(-3), p_d)
        return torch.stack(value, -3), J

    s0 = torch.stack(s0)                                              # (K, B, H)
    with torch.no_grad():
        zeros = s0.new_zeros(T, *s0.shape).unbind(-3)                 # the guess: f(0, u_t)
        guess = torch.stack(spec.step(u_d, zeros, p_d)[0], -3)
        s, stats = solve(fn, guess, s0.detach(), tol, max_iters)
        if not math.isfinite(stats.change):
            s, stats.fallback = _loop(spec, u_d, tuple(s0.detach().unbind(0)), p_d), True
    if torch.is_grad_enabled() and (u.requires_grad or s0.requires_grad
                                    or any(t.requires_grad for t in p.values())):
        prev = torch.cat([s0.unsqueeze(0), s[:-1]])                   # s0 attached, s detached
        y = torch.stack(spec.step(u, prev.unbind(-3), p)[0], -3)
        with torch.no_grad():
            _, J = fn(prev.detach())
        s = _Adjoint.apply(y, J)
    return NewtonResult(s[:, 0], tuple(s[-1].unbind(0)), stats)


__all__ = ["MODES", "NewtonResult", "NewtonStats", "adjoint", "default_tol", "linear_scan",
           "linear_scan_sequential", "run", "solve"]
