"""Language modelling on text: corpus, vocabulary, model, task, sampling, n-gram yardstick,
and the run files (config.json, vocab.json, corpus.json) that tie them together."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ...interop import checkpoint as ckpt
from .corpus import Corpus, CorpusError, load_corpus, read_text, reload_corpus
from .model import CELLS, LanguageModel, LMConfig
from .ngram import KneserNey
from .sample import sample
from .task import LN2, TextTask, evaluate_ids
from .vocab import Vocab

VOCAB, CORPUS = "vocab.json", "corpus.json"


@dataclass
class TextRun:
    """What a text run holds beside its weights. config: config.json; model_config: the
    LMConfig; vocab; corpus: corpus.json (the files and the train/validation split)."""

    path: Path
    config: dict
    model_config: LMConfig
    vocab: Vocab
    corpus: dict


def load_text_run(run: Path, cfg: dict, device="cpu") -> tuple[LanguageModel, TextRun]:
    """``interop.checkpoint.load_run`` for task "text": the model in eval mode + TextRun."""
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


__all__ = ["Corpus", "CorpusError", "load_corpus", "read_text", "reload_corpus", "CELLS", "LanguageModel",
           "LMConfig", "KneserNey", "sample", "LN2", "TextTask", "evaluate_ids", "Vocab", "TextRun",
           "load_text_run", "VOCAB", "CORPUS"]
