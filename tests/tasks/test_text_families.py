"""The language model with the families beyond torch.nn's: MinLSTM/MinGRU (Feng et al. 2024),
QRNN (Bradbury et al. 2016) and sLSTM/mLSTM (xLSTM). Each trains through the CLI, carries its own state between
truncated-BPTT segments (the mLSTM's matrix memory included), and resumes bit for bit."""
import pytest
import torch

from lstmkit.cli import main
from lstmkit.tasks.text.model import LanguageModel, LMConfig
from lstmkit.tasks.text.task import TextTask

from .._text_helpers import one_thread, small_text, train, weights  # noqa: F401  (fixture)

FAMILIES = ("minlstm", "mingru", "qrnn", "slstm", "mlstm")


class Killed(Exception):
    pass


@pytest.mark.parametrize("cell", FAMILIES)
def test_trains_and_resumes_bit_identical(cell, tmp_path, monkeypatch):
    text = small_text(tmp_path)
    assert train(tmp_path / "whole", text, "--cell", cell, "--steps", "10", "--sample-length", "0") == 0
    want = weights(tmp_path / "whole")
    real = TextTask.batch

    def batch(self, step):                      # the process "dies" before step 5 runs
        if step == 5:
            raise Killed
        return real(self, step)

    monkeypatch.setattr(TextTask, "batch", batch)
    with pytest.raises(Killed):
        train(tmp_path / "run", text, "--cell", cell, "--steps", "10", "--sample-length", "0")
    monkeypatch.undo()
    assert main(["train", "--resume", str(tmp_path / "run"), "--quiet", "--sample-length", "0"]) == 0
    got = weights(tmp_path / "run")
    assert got.keys() == want.keys() and any(k.startswith("rnn.") for k in got)
    for k in want:
        assert torch.equal(got[k], want[k]), k


@pytest.mark.parametrize("cell", FAMILIES)
def test_state_carries_across_segments(cell):
    """Two segments with the state carried give the logits of one call over both."""
    torch.manual_seed(0)
    m = LanguageModel(LMConfig(vocab_size=11, cell=cell, embed=6, hidden=8, layers=2)).eval()
    tokens = torch.randint(0, 11, (12, 3))
    with torch.no_grad():
        whole, _ = m(tokens)
        a, s = m(tokens[:5])
        b, _ = m(tokens[5:], tuple(s) if not isinstance(s, torch.Tensor) else s)   # as a resumed task passes it
    torch.testing.assert_close(torch.cat([a, b]), whole, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("cell, options, message", [
    ("slstm", {"hidden": 10}, "hidden"),
    ("mingru", {"zoneout": 0.1}, "zoneout"),
    ("mlstm", {"weight_drop": 0.2}, "weight_drop"),
    ("minlstm", {"proj": 4}, "proj"),
])
def test_options_they_lack_are_refused(cell, options, message):
    with pytest.raises(ValueError, match=message):
        LMConfig(vocab_size=11, cell=cell, **options)


def test_cli_names_the_new_cells_in_its_error(capsys, tmp_path):
    assert main(["train", "--text", str(small_text(tmp_path)), "--cell", "rwkv", "--steps", "1"]) == 2
    err = capsys.readouterr().err
    assert "--cell" in err and "slstm" in err and "minlstm" in err
