"""Sample text from a trained language model run, streamed as it is generated."""
from __future__ import annotations

import argparse
import sys

from ..interop.checkpoint import CheckpointError
from ..tasks.runs import load_run
from ..tasks.text import sample
from ..tasks.text.run import load_mixture
from ._common import UsageError, add_seed


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", metavar="RUN", help="run directory written by lstmkit train")
    p.add_argument("--prompt", default="", help="text to start from (char runs: every character must be "
                   "in the run's vocabulary, else exit 2; word runs: unknown words read as <unk>)")
    p.add_argument("--sample-length", type=int, default=500, help="tokens to sample (default 500)")
    p.add_argument("--temperature", type=float, default=0.8, help="softmax temperature, 0 = greedy (default 0.8)")
    p.add_argument("--top-k", type=int, default=0, help="sample among the k most likely tokens (default 0 = all)")
    p.add_argument("--ngram", action="store_true", help="sample from the model mixed with the run's n-gram "
                   "(the weights of its ngram_mix.json; the n-gram is fit on the run's text first, seconds)")
    add_seed(p)


def run(args) -> int:
    try:
        model, info = load_run(args.run)
        ngram = load_mixture(info) if args.ngram else None
        stream = sample(model, info.vocab, args.prompt, args.sample_length, temperature=args.temperature,
                        top_k=args.top_k, seed=args.seed, ngram=ngram)
        first = next(stream, "")                 # validates the arguments before printing anything
    except (ValueError, CheckpointError) as e:
        raise UsageError(str(e)) from None
    sys.stdout.write(args.prompt + first)
    for piece in stream:
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")
    return 0
