"""The long-time-lag lab: generators, criteria, chrono init, gradient flow and the commands."""
import json
import math

import pytest
import torch

from lstmkit.cli import main
from lstmkit.tasks.memory import Score, make_task
from lstmkit.tasks.memory.gradflow import gradient_norms
from lstmkit.tasks.memory.models import SequenceModel, chrono_init
from lstmkit.tasks.memory.reber import GRAPH, SYMBOLS, legal_successors
from lstmkit.tasks.memory.training import LabConfig, MemoryTraining
from lstmkit.train import fit


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# ---- adding (Hochreiter & Schmidhuber 1997) -----------------------------------------------
def test_adding_labels_markers_and_lengths():
    T = 40
    b = make_task("adding", T).sample(500, gen())
    value, marker = b.x[..., 0], b.x[..., 1]
    assert ((b.lengths >= T) & (b.lengths <= T + T // 10)).all()
    assert ((marker == 1).sum(0) == 2).all()
    for j in range(500):
        L = int(b.lengths[j])
        marked = (marker[:, j] == 1).nonzero()[:, 0].tolist()
        assert marked[0] < 10 and marked[1] < T // 2 - 1          # X1 < 10, X2 < T/2 - 1, either order
        assert marker[L - 1, j] == -1 and (marker[0, j] == -1 or marked[0] == 0)
        assert (b.x[L:, j] == 0).all() and value[:L, j].abs().max() <= 1
        assert marked[0] != 0 or value[0, j] == 0                 # a marked first pair has X1 = 0
        assert b.y[j] == pytest.approx(0.5 + float(value[marked, j].sum()) / 4, abs=1e-6)
        assert ((marker[:, j] == -1).sum() == (1 if marked[0] == 0 else 2))


def test_adding_is_deterministic_and_chance_matches_paper():
    t = make_task("adding", 20)
    a, b = t.sample(50, gen(3)), t.sample(50, gen(3))
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    y = make_task("adding", 100).sample(40_000, gen(1)).y
    # 1/24 for X1, X2 ~ U[-1, 1]; a marked first pair has value 0 (P = 1/10 + 9/10 · 1/48)
    assert ((y - 0.5) ** 2).mean() == pytest.approx((2 - 0.1 - 0.9 / 48) / 48, rel=0.03)
    assert ((y - 0.5).abs() < 0.04).float().mean() == pytest.approx(0.154, abs=0.01)


def test_adding_criterion_on_hand_made_predictions():
    t = make_task("adding", 10)
    b = t.sample(2560, gen())
    out = 4 * (b.y - 0.5)[:, None] + 4 * 0.03                    # every prediction off by 0.03
    s = t.score(out, b)
    assert s.wrong == 0 and s.error == pytest.approx(0.03 ** 2, rel=1e-4) and t.solved(s)
    out[0] += 4 * 0.02                                           # one off by 0.05: still solved
    assert t.solved(t.score(out, b))
    out[1] -= 4 * 0.1                                            # two wrong: not solved
    s = t.score(out, b)
    assert s.wrong == 2 and not t.solved(s)
    assert t.loss(4 * (b.y - 0.5)[:, None], b) == 0


def test_adding_arjovsky_labels_and_chance():
    T = 30
    t = make_task("adding-arjovsky", T)
    b = t.sample(4000, gen())
    m = b.x[..., 1]
    assert (m[: T // 2].sum(0) == 1).all() and (m[T // 2:].sum(0) == 1).all()
    assert torch.allclose((b.x[..., 0] * m).sum(0), b.y)
    chance = t.score(torch.zeros(4000, 1), b)                    # readout 0 predicts E[sum] = 1
    assert chance.error == pytest.approx(t.baseline, rel=0.06) and not t.solved(chance)


# ---- copy (Arjovsky et al. 2016) ----------------------------------------------------------
def test_copy_labels_and_memoryless_baseline():
    T = 15
    t = make_task("copy", T)
    b = t.sample(64, gen())
    sym = b.x.argmax(-1)
    assert b.x.shape == (T + 20, 64, 10)
    assert torch.equal(b.y[-10:], sym[:10]) and (sym[:10] < 8).all()
    assert (sym[T + 9] == 9).all() and (sym[10:T + 9] == 8).all() and (sym[T + 10:] == 8).all()
    assert (b.y[:-10] == 8).all()
    # the memoryless strategy: certain blank, then uniform over the 8 data symbols
    out = torch.full((T + 20, 64, 9), -math.inf)
    out[:-10, :, 8] = 0.0
    out[-10:, :, :8] = 0.0
    s = t.score(out, b)
    assert s.error == pytest.approx(10 * math.log(8) / (T + 20), rel=1e-6) == t.baseline
    assert not t.solved(s)
    perfect = torch.nn.functional.one_hot(b.y, 9).float() * 50
    s = t.score(perfect, b)
    assert s.wrong == 0 and s.error < 1e-6 and t.solved(s)


def test_selective_copy_places_the_symbols_at_random_positions_in_order():
    """Selective copy (Gu & Dao 2023): the 10 data symbols, in order, at random distinct steps
    before the delimiter; targets and baseline as copy's."""
    T = 15
    t = make_task("selective-copy", T)
    b = t.sample(64, gen())
    sym = b.x.argmax(-1)
    assert b.x.shape == (T + 20, 64, 10) and t.baseline == make_task("copy", T).baseline
    assert (sym[T + 9] == 9).all() and (sym[T + 10:] == 8).all() and (b.y[:-10] == 8).all()
    starts = set()
    for n in range(64):
        where = (sym[:T + 9, n] < 8).nonzero().flatten()
        assert len(where) == 10
        assert torch.equal(sym[where, n], b.y[-10:, n])                 # recalled in order of appearance
        starts.add(tuple(where.tolist()))
    assert len(starts) > 50                                             # positions vary by sequence
    perfect = torch.nn.functional.one_hot(b.y, 9).float() * 50
    assert t.solved(t.score(perfect, b))


# ---- temporal order (1997, experiment 6b) -------------------------------------------------
def test_order_labels_and_criterion():
    T = 100
    t = make_task("order", T)
    b = t.sample(300, gen())
    sym = b.x.argmax(-1)
    for j in range(300):
        L = int(b.lengths[j])
        assert sym[0, j] == 5 and sym[L - 1, j] == 4
        pos = ((sym[:L, j] == 6) | (sym[:L, j] == 7)).nonzero()[:, 0].tolist()
        assert len(pos) == 3 and 10 <= pos[0] <= 20 and 33 <= pos[1] <= 43 and 66 <= pos[2] <= 76
        bits = [int(sym[p, j] == 7) for p in pos]
        assert b.y[j] == 4 * bits[0] + 2 * bits[1] + bits[2]
    good = torch.full((300, 8), math.log(0.2 / 7))
    good[torch.arange(300), b.y] = math.log(0.8)                 # p(class) = 0.8 > 0.7: correct
    assert t.score(good, b).wrong == 0
    good[0] = 0.0                                                 # uniform: wrong
    assert t.score(good, b).wrong == 1


# ---- embedded Reber grammar ---------------------------------------------------------------
def test_reber_strings_follow_the_grammar():
    t = make_task("reber", 30)
    b = t.sample(200, gen())
    for j in range(200):
        L = int(b.lengths[j])
        s = "".join(SYMBOLS[k] for k in b.x[:L, j].argmax(-1).tolist())
        assert s[0] == "B" and s[1] in "TP" and s[-1] == s[1] and s[2] == "B" and L + 1 <= 30
        state = 1
        for c in s[3:-2]:
            state = dict(GRAPH[state])[c]
        assert s[-2] == "E" and state == 6
        assert legal_successors(s + "E")[-2] == s[1]              # the long-range dependency
    perfect = (b.y * 2 - 1) * 10
    assert t.solved(t.score(perfect, b))
    perfect[b.lengths[0] - 2, 0] = 10.0                           # predicts both T and P: wrong
    s = t.score(perfect, b)
    assert s.wrong == 1 and not t.solved(s)


def test_invalid_lengths_raise():
    with pytest.raises(ValueError, match="length"):
        make_task("adding", 1)
    with pytest.raises(ValueError, match="task"):
        make_task("nope", 10)
    assert Score(1.0, 1, 2) + Score(2.0, 0, 2) == Score(3.0, 1, 4)


# ---- chrono init and gradient flow --------------------------------------------------------
def test_chrono_init_spreads_forget_biases():
    t = make_task("adding", 100)
    m = SequenceModel("lstm", t, 16, seed=1)
    b_ih, b_hh = m.rnn.bias_ih_l0.detach(), m.rnn.bias_hh_l0.detach()
    b_i, b_f = b_ih[:16], b_ih[16:32]
    assert (b_f >= 0).all() and (b_f <= math.log(t.horizon - 1)).all() and b_f.std() > 0.3
    assert torch.equal(b_i, -b_f) and (b_hh[:32] == 0).all()
    g = SequenceModel("gru", t, 16, seed=1).rnn
    assert (g.bias_ih_l0[16:32] >= 0).all() and (g.bias_hh_l0[16:32] == 0).all()
    rnn = SequenceModel("rnn", t, 16, seed=1).rnn
    before = rnn.bias_ih_l0.clone()
    chrono_init(rnn, 100, gen())
    assert torch.equal(before, rnn.bias_ih_l0)


def test_gradient_norms_are_total_derivatives():
    t = make_task("adding", 12)
    t.jitter = False
    b = t.sample(8, gen())
    m = SequenceModel("rnn", t, 8, seed=0)
    with torch.no_grad():
        m.rnn.weight_hh_l0.zero_()                               # no recurrence: no gradient back
    g_h, g_c, _ = gradient_norms(m, t, b)
    assert g_c is None and g_h[-1] > 0 and (g_h[:-1] == 0).all()
    m = SequenceModel("lstm", t, 8, seed=0)
    g_h, g_c, loss = gradient_norms(m, t, b)
    assert (g_h > 0).all() and (g_c[:-1] > 0).all() and g_c[-1] == 0   # the loss reads h_T only
    # compare one step with autograd through the whole-sequence layer
    h0 = torch.zeros(1, 8, 8, requires_grad=True)
    c0 = torch.zeros(1, 8, 8)
    x = b.x
    _, s3 = m.rnn(x[:4], (h0, c0))
    h3 = s3.h.detach().requires_grad_()
    y, _ = m.rnn(x[4:], (h3, s3.c.detach()))
    full = t.loss(m.readout(y[-1]), b)
    (gh3,) = torch.autograd.grad(full, h3)
    assert loss == pytest.approx(float(full.detach()), rel=1e-5)
    assert float(g_h[3]) == pytest.approx(float((gh3[0] * 8).norm(dim=-1).mean()), rel=1e-4)


# ---- the commands -------------------------------------------------------------------------
def test_memory_command_writes_json(tmp_path, capsys):
    path = tmp_path / "r.json"
    rc = main(["memory", "--task", "adding", "--length", "6", "--budget", "40", "--cell", "lstm,rnn",
               "--test-size", "64", "--quiet",
               "--json", str(path), "--out", str(tmp_path / "out")])
    assert rc == 0
    doc = json.loads(path.read_text())
    assert doc["task"] == "adding" and doc["length"] == 6
    assert [r["cell"] for r in doc["results"]] == ["lstm", "rnn"]
    for r in doc["results"]:
        assert set(r) >= {"cell", "solved", "sequences_to_solve", "test_error", "baseline"}
        assert r["baseline"] == pytest.approx(1 / 24) and 0 < r["test_error"] < 1
        assert r["solved"] is (r["sequences_to_solve"] is not None)
    assert (tmp_path / "out" / "memory_adding_T6.png").stat().st_size > 1000
    assert "baseline" in capsys.readouterr().out


def test_gradflow_command(tmp_path, capsys):
    path = tmp_path / "g.json"
    rc = main(["gradflow", "--cell", "lstm,rnn", "--length", "8", "--train", "32", "--batch-size", "4",
               "--json", str(path), "--out", str(tmp_path / "out"), "--quiet"])
    assert rc == 0
    flows = json.loads(path.read_text())["flows"]
    assert len(flows) == 4 and all(len(f["grad_h"]) == 8 for f in flows)
    assert flows[0]["grad_c"] is not None and flows[2]["grad_c"] is None
    assert (tmp_path / "out" / "gradflow_T8.png").exists() and "ratio" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [
    ["memory", "--task", "nope"], ["memory", "--length", "1"], ["memory", "--budget", "0"],
    ["memory", "--budget", "-5"], ["memory", "--test-size", "0"], ["memory", "--cell", "lstm,bogus"], ["memory", "--task", "order", "--length", "5"],
    ["gradflow", "--length", "1"], ["gradflow", "--cell", "x"], ["gradflow", "--threads", "0"],
    ["memory", "--threads", "0"],
])
def test_bad_arguments_exit_2_with_one_line(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "error" in err


# ---- training through the shared loop -----------------------------------------------------
def _train(model, task, cfg, test=None):
    """One cell the way ``lstmkit memory`` trains it -> (the lab's record, the final test score)."""
    lab = MemoryTraining(task, cfg, test)
    r = fit(lab, model, cfg.train_config(), progress=False)
    return lab, lab.test_score(r.averaged if r.averaged is not None else model)


def test_fit_learns_a_short_adding_problem_and_stops_when_solved():
    t = make_task("adding", 5)
    m = SequenceModel("lstm", t, 16, seed=0)
    lab, final = _train(m, t, LabConfig(budget=1024, eval_every=256, test_size=256, average=0.0, seed=0))
    assert lab.seen == 1024 and [c[0] for c in lab.curve] == [256, 512, 768, 1024]
    assert lab.curve[-1][1] < 0.3 * t.baseline and final.error < 0.5 * t.baseline

    class Easy(type(t)):                                          # passes the test at once
        def solved(self, score):
            return True

        def promising(self, score):
            return True
    lab, _ = _train(SequenceModel("rnn", t, 4), Easy(5), LabConfig(budget=4096, eval_every=64, test_size=8))
    assert lab.solved_at is not None and lab.solved_at == 64 == lab.seen


def test_the_lab_solves_a_small_task_through_the_shared_loop():
    """GRU on adding T = 6 passes the paper's test within 4096 sequences and stops there;
    the lab's settings become plain Adam at a constant rate, evaluations in whole batches."""
    t = make_task("adding", 6)
    cfg = LabConfig(budget=4096, test_size=256, seed=0)
    lab, final = _train(SequenceModel("gru", t, 32, seed=0), t, cfg)
    assert lab.solved_at is not None and lab.seen == lab.solved_at < 4096 and lab.solved_at % cfg.eval_every == 0
    assert t.solved(final) and final.n == 256
    tc = LabConfig(budget=40, batch_size=16, eval_every=20, average=0.9).train_config()
    assert (tc.steps, tc.eval_every, tc.optimizer, tc.schedule, tc.ema, tc.weight_decay) == \
        (3, 2, "adam", "constant", 0.9, 0.0)


def test_lab_batches_are_a_function_of_the_step():
    t = make_task("adding", 8)
    cfg = LabConfig(budget=40, batch_size=16, seed=3)
    a, b = MemoryTraining(t, cfg), MemoryTraining(t, cfg)
    seq = [a.batch(s) for s in range(3)]
    assert [x.size for x in seq] == [16, 16, 8]                  # the last batch is cut to the budget
    for s in (2, 0, 1):                                           # out of order: replayed from the seed
        assert torch.equal(b.batch(s).x, seq[s].x)
