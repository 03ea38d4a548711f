"""Train a language model (default: a char LSTM on this Python's standard library, ~5 min).

Works under torchrun for data-parallel training: torchrun --nproc-per-node 2 -m lstmkit train
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import torch.distributed as dist

from ..interop.checkpoint import CheckpointError
from ..report.curves import plot_metrics
from ..tasks.text import sample
from ..tasks.runs import load_run
from ..tasks.text import LN2, plan
from ..tasks.text.run import DataConfig, default_out, fit_mixture, resume, start
from ..tasks.text.task import ORDERS
from ..train import TrainConfig, fit, init_distributed
from ..variants import variant
from ._common import UsageError, add_cell, add_json, add_quiet, add_threads, cells, set_threads

DEFAULT_MINUTES = 4.5            # + corpus loading, evaluation and the sample: about 5 minutes


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = p.add_argument_group("data")
    d.add_argument("--text", nargs="+", metavar="PATH", help="UTF-8 files or folders (default: the "
                   "standard library source of this Python, without its test suites)")
    d.add_argument("--tokens", choices=("char", "word"), default="char", help="tokenisation (default char)")
    d.add_argument("--max-vocab", type=int, default=0, help="vocabulary size incl. <unk> (default 512 char, 10000 word)")
    d.add_argument("--batch-size", type=int, help=f"parallel streams B, global (default {plan.BATCH})")
    d.add_argument("--bptt", type=int, help=f"truncated-BPTT segment length T (default {plan.BPTT})")
    d.add_argument("--eval-tokens", type=int, default=65536, help="validation tokens per evaluation (default 65536)")
    d.add_argument("--order", choices=ORDERS, default="shuffled", help="data order: chunks of the text in a "
                   "new random order each epoch, or the same contiguous streams every epoch (default shuffled)")
    d.add_argument("--chunk", type=int, default=4096, help="tokens per shuffled chunk (default 4096)")
    m = p.add_argument_group("model")
    add_cell(m, "lstm", help_="the recurrent variant (its family and options; the flags below add to them)",
             parallel=True)
    m.add_argument("--embed", type=int, help="embedding size D (default 64; = hidden/proj with --tie-weights)")
    m.add_argument("--hidden", type=int, help=f"hidden size H (default {plan.HIDDEN}, smaller when this "
                   f"machine is too slow for the time budget)")
    m.add_argument("--layers", type=int, default=1, help="stacked layers (default 1)")
    m.add_argument("--proj", type=int, default=0, help="LSTM projection size P (default 0 = none)")
    m.add_argument("--peepholes", default="", metavar="GATES", help="LSTM peepholes: 'ifo' or a subset")
    m.add_argument("--coupled", action="store_true", help="LSTM coupled input-forget gates (CIFG)")
    m.add_argument("--ablate", nargs="+", default=[], metavar="NAME",
                   help="LSTM ablations: input_gate forget_gate output_gate input_activation output_activation")
    m.add_argument("--layer-norm", action="store_true", help="layer normalisation (LSTM, GRU)")
    m.add_argument("--forget-bias", type=float, default=1.0, help="LSTM initial forget bias (default 1.0)")
    m.add_argument("--gru-reset-before", action="store_true",
                   help="GRU of Cho et al. 2014 (reset applied before W_hn; default: torch's reset_after)")
    m.add_argument("--nonlinearity", choices=("tanh", "relu"), default="tanh", help="RNN activation")
    m.add_argument("--tie-weights", action="store_true", help="decoder shares the embedding matrix")
    m.add_argument("--backend", choices=("auto", "reference", "fused"), default="auto", help="engine")
    r = p.add_argument_group("regularisation")
    r.add_argument("--dropout", type=float, help="dropout on embeddings, between layers, before the decoder "
                   "(default: from the passes over the text that the budget allows, 0 to 0.3)")
    r.add_argument("--weight-drop", type=float, default=0.0, help="DropConnect on recurrent weights (AWD-LSTM)")
    r.add_argument("--zoneout", type=float, default=0.0, help="zoneout rate on h and c")
    r.add_argument("--recurrent-dropout", type=float, default=0.0, help="recurrent dropout on h (Gal & Ghahramani)")
    t = p.add_argument_group("training")
    t.add_argument("--minutes", type=float, help=f"time budget (default {DEFAULT_MINUTES} when --steps is not given)")
    t.add_argument("--steps", type=int, help="step budget (reproducible bit for bit)")
    t.add_argument("--lr", type=float, help=f"peak AdamW learning rate (default {plan.LR})")
    t.add_argument("--weight-decay", type=float, default=0.01, help="AdamW weight decay on matrices (default 0.01)")
    t.add_argument("--warmup", type=int, default=50, help="linear warmup steps, then cosine decay (default 50)")
    t.add_argument("--clip", type=float, default=1.0, help="max gradient norm, 0 = off (default 1.0)")
    t.add_argument("--eval-every", type=int, default=200, help="steps between evaluations (default 200)")
    t.add_argument("--patience", type=int, default=0, help="stop after this many evaluations without a new "
                   "best validation loss (default 0 = never); the run's model is its best either way")
    t.add_argument("--checkpoint-every", type=int, default=200, help="steps between checkpoints (default 200)")
    t.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    t.add_argument("--device", default="auto", help="auto (cuda if present), cpu, cuda")
    t.add_argument("--out", type=Path, help="run directory (default runs/lm-<UTC time>)")
    t.add_argument("--resume", type=Path, metavar="RUN", help="continue RUN; every option but "
                   "--steps/--minutes (a new budget) is taken from the run")
    t.add_argument("--sample-length", type=int, default=400, help="characters/words sampled at the end (default 400)")
    add_threads(t)
    add_quiet(t)
    add_json(t, "the final figures (steps, tokens, minutes, validation metrics)")


def _model_options(a) -> dict:
    """The LM's options: the --cell variant's (lstmkit.variants), then the flags given on top."""
    v = variant(cells(a.cell, parallel=True)[0])
    o = v.options
    peep = o.get("peepholes", "")
    proj = a.proj or (int(o["proj_size"] * (a.hidden or plan.HIDDEN)) if "proj_size" in o else 0)
    out = proj or a.hidden or plan.HIDDEN
    lstm = v.family in ("lstm", "depth_gated")
    return dict(cell=v.family, embed=a.embed or (out if a.tie_weights else 64), hidden=a.hidden or plan.HIDDEN,
                layers=a.layers if a.layers != 1 else o.get("num_layers", 1), proj=proj, dropout=a.dropout or 0.0,
                weight_drop=a.weight_drop, zoneout=a.zoneout or o.get("zoneout", 0.0),
                recurrent_dropout=a.recurrent_dropout or o.get("recurrent_dropout", 0.0),
                tie_weights=a.tie_weights, peepholes=a.peepholes or ("ifo" if peep is True else peep),
                coupled=a.coupled or o.get("coupled", False),
                ablate=list(a.ablate) or ([o["ablate"]] if "ablate" in o else []),
                layer_norm=a.layer_norm or o.get("layer_norm", False),
                forget_bias=a.forget_bias if lstm else 1.0,
                reset_after=not a.gru_reset_before and o.get("reset_after", True),
                nonlinearity=o.get("nonlinearity", a.nonlinearity), backend=a.backend)


def run(args) -> int:
    set_threads(args)
    try:
        if args.steps is not None and args.steps <= 0 or args.minutes is not None and not args.minutes > 0:
            raise ValueError(f"budget: expected --steps > 0 and --minutes > 0, got steps={args.steps}, "
                             f"minutes={args.minutes}")
        rank, world, device = init_distributed(args.device)
        if device.type == "cpu" and args.backend != "reference" and rank == 0:
            announce_build()
        if args.resume:
            task, model, info, cfg = resume(args.resume, device, rank, args.steps, args.minutes)
        else:
            minutes = args.minutes if args.minutes or args.steps else DEFAULT_MINUTES
            given = {k: getattr(args, k) for k in ("hidden", "dropout", "lr", "batch_size", "bptt")
                     if getattr(args, k) is not None}
            cfg = TrainConfig(steps=args.steps, minutes=minutes, lr=args.lr or plan.LR,
                              weight_decay=args.weight_decay, warmup=args.warmup, clip=args.clip, seed=args.seed,
                              eval_every=args.eval_every, ckpt_every=args.checkpoint_every, patience=args.patience)
            data = DataConfig(text=args.text, tokens=args.tokens, max_vocab=args.max_vocab,
                              batch_size=args.batch_size or plan.BATCH, bptt=args.bptt or plan.BPTT,
                              eval_tokens=args.eval_tokens, order=args.order, chunk=args.chunk)
            task, model, info, cfg = start(args.out or default_out(), data, _model_options(args), cfg, device,
                                           rank, given)
        if rank == 0:
            _describe(info, model, cfg, world, device)
        result = fit(task, model, cfg, info.path, resume=bool(args.resume), device=device,
                     progress=not args.quiet)
    except (ValueError, CheckpointError) as e:
        raise UsageError(str(e)) from None
    if rank == 0:
        plot_metrics(info.path / "metrics.csv", info.path / "loss.png")
        figures = ", ".join(f"{k} {v:.4f}" for k, v in result.metrics.items())
        print(f"done: {result.step} steps, {result.items:,} tokens, {result.elapsed_s / 60:.1f} min; last {figures}")
        best = result.best
        if best:                              # the run's model: its best evaluation, sampled below
            model, _ = load_run(info.path, device)
            figure = (f"{best['value'] / LN2:.4f} bits/char" if info.vocab.kind == "char"
                      else f"perplexity {math.exp(best['value']):.2f}")
            print(f"best: step {best['step']}, {best['metric']} {best['value']:.4f} ({figure}) -> "
                  f"{info.path / 'model.safetensors'}")
        mix = _mixture(model, info, device)
        if args.sample_length:
            print("sample:")
            for piece in sample(model, info.vocab, "", args.sample_length, seed=args.seed, device=device):
                print(piece, end="", flush=True)
            print()
        print(f"run directory: {info.path}  (next: lstmkit generate {info.path})")
        if args.json:
            Path(args.json).write_text(json.dumps({
                "run": str(info.path), "steps": result.step, "tokens": result.items,
                "minutes": round(result.elapsed_s / 60, 3), "metrics": result.metrics, "best": best,
                "plan": info.config.get("plan"), "ngram_mix": mix}, indent=1) + "\n")
    if world > 1:
        dist.destroy_process_group()
    return 0


def _mixture(model, info, device) -> dict:
    """Weigh the model against the n-gram yardstick on the validation text (ngram_mix.json)."""
    rec = fit_mixture(model, info, device=device)
    char = info.vocab.kind == "char"
    b = {k: v if char else 2 ** v for k, v in rec["bits"].items()}
    print(f"with the {rec['order']}-gram (weights in ngram_mix.json, on {rec['tokens']:,} validation tokens): "
          f"model {b['model']:.4f}, {rec['order']}-gram {b['ngram']:.4f}, mixed {b['mixture']:.4f} "
          f"{'bits/char' if char else 'perplexity'}")
    return rec


def _describe(info, model, cfg: TrainConfig, world: int, device) -> None:
    """What is about to train, and the planned settings with their reasons (stderr)."""
    n = sum(p.numel() for p in model.parameters())
    c, m, d = info.corpus, info.model_config, info.config["data"]
    print(f"run {info.path}: {m.cell} {m.layers}x{m.hidden}, {n:,} parameters, vocabulary {len(info.vocab)} "
          f"{info.vocab.kind}s; text {c.get('train_chars', 0):,} + {c.get('val_chars', 0):,} chars (train + "
          f"validation), {world} process(es) on {device}", file=sys.stderr)
    budget = f"{cfg.steps} steps" if cfg.steps else f"{cfg.minutes:g} min"
    print(f"settings: hidden {m.hidden}, dropout {m.dropout}, lr {cfg.lr:g} (cosine), batch {d['batch_size']} x "
          f"bptt {d['bptt']}, order {d.get('order', 'fixed')}, budget {budget}", file=sys.stderr)
    for line in (info.config.get("plan") or {}).get("reasons", []):
        print(f"  {line}", file=sys.stderr)


def announce_build() -> None:
    """Say so before the one-time C++ build of the fused loops (a minute or more on a busy
    machine, with nothing else on the screen), then build them (a no-op when built)."""
    from ..engines.fused import build
    if build.load.cache_info().currsize or os.environ.get("LSTMKIT_NO_EXT", "") not in ("", "0"):
        return                                   # already loaded (or tried) in this process, or off
    try:
        fresh = not any(build.build_dir().glob("*.so"))
    except OSError:
        fresh = True
    if fresh:
        print("building the fused C++ loops (once per machine, about a minute)...", file=sys.stderr, flush=True)
    t0 = time.monotonic()
    ok = build.ops() is not None
    if fresh and ok:
        print(f"built in {time.monotonic() - t0:.0f} s", file=sys.stderr)
