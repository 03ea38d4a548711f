"""The command line: every subcommand is listed and has -h; env and demo run."""
import json
import subprocess
import sys

import pytest

from lstmkit.cli import COMMANDS, build_parser, main


def test_help_lists_every_subcommand():
    text = build_parser().format_help()
    for name in COMMANDS:
        assert name in text


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_subcommand_has_help(name, capsys):
    with pytest.raises(SystemExit) as e:
        main([name, "-h"])
    assert e.value.code == 0
    assert "usage: lstmkit " + name in capsys.readouterr().out


def test_env_writes_json(tmp_path, capsys):
    assert main(["env", "--json", str(tmp_path / "env.json")]) == 0
    env = json.loads((tmp_path / "env.json").read_text())
    assert env["torch"].startswith("2.") and env["cpu_count"] >= 1


def test_demo_runs_as_a_module():
    out = subprocess.run([sys.executable, "-m", "lstmkit", "demo"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "max |i - (1 - f)| = 0.0e+00" in out.stdout


def test_no_command_prints_help_and_exits_2(capsys):
    assert main([]) == 2
