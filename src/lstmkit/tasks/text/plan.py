"""Defaults that fit the data and the budget: the settings a text run takes when the user
does not give them, chosen from the training text's size, the budget and, for a time
budget, the speed this machine trains at right now.

The rules and the measurements that chose them are in docs/language-model.md ("Defaults");
every choice is printed at the start of a run and recorded in config.json ("plan").

- Passes over the text decide the regularisation: a model that sees its text many times
  memorises it unless dropout stops it (Zaremba et al. 2014, arXiv 1409.2329; Merity et
  al. 2017, arXiv 1708.02182), and a model that sees it once gains nothing from dropout.
- The speed decides the size, when the budget is time: a model that cannot see
  ``MIN_TOKENS`` tokens in the budget at this speed is made smaller (each halving of H is
  about 3x faster on the CPU), down to H = 128, and the run says so (with a warning and the
  budget that would do, when even H = 128 falls short).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

HIDDEN = 512                  # H when the budget allows it
MIN_HIDDEN = 128
MIN_TOKENS = 2_000_000        # tokens a time-budgeted run should see, else a smaller model
# a run trains at about half the probe's rate (the probe times forward + backward alone; a
# run also steps the optimizer, evaluates, checkpoints): measured 15.3 k/s against 28.6 k/s
RUN_SHARE = 0.5
LR = 3e-3
BATCH, BPTT = 32, 64
# passes over the training text -> dropout (measured: docs/language-model.md, "Defaults")
DROPOUT_BY_PASSES = ((4.0, 0.0), (10.0, 0.1), (20.0, 0.2), (float("inf"), 0.3))


@dataclass
class Plan:
    """The chosen settings and, for each, why (``reasons``: one line each)."""

    hidden: int = HIDDEN
    dropout: float = 0.0
    lr: float = LR
    batch_size: int = BATCH
    bptt: int = BPTT
    expected_tokens: int = 0
    passes: float = 0.0
    tokens_per_s: float = 0.0
    reasons: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return asdict(self)


def dropout_for(passes: float) -> float:
    return next(p for limit, p in DROPOUT_BY_PASSES if passes <= limit)


def plan(train_tokens: int, *, steps: int | None, minutes: float | None,
         rate: dict[int, float] | None = None, given: dict | None = None) -> Plan:
    """Choose the settings not in ``given`` (name -> value the user set).

    train_tokens: size of the training text.  steps / minutes: the budget (steps wins
    when both are set, as the loop's budget ends at whichever comes first).
    rate: measured training tokens/s for candidate hidden sizes (None: not measured, e.g.
    a steps budget, whose plan must not depend on the machine)."""
    given = given or {}
    p = Plan(**{k: v for k, v in given.items() if k in ("hidden", "dropout", "lr", "batch_size", "bptt")})
    per_step = p.batch_size * p.bptt
    rate = {h: r * RUN_SHARE for h, r in rate.items()} if rate else rate
    if "hidden" not in given and rate and minutes:
        sizes = sorted(rate, reverse=True)
        fits = [h for h in sizes if rate[h] * minutes * 60 >= MIN_TOKENS]
        p.hidden = fits[0] if fits else sizes[-1]
        if p.hidden != HIDDEN:
            p.reasons.append(f"hidden {p.hidden}: this machine would train about {rate[HIDDEN]:,.0f} tokens/s "
                             f"at H={HIDDEN} now, {rate[HIDDEN] * minutes * 60 / 1e6:.1f}M tokens in "
                             f"{minutes:g} min (want {MIN_TOKENS / 1e6:.0f}M); {rate[p.hidden]:,.0f}/s at "
                             f"H={p.hidden}")
            if rate[p.hidden] * minutes * 60 < MIN_TOKENS:
                p.reasons.append(f"warning: a busy or slow machine; even H={p.hidden} sees "
                                 f"{rate[p.hidden] * minutes * 60 / 1e6:.2f}M tokens: give --minutes "
                                 f"{MIN_TOKENS / (rate[p.hidden] * 60):.0f} for a sensible model")
    if rate and minutes and p.hidden in rate:
        p.tokens_per_s = rate[p.hidden]
        p.expected_tokens = int(p.tokens_per_s * minutes * 60)
        if steps:
            p.expected_tokens = min(p.expected_tokens, steps * per_step)
    elif steps:
        p.expected_tokens = steps * per_step
    p.passes = p.expected_tokens / max(train_tokens, 1)
    if "dropout" not in given:
        if p.expected_tokens:
            p.dropout = dropout_for(p.passes)
            p.reasons.append(f"dropout {p.dropout}: about {p.passes:.1f} passes over "
                             f"{train_tokens / 1e6:.2f}M training tokens")
        else:
            p.reasons.append(f"dropout {p.dropout}: passes unknown")
    return p


def measure_rate(make_model, batch, hidden_sizes, *, seconds: float = 1.0, target: float = 0.0) -> dict[int, float]:
    """Training tokens/s (forward + backward) of ``make_model(H)`` on ``batch`` (inputs,
    targets), for each H from the largest down, stopping at the first that reaches ``target``.
    Leaves the random state as it found it (the run's initial weights do not depend on it)."""
    import time

    import torch
    from .task import nll

    x, y = batch
    rates: dict[int, float] = {}
    with torch.random.fork_rng():
        for h in sorted(hidden_sizes, reverse=True):
            model = make_model(h)
            n, t0 = 0, None
            while True:
                logits, _ = model(x)
                nll(logits, y).backward()
                if t0 is None:                          # the first step warms up, untimed
                    t0 = time.perf_counter()
                    continue
                n += 1
                if time.perf_counter() - t0 >= seconds or n >= 20:
                    break
            rates[h] = n * x.numel() / (time.perf_counter() - t0)
            if rates[h] >= target:
                break
    return rates
