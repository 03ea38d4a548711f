"""The xLSTM's memory-lab tasks (parity for the sLSTM, multi-query associative recall for the
mLSTM): sequences as specified, chance baselines that a memoryless readout meets, and the
registry entries (``variants.XLSTM_VARIANTS``) training in the lab's model."""
import pytest
import torch

from lstmkit.tasks.memory import TASKS, make_task
from lstmkit.tasks.memory.models import SequenceModel
from lstmkit.tasks.memory.mqar import IGNORE
from lstmkit.variants import XLSTM_VARIANTS, VARIANTS, variant
from lstmkit.xlstm import mLSTM, sLSTM


def test_parity_sequences_and_labels():
    task = make_task("parity", 20)
    b = task.sample(64, torch.Generator().manual_seed(0))
    assert b.x.shape == (20, 64, 2) and b.y.shape == (64,)
    assert int(b.lengths.min()) >= 10 and int(b.lengths.max()) <= 20
    for j in range(64):
        n = int(b.lengths[j])
        bits = b.x[:n, j].argmax(-1)
        assert bool((b.x[:n, j].sum(-1) == 1).all()) and bool((b.x[n:, j] == 0).all())
        assert int(bits.sum()) % 2 == int(b.y[j])


def test_mqar_sequences_and_targets():
    task = make_task("mqar", 32)
    K, V = task.pairs, task.vocab
    assert (K, V, task.input_size, task.output_size) == (8, 16, 32, 16)
    b = task.sample(16, torch.Generator().manual_seed(0))
    assert b.x.shape == (32, 16, 32) and b.y.shape == (32, 16)
    keys, values = b.x[..., :V], b.x[..., V:]
    assert bool((keys.sum(-1) == 1).all()) and bool((values[:K].sum(-1) == 1).all())
    assert bool((values[K:] == 0).all()) and bool((b.y[:K] == IGNORE).all())
    for j in range(16):
        k, v = keys[:, j].argmax(-1), values[:K, j].argmax(-1)
        assert len(set(k[:K].tolist())) == K
        table = dict(zip(k[:K].tolist(), v.tolist()))
        for t in range(K, 32):
            assert int(b.y[t, j]) == table[int(k[t])]


@pytest.mark.parametrize("name", ["parity", "mqar"])
def test_a_memoryless_guess_scores_at_chance(name):
    task = make_task(name, 40)
    b = task.sample(4000, torch.Generator().manual_seed(1))
    T, B = b.x.shape[:2]
    shape = (T, B, task.output_size) if task.per_step else (B, task.output_size)
    out = torch.randn(shape, generator=torch.Generator().manual_seed(2))
    assert abs(task.score(out, b).error - task.baseline) < 0.03
    assert not task.solved(task.score(out, b))
    perfect = torch.nn.functional.one_hot(b.y.clamp(min=0), task.output_size).float()
    assert task.solved(task.score(perfect, b))


def test_tasks_registered():
    assert TASKS["parity"].name == "parity" and TASKS["mqar"].name == "mqar"
    with pytest.raises(ValueError, match="length"):
        make_task("mqar", 4)


@pytest.mark.parametrize("name,cls", [("slstm", sLSTM), ("mlstm", mLSTM)])
@pytest.mark.parametrize("task_name", ["parity", "mqar"])
def test_registry_and_memory_lab(name, cls, task_name):
    assert type(variant(name).build(4, 8)) is cls
    assert name in XLSTM_VARIANTS and name not in VARIANTS
    task = make_task(task_name, 16)
    model = SequenceModel(name, task, 8)
    assert type(model.rnn) is cls
    batch = task.sample(4, torch.Generator().manual_seed(0))
    out = model(batch)
    task.loss(out, batch).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.rnn.parameters())


def test_memory_cli_accepts_the_xlstm_cells():
    from lstmkit.cli._common import UsageError, cells

    assert cells("slstm,mlstm,lstm", many=True, parallel=True) == ["slstm", "mlstm", "lstm"]
    with pytest.raises(UsageError, match="--cell"):
        cells("slstm", many=True)



def test_memory_command_runs_the_xlstm_cells_on_their_tasks(tmp_path):
    """`lstmkit memory --task parity|mqar --cell slstm,mlstm` end to end, small."""
    import json

    from lstmkit.cli import main

    for task in ("parity", "mqar"):
        out = tmp_path / f"{task}.json"
        assert main(["memory", "--task", task, "--length", "8", "--cell", "slstm,mlstm", "--budget", "64",
                     "--test-size", "32", "--quiet", "--out", str(tmp_path), "--json", str(out)]) == 0
        assert out.exists() and "slstm" in out.read_text() and "mlstm" in out.read_text()
        json.loads(out.read_text())
