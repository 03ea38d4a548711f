"""The house (DESIGN.md §1) as checks: no import cycle, data flows one way
(CLI → task → train loop → layers → engine → cell maths), small modules, one optimizer loop.

Every import counts, the ones inside functions included: a cycle hidden behind a
function-level import is still a cycle."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "lstmkit"

# Rank of each top-level part: a module may import its own part or parts of lower rank only.
# The CLI is the outermost user: it may import the public package (lstmkit/__init__.py).
RANKS = {
    "cells": 0, "_checks": 0, "_version": 0,
    "engines": 1,
    "specs": 2,
    "layers": 3, "cell_modules": 3, "trace": 3, "parallel": 3, "xlstm": 3, "pararnn": 3,
    "variants": 4, "interop": 4,
    "train": 5, "report": 5, "quant": 5,
    "tasks": 6, "benchmark": 6, "benchmark_long": 6,
    "__init__": 7, "benchmark_latency": 7, "cli": 8, "__main__": 9,
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in SRC.rglob("*.py")}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Every lstmkit module ``name`` imports, at any depth of the file (functions included)."""
    is_pkg = path.name == "__init__.py"
    package = name if is_pkg else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "lstmkit"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.split(".")[0] != "lstmkit":
                continue
            subs = {f"{mod}.{a.name}" for a in node.names} & known
            out |= subs if subs else {mod}
    return {m for m in out if m in known and m != name}


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    return {n: _imports(n, p, set(mods)) for n, p in mods.items()}


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (Tarjan)."""
    index, low, stack, on, comps = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return comps


def test_every_part_has_a_rank():
    assert {_part(m) for m in _modules()} <= set(RANKS)


def test_no_import_cycle():
    assert _cycles(_graph()) == []


def test_imports_run_down_the_line():
    up = [(a, b) for a, deps in _graph().items() for b in deps
          if _part(a) != _part(b) and RANKS[_part(b)] >= RANKS[_part(a)]]
    assert up == []


def test_cycle_finder_finds_a_cycle():
    """The two checks above can fail: a two-module cycle and an upward import are seen."""
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_relative_imports_resolve(tmp_path):
    known = {"lstmkit.engines", "lstmkit.engines.fused", "lstmkit.engines.fused.common", "lstmkit.cells"}
    f = tmp_path / "lstm.py"
    f.write_text("from .common import x\nfrom ...cells import y\ndef f():\n    from .. import fused\n")
    assert _imports("lstmkit.engines.fused.lstm", f, known) == {
        "lstmkit.engines.fused.common", "lstmkit.cells", "lstmkit.engines.fused"}


def test_modules_are_small():
    big = {str(p.relative_to(ROOT)): n for p in SRC.rglob("*.py")
           if (n := len(p.read_text().splitlines())) > 400}
    assert big == {}


def test_one_optimizer_loop():
    """Only the shared training loop makes optimizers (src/ and benchmarks/)."""
    files = [*SRC.rglob("*.py"), *(ROOT / "benchmarks").rglob("*.py")]
    makers = sorted(str(p.relative_to(ROOT)) for p in files if "torch.optim." in p.read_text()
                    and ("AdamW(" in p.read_text() or "Adam(" in p.read_text() or "SGD(" in p.read_text()))
    assert makers == ["src/lstmkit/train.py"]
