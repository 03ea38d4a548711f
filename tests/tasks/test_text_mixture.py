"""The model + n-gram mixture: the n-gram's next-token distribution and evidence, the
weights, and the run files and commands that use them."""
from __future__ import annotations

import json

import numpy as np
import pytest

from lstmkit.cli import main
from lstmkit.tasks.runs import load_run
from lstmkit.tasks.text import KneserNey, sample
from lstmkit.tasks.text import mixture
from lstmkit.tasks.text.ngram import COUNT_BUCKETS
from lstmkit.tasks.text.run import load_mixture

from .._text_helpers import one_thread, run  # noqa: F401 (fixtures)


def test_next_probs_and_evidence_agree_with_the_pass_over_a_text():
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 6, 3000)
    ids[::4] = 1                                         # some contexts seen often, some never
    kn = KneserNey(4, 6).fit(ids)
    test = rng.integers(0, 6, 200)
    lp, ev = kn.log_probs(test), kn.evidence(test)
    assert kn.buckets == 3 + COUNT_BUCKETS and ev.min() >= 0 and ev.max() < kn.buckets
    assert len(np.unique(ev)) > 3
    for t in (0, 1, 2, 3, 50, 199):
        p = kn.next_probs(test[:t])
        assert p.shape == (6,) and p.sum() == pytest.approx(1.0, abs=1e-12)
        assert np.log(p[test[t]]) == pytest.approx(lp[t], abs=1e-12)
        assert kn.next_evidence(test[:t]) == ev[t]


def test_evidence_by_hand():
    # order 2, V = 2 (id 2 = BOS): training "0 0 0 0 1" has the bigram contexts BOS (once)
    # and 0 (four times); 1 never starts a bigram, so after it only the unigram level knows.
    kn = KneserNey(2, 2).fit(np.array([0, 0, 0, 0, 1]))
    # position 0: context BOS, seen once -> 1 + ⌊log₂ 1⌋; 1: context 0, 4 times -> 1 + 2; 2: context 1 -> 0
    assert kn.evidence(np.array([0, 1, 0])).tolist() == [1, 3, 0]


def test_fit_weights_choose_the_better_model_in_each_bucket():
    n = 1000
    bucket = np.repeat([0, 1, 2], [n, n, 50])            # bucket 2 is too small for a weight of its own
    lstm = np.where(bucket == 0, -0.1, -3.0)
    ngram = np.where(bucket == 0, -3.0, -0.1)
    w = mixture.fit_weights(lstm, ngram, bucket, 4)
    assert w[0] == 1.0 and w[1] == 0.0
    overall = [-np.mean(mixture.mix_log_probs(lstm, ngram, np.array([g]), np.zeros(len(lstm), int)))
               for g in mixture.GRID]
    assert w[2] == w[3] == mixture.GRID[int(np.argmin(overall))]      # the weight chosen for all tokens
    mixed = -mixture.mix_log_probs(lstm, ngram, w, bucket).mean()
    assert mixed < min(-lstm.mean(), -ngram.mean())
    with pytest.raises(ValueError, match="fit_weights"):
        mixture.fit_weights(lstm, ngram[:-1], bucket, 4)


def test_train_writes_the_weights_and_evaluate_reports_the_mixture(run, tmp_path):
    path, text = run
    rec = json.loads((path / "ngram_mix.json").read_text())
    assert rec["order"] == 5 and len(rec["weights"]) == 4 + COUNT_BUCKETS and rec["tokens"] > 0
    assert all(0 <= w <= 1 for w in rec["weights"])
    # twelve steps of a tiny LSTM against a 5-gram of the text's first 95 %: the mixture leans on the n-gram
    assert rec["bits"]["mixture"] < rec["bits"]["model"]
    out = tmp_path / "e.json"
    assert main(["evaluate", str(path), "--text", str(text), "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["mixture"]["weights"] == rec["weights"]
    assert r["mixture"]["bits_per_char"] < r["bits_per_char"]
    assert r["ngram"]["fit_on"] == "the training and validation text"
    assert main(["evaluate", str(path), "--json", str(out)]) == 0       # the validation split itself
    r = json.loads(out.read_text())
    assert r["ngram"]["fit_on"] == "the training split"
    # the whole validation split, of which the weights saw the first --eval-tokens
    assert r["tokens"] == 396 > rec["tokens"] == 256 and r["mixture"]["bits_per_char"] < r["bits_per_char"]


def test_sampling_from_the_mixture(run, tmp_path, capsys):
    path, _ = run
    model, info = load_run(path)
    kn, weights = load_mixture(info)
    # weights 0: the n-gram alone; greedy: each token the n-gram's most likely next one
    got = "".join(sample(model, info.vocab, "def ", 30, temperature=0, ngram=(kn, np.zeros_like(weights))))
    ids = info.vocab.encode("def ").tolist()
    for _ in range(30):
        ids.append(int(np.argmax(kn.next_probs(ids))))
    assert got == info.vocab.decode(ids[4:])
    capsys.readouterr()
    argv = ["generate", str(path), "--ngram", "--prompt", "def ", "--sample-length", "40", "--seed", "3"]
    assert main(argv) == 0
    a = capsys.readouterr().out
    assert main(argv) == 0
    assert capsys.readouterr().out == a and a.startswith("def ") and len(a) == 4 + 40 + 1
    (path / "ngram_mix.json").rename(tmp_path / "kept.json")
    try:
        assert main(argv) == 2
        assert "has no ngram_mix.json" in capsys.readouterr().err
    finally:
        (tmp_path / "kept.json").rename(path / "ngram_mix.json")
