"""Text runs end to end: start or resume training, load a trained run, its held-out text,
evaluate against the n-gram yardstick. The CLI commands ``train``, ``evaluate`` and
``inspect`` are thin wrappers over these functions.

A text run's folder holds, beside the loop's files (``interop.checkpoint``), config.json
with ``"task": "text"``, vocab.json and corpus.json (what was read and how it was split).
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from ..._version import __version__
from ... import train as loop
from ...interop import checkpoint as ckpt
from . import plan
from .corpus import load_corpus, read_text, reload_corpus
from .model import LanguageModel, LMConfig
from . import mixture
from .ngram import KneserNey
from .task import LN2, ORDERS, TextTask, token_losses
from .vocab import Vocab

VOCAB, CORPUS, MIX = "vocab.json", "corpus.json", "ngram_mix.json"


@dataclass
class TextRun:
    """What a text run holds beside its weights. config: config.json; model_config: the
    LMConfig; vocab; corpus: corpus.json (the files and the train/validation split)."""

    path: Path
    config: dict
    model_config: LMConfig
    vocab: Vocab
    corpus: dict


@dataclass
class DataConfig:
    """text: files/folders (None: the standard library).  tokens: "char" | "word".
    max_vocab: vocabulary size incl. <unk> (0: 512 for char, 10000 for word).
    batch_size: B parallel streams (global, split over DDP ranks).  bptt: T steps per
    segment.  eval_tokens: validation tokens scored at each evaluation during training.
    order: "shuffled" | "fixed", chunk: tokens per shuffled chunk (``task.TextTask``; a run
    written before the option existed reads as "fixed", the order it was trained in)."""

    text: list[str] | None = None
    tokens: str = "char"
    max_vocab: int = 0
    batch_size: int = 32
    bptt: int = 64
    eval_tokens: int = 65536
    order: str = "shuffled"
    chunk: int = 4096

    def __post_init__(self):
        if self.order not in ORDERS:
            raise ValueError(f"order: expected one of {ORDERS}, got {self.order!r}")
        for name in ("batch_size", "bptt", "eval_tokens", "chunk"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected an int >= 1, got {getattr(self, name)}")
        if self.max_vocab < 0 or self.max_vocab == 1:
            raise ValueError(f"max_vocab: expected 0 (default) or an int >= 2, got {self.max_vocab}")

    @property
    def vocab_size(self) -> int:
        return self.max_vocab or (512 if self.tokens == "char" else 10000)


def default_out() -> Path:
    """runs/lm-<UTC time>, agreed by every rank."""
    name = [time.strftime("runs/lm-%Y%m%d-%H%M%S", time.gmtime())]
    if dist.is_initialized():
        dist.broadcast_object_list(name, 0)
    return Path(name[0])


def _task(corpus, vocab: Vocab, data: DataConfig, seed: int, device) -> TextTask:
    return TextTask(vocab.encode(corpus.train), vocab.encode(corpus.val), kind=vocab.kind,
                    batch_size=data.batch_size, bptt=data.bptt, eval_tokens=data.eval_tokens, device=device,
                    order=data.order, chunk=data.chunk, seed=seed)


def start(out: Path, data: DataConfig, model_options: dict, train: loop.TrainConfig, device, rank: int,
          given: dict | None = None):
    """A new run in ``out``: -> (task, model, TextRun). Rank 0 writes the run files.

    given: None = every setting as passed; else the settings the user chose (name -> value)
    and the others (hidden, dropout, lr, batch_size, bptt) are planned (``plan.plan``) from
    the text, the budget and, for a time budget in a single process, the measured speed."""
    if (out / ckpt.CONFIG).exists():
        raise ValueError(f"out: {out} already holds a run; resume it with --resume {out} or pick another --out")
    corpus = load_corpus(data.text)
    vocab = Vocab.build(corpus.train, data.tokens, data.vocab_size)
    chosen = None
    if given is not None:
        chosen = _plan(corpus, vocab, data, model_options, train, given, device)
        data = replace(data, batch_size=chosen.batch_size, bptt=chosen.bptt)
        model_options = {**model_options, "hidden": chosen.hidden, "dropout": chosen.dropout}
        if model_options.get("tie_weights") and not model_options.get("proj"):
            model_options["embed"] = chosen.hidden
        train = replace(train, lr=chosen.lr)
    mcfg = LMConfig(vocab_size=len(vocab), **model_options)
    task = _task(corpus, vocab, data, train.seed, device)
    torch.manual_seed(train.seed)
    model = LanguageModel(mcfg)
    cfg = {"lstmkit_format": ckpt.FORMAT, "lstmkit_version": __version__, "task": "text",
           "model": asdict(mcfg), "train": asdict(train), "data": asdict(data),
           **({"plan": chosen.to_json()} if chosen else {})}
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        ckpt.write_json(out / VOCAB, vocab.to_json())
        ckpt.write_json(out / CORPUS, corpus.record)
        ckpt.write_json(out / ckpt.CONFIG, cfg)           # last: its presence marks a run
    return task, model, TextRun(out, cfg, mcfg, vocab, corpus.record), train


def _plan(corpus, vocab: Vocab, data: DataConfig, model_options: dict, train: loop.TrainConfig,
          given: dict, device) -> plan.Plan:
    """``plan.plan`` for this text, with the speed measured on its first batch when the
    budget is time and this is a single process (DDP ranks must agree on the plan)."""
    ids = vocab.encode(corpus.train)
    rate = None
    if train.minutes and not dist.is_initialized():
        B, T = given.get("batch_size", plan.BATCH), given.get("bptt", plan.BPTT)
        x = torch.as_tensor(ids[:B * (T + 1)], dtype=torch.long).view(B, T + 1).T.contiguous().to(device)
        opts = {**model_options, "dropout": given.get("dropout", 0.0)}

        def make(h):
            o = {**opts, "hidden": h, **({"embed": h} if opts.get("tie_weights") and not opts.get("proj") else {})}
            return LanguageModel(LMConfig(vocab_size=len(vocab), **o)).to(device)

        sizes = [given["hidden"]] if "hidden" in given else [plan.HIDDEN, plan.HIDDEN // 2, plan.MIN_HIDDEN]
        rate = plan.measure_rate(make, (x[:-1], x[1:]), sizes,
                                 target=plan.MIN_TOKENS / (train.minutes * 60 * plan.RUN_SHARE))
    return plan.plan(len(ids), steps=train.steps, minutes=train.minutes, rate=rate, given=given)


def resume(run: Path, device, rank: int, steps: int | None = None, minutes: float | None = None):
    """Reopen ``run`` for more training: -> (task, model, TextRun, TrainConfig). A new
    ``steps``/``minutes`` budget replaces the stored one (else the run ends as planned)."""
    cfg = ckpt.read_config(run)
    if cfg.get("task") != "text":
        raise ckpt.CheckpointError(f"{run}: not a text run (task {cfg.get('task')!r})")
    if not (run / ckpt.CHECKPOINT).exists():
        raise ckpt.CheckpointError(f"{run}: no {ckpt.CHECKPOINT} to resume from")
    ckpt.load_tensors(run / ckpt.CHECKPOINT)             # refuse a damaged file before any work
    try:
        data, train = DataConfig(**{"order": "fixed", **cfg["data"]}), loop.TrainConfig(**cfg["train"])
        mcfg, vocab = LMConfig(**cfg["model"]), Vocab.from_json(ckpt.read_json(run / VOCAB))
    except (KeyError, TypeError, ValueError) as e:
        raise ckpt.CheckpointError(f"{run}: incompatible run files ({e})") from None
    if steps is not None or minutes is not None:
        train = loop.TrainConfig(**{**asdict(train), "steps": steps, "minutes": minutes})
        cfg["train"] = asdict(train)
        if rank == 0:
            ckpt.write_json(run / ckpt.CONFIG, cfg)
    corpus = reload_corpus(ckpt.read_json(run / CORPUS))
    task = _task(corpus, vocab, data, train.seed, device)
    torch.manual_seed(train.seed)
    return task, LanguageModel(mcfg), TextRun(run, cfg, mcfg, vocab, corpus.record), train


def load_text_run(run: Path, cfg: dict, device="cpu") -> tuple[LanguageModel, TextRun]:
    """The loader of task "text" (``lstmkit.tasks.runs.load_run``): the model in eval mode + TextRun."""
    try:
        vocab = Vocab.from_json(ckpt.read_json(run / VOCAB))
        mcfg = LMConfig(**cfg["model"])
    except (KeyError, TypeError, ValueError) as e:
        raise ckpt.CheckpointError(f"{run}: incompatible run files ({e})") from None
    if mcfg.vocab_size != len(vocab):
        raise ckpt.CheckpointError(f"{run}: config.json says {mcfg.vocab_size} tokens, vocab.json holds {len(vocab)}")
    model = LanguageModel(mcfg)
    tensors, _ = ckpt.load_tensors(run / ckpt.MODEL)
    ckpt.load_clean_state_dict(model, tensors, str(run / ckpt.MODEL))
    model.to(device).eval()
    corpus = ckpt.read_json(run / CORPUS) if (run / CORPUS).exists() else {}
    return model, TextRun(run, cfg, mcfg, vocab, corpus)


def validation_text(run: TextRun, chars: int) -> str:
    """The start of the run's held-out text, at least ``chars`` characters when it has that
    many: whole validation files from their first line when the split was by files (so that
    a reader of the text, like the gate report's string and bracket scanner, starts in a
    known state), else the validation split."""
    rec = run.corpus or {}
    files = [name for name, part in rec.get("files", []) if part == "val"]
    if rec.get("rule") == "files" and files:
        parts, n = [], 0
        for name in files:
            p = Path(rec["root"]) / name if rec.get("kind") == "stdlib" else Path(name)
            if not p.is_file():
                continue
            t = p.read_text(encoding="utf-8", errors="strict").removeprefix("\ufeff")
            parts.append(t if t.endswith("\n") else t + "\n")
            n += len(parts[-1])
            if n >= chars:
                break
        if parts:
            return "".join(parts)
    return reload_corpus(rec).val


def _order(vocab: Vocab, ngram_order: int = 0) -> int:
    return ngram_order or (5 if vocab.kind == "char" else 3)


def fit_mixture(model, run: TextRun, *, write: bool = True, device="cpu") -> dict:
    """Choose the weights λ_b of the model + n-gram mixture (``mixture.py``) on the first
    ``eval_tokens`` validation tokens, the n-gram fit on the training split; -> the record
    written to ngram_mix.json: {"order", "weights", "tokens", "bits": {"model", "ngram",
    "mixture"} on those tokens} (bits per token)."""
    vocab, corpus = run.vocab, reload_corpus(run.corpus)
    ids = vocab.encode(corpus.val)[:run.config["data"].get("eval_tokens", 65536) + 1]
    kn = KneserNey(_order(vocab), len(vocab)).fit(vocab.encode(corpus.train))
    nats, pos = token_losses(model, ids, device=device)
    lstm, ngram, bucket = -nats, kn.log_probs(ids)[pos], kn.evidence(ids)[pos]
    weights = mixture.fit_weights(lstm, ngram, bucket, kn.buckets)
    mixed = mixture.mix_log_probs(lstm, ngram, weights, bucket)
    rec = {"order": kn.order, "weights": [round(float(w), 2) for w in weights], "tokens": len(nats),
           "fit_on": f"the first {len(nats):,} validation tokens, the n-gram fit on the training split",
           "bits": {name: float(-np.mean(v)) / LN2 for name, v in (("model", lstm), ("ngram", ngram),
                                                                   ("mixture", mixed))}}
    if write:
        ckpt.write_json(run.path / MIX, rec)
    return rec


def load_mixture(run: TextRun) -> tuple[KneserNey, np.ndarray]:
    """The run's n-gram, fit on all the text it saw, and its weights (ngram_mix.json), for sampling."""
    if not (run.path / MIX).exists():
        raise ValueError(f"ngram: {run.path} has no {MIX} (runs write it at the end of lstmkit train)")
    rec, corpus = ckpt.read_json(run.path / MIX), reload_corpus(run.corpus)
    kn = KneserNey(rec["order"], len(run.vocab)).fit(run.vocab.encode(corpus.train + corpus.val))
    return kn, np.array(rec["weights"], dtype=np.float64)


def evaluate(model, run: TextRun, text: str | None = None, *, ngram_order: int = 0, worst: int = 0,
             device="cpu") -> dict:
    """Score ``text`` (a file or folder; None: the run's validation split) with the model,
    with an interpolated Kneser-Ney n-gram model and with the two mixed (``mixture.py``; the
    weights of the run's ngram_mix.json, or chosen now when it has none). The n-gram is fit
    on all the text the run saw (training + validation), on the training split alone when
    the text scored is the validation split.

    -> {"bits_per_char" | "perplexity", "tokens", "token_bits": the per-token losses' summary,
    "worst": the ``worst`` spans of highest mean loss, "ngram": {order, same figure, tokens},
    "mixture": {weights, same figure}}.
    """
    vocab = run.vocab
    corpus = reload_corpus(run.corpus)
    body = corpus.val if text is None else read_text(text)
    ids = vocab.encode(body)
    nats, pos = token_losses(model, ids, device=device)
    loss, n = float(nats.mean()), len(nats)
    order = _order(vocab, ngram_order)
    kn = KneserNey(order, len(vocab)).fit(vocab.encode(corpus.train if text is None else corpus.train + corpus.val))
    lp = kn.log_probs(ids)[pos]                     # every token after the first, as the model
    key = "bits_per_char" if vocab.kind == "char" else "perplexity"
    mix = None
    if order == _order(vocab):                      # the run's weights are for its own order
        mix = (ckpt.read_json(run.path / MIX) if (run.path / MIX).exists()
               else fit_mixture(model, run, write=False, device=device))

    def figure(nats: float) -> float:
        return nats / LN2 if vocab.kind == "char" else math.exp(nats)

    bits = nats / LN2
    q = np.quantile(bits, [0.5, 0.9, 0.99])
    out = {key: figure(loss), "tokens": n, "unknown_tokens": int((ids == 0).sum()),
           "text": "validation split" if text is None else str(text),
           "token_bits": {"mean": float(bits.mean()), "median": float(q[0]), "p90": float(q[1]),
                          "p99": float(q[2]), "max": float(bits.max()),
                          "share_over_4_bits": float((bits > 4).mean())},
           "worst": worst_spans(bits, pos, ids, vocab, worst),
           "ngram": {"model": f"interpolated Kneser-Ney, order {order}", "order": order,
                     "fit_on": "the training split" if text is None else "the training and validation text",
                     key: figure(float(-np.mean(lp))), "tokens": len(lp)}}
    if mix is not None:
        mixed = mixture.mix_log_probs(-nats, lp, np.array(mix["weights"]), kn.evidence(ids)[pos])
        out["mixture"] = {"model": f"model + {order}-gram, weights by the n-gram's evidence",
                          "weights": mix["weights"], "weights_fit_on": mix["fit_on"],
                          key: figure(float(-np.mean(mixed)))}
    return out


def worst_spans(bits: np.ndarray, pos: np.ndarray, ids: np.ndarray, vocab: Vocab, n: int,
                width: int = 0) -> list[dict]:
    """The ``n`` non-overlapping spans of ``width`` tokens (0: 64 chars or 16 words) whose
    predicted tokens have the highest mean loss, worst first: {"start", "bits_per_token", "text"}."""
    width = width or (64 if vocab.kind == "char" else 16)
    if n <= 0 or len(bits) < width:
        return []
    at = np.zeros(len(ids))
    at[pos] = bits
    seen = np.zeros(len(ids))
    seen[pos] = 1
    win = np.ones(width)
    mean = np.convolve(at, win, "valid") / np.maximum(np.convolve(seen, win, "valid"), 1)
    out, taken = [], np.zeros(len(mean), bool)
    for start in np.argsort(-mean, kind="stable"):
        if len(out) == n:
            break
        if taken[start]:
            continue
        taken[max(0, start - width + 1):start + width] = True
        out.append({"start": int(start), "bits_per_token": float(mean[start]),
                    "text": vocab.decode(ids[start:start + width])})
    return out
