"""The training loop: exact resume after kills, atomic checkpoints, corrupt checkpoints, DDP."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from ._text_helpers import one_thread, TINY, small_text, train, weights  # noqa: F401 (autouse fixture)
from lstmkit.cli import main
from lstmkit.interop import checkpoint as ckpt
from lstmkit.tasks.text.task import TextTask
from lstmkit.tasks.runs import load_run
from lstmkit.train import TrainConfig, fit, learning_rate

SRC = str(Path(__file__).resolve().parents[1] / "src")


class Killed(Exception):
    pass


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted 12-step run with every stochastic regulariser on."""
    tmp = tmp_path_factory.mktemp("ref")
    text = small_text(tmp)
    assert train(tmp / "run", text, "--steps", "12", *REG) == 0
    return text, weights(tmp / "run")


REG = ["--dropout", "0.1", "--weight-drop", "0.2", "--zoneout", "0.1", "--recurrent-dropout", "0.1",
       "--layers", "2"]


@pytest.mark.parametrize("kill_at", [0, 3, 4, 9])
def test_resume_after_kill_is_bit_identical(reference, tmp_path, monkeypatch, kill_at):
    text, want = reference
    real = TextTask.batch

    def batch(self, step):                     # the process "dies" before step kill_at runs
        if step == kill_at:
            raise Killed
        return real(self, step)

    monkeypatch.setattr(TextTask, "batch", batch)
    with pytest.raises(Killed):
        train(tmp_path / "run", text, "--steps", "12", *REG)
    monkeypatch.undo()
    assert main(["train", "--resume", str(tmp_path / "run"), "--quiet", "--sample-length", "0"]) == 0
    got = weights(tmp_path / "run")
    assert got.keys() == want.keys()
    for k in want:
        assert torch.equal(got[k], want[k]), k
    steps = [int(line.split(",")[0]) for line in (tmp_path / "run/metrics.csv").read_text().splitlines()[1:]]
    assert steps == sorted(set(steps)) and steps[-1] == 12        # no duplicated rows after resume


@pytest.mark.slow
def test_kill_9_mid_run_then_resume_is_bit_identical(reference, tmp_path):
    """A real SIGKILL at an arbitrary moment (checkpoints every step, so often mid-write)."""
    text, _ = reference
    args = ["train", "--text", str(text), "--out", str(tmp_path / "run"), *TINY, "--steps", "24",
            "--checkpoint-every", "1"]
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "lstmkit", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt_file = tmp_path / "run" / ckpt.CHECKPOINT
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if ckpt.load_tensors(ckpt_file)[1]["step"] >= 4:
                break
        except ckpt.CheckpointError:
            pass
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    _, meta = ckpt.load_tensors(ckpt_file)           # whatever the moment, the file is whole
    assert 4 <= meta["step"] < 24, "the kill came too late to test anything"
    (tmp_path / "run" / ".checkpoint.safetensors.x1.tmp").write_bytes(b"half a write")
    assert main(["train", "--resume", str(tmp_path / "run"), "--quiet", "--sample-length", "0"]) == 0
    assert not list((tmp_path / "run").glob(".*.tmp"))
    assert main(["train", "--text", str(text), "--out", str(tmp_path / "ref"), *TINY, "--steps", "24"]) == 0
    got, want = weights(tmp_path / "run"), weights(tmp_path / "ref")
    for k in want:
        assert torch.equal(got[k], want[k]), k
    # resuming a finished run changes nothing
    assert main(["train", "--resume", str(tmp_path / "run"), "--quiet", "--sample-length", "0"]) == 0
    assert all(torch.equal(v, want[k]) for k, v in weights(tmp_path / "run").items())


def test_interrupted_write_leaves_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "c.safetensors"
    ckpt.save_tensors(path, {"w": torch.arange(4.0)}, {"step": 1})

    def crash(*a, **k):
        raise OSError("disk died")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        ckpt.save_tensors(path, {"w": torch.zeros(4)}, {"step": 2})
    monkeypatch.undo()
    tensors, meta = ckpt.load_tensors(path)
    assert meta == {"step": 1} and torch.equal(tensors["w"], torch.arange(4.0))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.safetensors"]     # no temp file left


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage", "config"])
def test_corrupt_checkpoint_refused_with_one_line(reference, tmp_path, capsys, damage):
    text, _ = reference
    run = tmp_path / "run"
    assert train(run, text, "--steps", "4") == 0
    target = run / (ckpt.CONFIG if damage == "config" else ckpt.CHECKPOINT)
    data = bytearray(target.read_bytes())
    if damage == "truncate":
        data = data[:len(data) // 2]
    elif damage == "flip":
        data[-10] ^= 0xFF                       # inside the tensor data: only the checksum sees it
    else:
        data = bytearray(b"not a checkpoint at all")
    target.write_bytes(bytes(data))
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "error" in err and "Traceback" not in err
    if damage != "config":                      # the model file is separate and still loads
        assert main(["generate", str(run), "--sample-length", "5"]) == 0


def test_incompatible_checkpoint_refused(tmp_path):
    model = torch.nn.Linear(3, 2)
    ckpt.save_tensors(tmp_path / "m.safetensors", {"weight": torch.zeros(5, 5), "bias": torch.zeros(2)}, {})
    tensors, _ = ckpt.load_tensors(tmp_path / "m.safetensors")
    with pytest.raises(ckpt.CheckpointError, match="incompatible shape for weight"):
        ckpt.load_clean_state_dict(model, tensors)
    with pytest.raises(ckpt.CheckpointError, match="not a run directory"):
        load_run(tmp_path)


def test_schedule_warmup_then_cosine():
    cfg = TrainConfig(steps=100, lr=1.0, warmup=10, min_lr_ratio=0.1)
    assert learning_rate(cfg, 0, 0.0) == pytest.approx(0.1)
    assert learning_rate(cfg, 9, 0.09) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + torch.cos(torch.tensor(0.09 * 3.14159265)).item()), rel=1e-6)
    assert learning_rate(cfg, 99, 1.0) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="budget"):
        TrainConfig()
    with pytest.raises(ValueError, match="steps"):
        TrainConfig(steps=0)


def _ddp_rank(rank: int, port: int, argv: list[str], status) -> None:
    """One rank, as torchrun would start it (same environment variables, same CLI)."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    try:
        status.put((rank, main(argv)))
    except BaseException as e:                  # report, never hang the other rank silently
        status.put((rank, repr(e)))


def test_ddp_two_processes_match_one(reference, tmp_path):
    """2 CPU processes (gloo), same global batch, no stochastic regulariser: the weights
    agree with one process to 1e-5 (only the float summation order differs; measured 1.5e-8).
    The ranks are forked from this process (torch already imported: seconds, not a minute);
    ``torchrun --standalone --nproc-per-node 2 -m lstmkit train`` sets the same variables."""
    text, _ = reference
    common = ["train", "--text", str(text), *TINY, "--steps", "6", "--sample-length", "0"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("fork")
    status = ctx.Queue()
    procs = [ctx.Process(target=_ddp_rank, args=(r, port, [*common, "--out", str(tmp_path / "ddp")], status))
             for r in range(2)]
    for p in procs:
        p.start()
    results = dict(status.get(timeout=240) for _ in procs)
    for p in procs:
        p.join(timeout=60)
    assert results == {0: 0, 1: 0}, results
    assert main([*common, "--out", str(tmp_path / "one")]) == 0
    got, want = weights(tmp_path / "ddp"), weights(tmp_path / "one")
    worst = max((got[k] - want[k]).abs().max().item() for k in want)
    assert worst < 1e-5, worst
    assert json.loads((tmp_path / "ddp" / "config.json").read_text())["train"]["steps"] == 6


class Tiny:
    """A task small enough to train in milliseconds: fit y = 1 from x in {0, 1, 2}."""

    unit, items_per_step, metric_names = "item", 4, ("val",)

    def __init__(self, stop_after: int | None = None):
        self.evals, self.stop_after = 0, stop_after

    def shard(self, rank, world): pass
    def batch(self, step): return torch.full((4, 1), float(step % 3))
    def loss(self, model, batch): return (model(batch) - 1).square().mean()
    def state_tensors(self): return {}
    def load_state_tensors(self, tensors): pass

    def evaluate(self, model):
        self.evals += 1
        return {"val": float(self.evals)}

    def should_stop(self):
        return self.stop_after is not None and self.evals >= self.stop_after


def test_should_stop_ends_training_at_that_evaluation(tmp_path):
    """A task's optional should_stop() (early stopping) ends fit() after that evaluation."""
    task = Tiny(stop_after=3)
    r = fit(task, torch.nn.Linear(1, 1), TrainConfig(steps=50, eval_every=5, ckpt_every=5, log_every=5),
            tmp_path, progress=False)
    assert r.step == 15 and task.evals == 3


def test_fit_without_a_run_directory_writes_nothing(tmp_path, monkeypatch):
    """run_dir=None: no checkpoint, metrics.csv or plot anywhere (working folder and temporary
    folder stay empty); the history and the weight average come back in the result."""
    work, tmp = tmp_path / "work", tmp_path / "tmp"
    work.mkdir(), tmp.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    monkeypatch.setenv("TMPDIR", str(tmp))
    torch.manual_seed(0)
    model = torch.nn.Linear(1, 1)
    r = fit(Tiny(), model, TrainConfig(steps=12, eval_every=4, log_every=2, ema=0.5), progress=False)
    assert list(work.iterdir()) == [] and list(tmp.iterdir()) == []
    assert [row["step"] for row in r.history] == [2, 4, 6, 8, 10, 12]
    assert [row.get("val") for row in r.history] == [None, 1.0, None, 2.0, None, 3.0] and r.metrics == {"val": 3.0}
    assert r.averaged is not None and not torch.equal(r.averaged.weight, model.weight)
    with pytest.raises(ValueError, match="resume"):
        fit(Tiny(), model, TrainConfig(steps=2), resume=True, progress=False)


def test_resume_with_a_weight_average_is_bit_identical(tmp_path, monkeypatch):
    """The weight average (ema) is part of the checkpoint: a killed and resumed run ends
    with the same weights and the same average as one never interrupted."""
    cfg = TrainConfig(steps=10, eval_every=5, ckpt_every=1, ema=0.9, optimizer="adam", weight_decay=0.0,
                      schedule="constant", lr=0.1)
    torch.manual_seed(0)
    want = torch.nn.Linear(1, 1)
    start = {k: v.clone() for k, v in want.state_dict().items()}
    ref = fit(Tiny(), want, cfg, tmp_path / "ref", progress=False)

    def batch(self, step):
        if step == 6:
            raise Killed
        return torch.full((4, 1), float(step % 3))

    got = torch.nn.Linear(1, 1)
    got.load_state_dict(start)
    monkeypatch.setattr(Tiny, "batch", batch)
    with pytest.raises(Killed):
        fit(Tiny(), got, cfg, tmp_path / "run", progress=False)
    monkeypatch.undo()
    r = fit(Tiny(), got, cfg, tmp_path / "run", resume=True, progress=False)
    for k in start:
        assert torch.equal(got.state_dict()[k], want.state_dict()[k]), k
        assert torch.equal(r.averaged.state_dict()[k], ref.averaged.state_dict()[k]), k


def test_optimizer_and_schedule_choices():
    cfg = TrainConfig(steps=10, lr=0.5, optimizer="adam", weight_decay=0.0, schedule="constant")
    assert [learning_rate(cfg, s, s / 10) for s in (0, 5, 9)] == [0.5, 0.5, 0.5]
    for bad in ({"optimizer": "sgd"}, {"schedule": "step"}, {"optimizer": "adam"}, {"ema": 1.0}):
        with pytest.raises(ValueError):
            TrainConfig(steps=10, **bad)                  # adam with the default weight decay: refused


def test_load_run_dispatches_on_the_task_name(tmp_path, monkeypatch):
    from lstmkit.tasks import runs
    run = tmp_path / "run"
    run.mkdir()
    ckpt.write_json(run / ckpt.CONFIG, {"lstmkit_format": ckpt.FORMAT, "task": "toy"})
    with pytest.raises(ckpt.CheckpointError, match=r"unknown task 'toy' in config.json \(this lstmkit loads "
                                                    r"runs of: text\)"):
        load_run(run)
    monkeypatch.setitem(runs.LOADERS, "toy", lambda path, cfg, device: ("model", (path, cfg["task"], device)))
    assert load_run(run, device="meta") == ("model", (run, "toy", "meta"))


class Scored(Tiny):
    """Tiny with a best_metric: its evaluations score ``scores`` in turn."""

    best_metric = "val"

    def __init__(self, scores, stop_after=None):
        super().__init__(stop_after)
        self.scores = scores

    def evaluate(self, model):
        self.evals += 1
        return {"val": self.scores[self.evals - 1]}


def test_the_run_model_is_the_best_evaluation_and_the_checkpoint_the_latest(tmp_path):
    """model.safetensors holds the weights of the lowest evaluation (step 10 here), the
    checkpoint the last step's, and the checkpoint meta names the best."""
    torch.manual_seed(0)
    model = torch.nn.Linear(1, 1)
    seen = {}
    task = Scored([3.0, 1.0, 2.0, 4.0])
    real = task.evaluate
    task.evaluate = lambda m: (seen.__setitem__(task.evals + 1, {k: v.clone() for k, v in m.state_dict().items()}),
                               real(m))[1]
    r = fit(task, model, TrainConfig(steps=20, eval_every=5, ckpt_every=5, log_every=5), tmp_path, progress=False)
    assert r.best == {"metric": "val", "value": 1.0, "step": 10}
    best, meta = ckpt.load_tensors(tmp_path / ckpt.MODEL)
    assert meta["step"] == 10 and all(torch.equal(best[k], seen[2][k]) for k in best)
    last, cmeta = ckpt.load_tensors(tmp_path / ckpt.CHECKPOINT)
    assert cmeta["step"] == 20 and cmeta["best"] == r.best
    assert torch.equal(last["model.weight"], model.weight.detach()) and not torch.equal(best["weight"], model.weight)


def test_patience_stops_after_evaluations_without_a_new_best(tmp_path):
    r = fit(Scored([3.0, 1.0, 2.0, 2.5, 0.5]), torch.nn.Linear(1, 1),
            TrainConfig(steps=50, eval_every=5, ckpt_every=5, log_every=5, patience=2), tmp_path, progress=False)
    assert r.step == 20 and r.best["step"] == 10
    with pytest.raises(ValueError, match="patience"):
        TrainConfig(steps=5, patience=-1)


def test_resume_keeps_the_best_exactly(tmp_path, monkeypatch):
    """Killed after a new best and before the next checkpoint, a resumed run ends with the
    same best model and the same best record as one never interrupted."""
    cfg = TrainConfig(steps=20, eval_every=2, ckpt_every=5, log_every=2)
    scores = [5.0, 4.0, 3.0, 2.0, 2.5, 2.6, 2.7, 2.8, 2.9, 3.0]      # the best: step 8
    torch.manual_seed(0)
    start = torch.nn.Linear(1, 1)
    init = {k: v.clone() for k, v in start.state_dict().items()}
    ref = fit(Scored(scores), start, cfg, tmp_path / "ref", progress=False)

    class Dies(Scored):
        def batch(self, step):
            if step == 9 and not getattr(self, "resumed", False):    # the step-8 best is written
                raise Killed
            return super().batch(step)

    got = torch.nn.Linear(1, 1)
    got.load_state_dict(init)
    with pytest.raises(Killed):
        fit(Dies(scores), got, cfg, tmp_path / "run", progress=False)
    task = Dies(scores)
    assert ckpt.load_tensors(tmp_path / "run" / ckpt.CHECKPOINT)[1]["best"]["step"] == 4
    task.resumed, task.evals = True, 2            # the evaluations up to the step-5 checkpoint
    r = fit(task, got, cfg, tmp_path / "run", resume=True, progress=False)
    assert r.best == ref.best == {"metric": "val", "value": 2.0, "step": 8}
    a, b = ckpt.load_tensors(tmp_path / "ref" / ckpt.MODEL)[0], ckpt.load_tensors(tmp_path / "run" / ckpt.MODEL)[0]
    assert all(torch.equal(a[k], b[k]) for k in a)
