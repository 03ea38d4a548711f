"""`lstmkit inspect RUN`: a tiny trained run end to end, and every bad input as one line, exit 2."""
import json
import re

import pytest
from torch import nn

from lstmkit.cli import main

from .._text_helpers import small_text, train


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inspect")
    assert train(folder / "run", small_text(folder), "--steps", "4", "--layers", "2") == 0
    return folder / "run"


def test_inspect_writes_the_page_and_figures(run, tmp_path, capsys):
    text = tmp_path / "t.py"
    text.write_text('def f(x):\n    return "(x)"  # c\n' * 5)
    out = tmp_path / "rep" / "report.html"
    js = tmp_path / "best.json"
    assert main(["inspect", str(run), "--text", str(text), "--out", str(out.parent), "--top", "2",
                 "--json", str(js)]) == 0
    printed = capsys.readouterr().out
    best = json.loads(js.read_text())["best"]
    assert set(best) >= {"in_string"} and all(-1 <= b["r"] <= 1 for b in best.values())
    assert f"wrote {out}" in printed and re.search(r"in_string +best unit: layer \d", printed)
    page = out.read_text(encoding="utf-8")
    data = json.loads(re.search(r'id="data">(.*?)</script>', page, re.S).group(1))
    assert data["text"] == text.read_text() and data["keys"] == [[0, 0], [1, 0]]
    assert len(data["top"]) == 2 * 5
    assert sorted(p.name for p in out.parent.iterdir()) == ["report.html", "report_memory.png",
                                                            "report_saturation.png", "report_units.png"]


def test_default_text_is_the_start_of_the_validation_text(run, tmp_path):
    out = tmp_path / "r" / "report.html"
    assert main(["inspect", str(run), "--out", str(out.parent), "--chars", "300"]) == 0
    data = json.loads(re.search(r'id="data">(.*?)</script>', out.read_text(), re.S).group(1))
    assert 0 < len(data["text"]) <= 300 and data["text"].endswith("\n")


def test_show_colours_the_first_characters_of_the_analysed_text(run, tmp_path, capsys):
    out = tmp_path / "r" / "report.html"
    assert main(["inspect", str(run), "--out", str(out.parent), "--chars", "600", "--show", "150"]) == 0
    page = out.read_text()
    data = json.loads(re.search(r'id="data">(.*?)</script>', page, re.S).group(1))
    n = int(re.search(r"(\d+) characters analysed", page).group(1))
    assert 300 < n <= 600 and 0 < len(data["text"]) <= 150 and data["text"].endswith("\n")
    assert f"the first {len(data['text'])} shown" in page
    assert max(u["start"] for u in data["top"]) > 0


def _error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("lstmkit inspect: error:")
    return err


def test_bad_input(run, tmp_path, capsys, monkeypatch):
    assert "not a run directory" in _error(capsys, ["inspect", str(tmp_path / "nope")])
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    assert "empty" in _error(capsys, ["inspect", str(run), "--text", str(empty)])
    odd = tmp_path / "odd.txt"
    odd.write_text("x = '\u2603\u00e9'\n")
    err = _error(capsys, ["inspect", str(run), "--text", str(odd)])
    assert "outside the run's vocabulary" in err and "'\u2603'" in err
    assert "--chars: expected an integer >= 1, got 0" in _error(capsys, ["inspect", str(run), "--chars", "0"])
    assert "--show: expected an integer >= 1, got -1" in _error(capsys, ["inspect", str(run), "--show", "-1"])
    from lstmkit.cli import inspect as cli_inspect
    from lstmkit.tasks.runs import load_run
    _, info = load_run(run)
    plain = nn.Sequential(nn.Embedding(300, 4), nn.LSTM(4, 4))          # torch's LSTM: nothing to trace
    monkeypatch.setattr(cli_inspect, "load_run", lambda path: (plain, info))
    ok = tmp_path / "ok.txt"
    ok.write_text("x = 1\n")
    assert "lstmkit LSTM/GRU/RNN layers or cells, found none" in \
        _error(capsys, ["inspect", str(run), "--text", str(ok)])
