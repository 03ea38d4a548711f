"""Language modelling on text: corpus, vocabulary, model, task, sampling, n-gram yardstick,
and the run files (config.json, vocab.json, corpus.json) that tie them together."""
from .corpus import Corpus, CorpusError, load_corpus, read_text, reload_corpus
from .model import LanguageModel, LMConfig
from .ngram import KneserNey
from .run import CORPUS, VOCAB, TextRun, load_text_run, validation_text
from .sample import sample
from .task import LN2, TextTask, evaluate_ids
from .vocab import Vocab

__all__ = ["Corpus", "CorpusError", "load_corpus", "read_text", "reload_corpus", "LanguageModel",
           "LMConfig", "KneserNey", "sample", "LN2", "TextTask", "evaluate_ids", "Vocab", "TextRun",
           "load_text_run", "validation_text", "VOCAB", "CORPUS"]
