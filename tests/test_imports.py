"""The import graph: every module, imports inside functions included (``TYPE_CHECKING`` blocks excluded).

Layers, each importing only the ones before it: core (``talkbench/``) -> pipelines -> models ->
benchmark -> app (``talkbench/app/``). No cycles anywhere, no arrow upward.
"""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import ROOT

ROOTS = {"talkbench": "talkbench", "pipelines": "talkbench.pipelines", "models": "talkbench.models",
         "benchmark": "talkbench.benchmark"}
LAYERS = ["core", "pipelines", "models", "benchmark", "app"]


def modules() -> dict[str, Path]:
    out = {}
    for folder, pkg in ROOTS.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join((pkg, *parts))] = path
    return out


def layer(module: str) -> int:
    for i, prefix in ((4, "talkbench.app"), (3, "talkbench.benchmark"), (2, "talkbench.models"),
                      (1, "talkbench.pipelines")):
        if module == prefix or module.startswith(prefix + "."):
            return i
    return 0


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The talkbench modules ``name`` imports (a ``from pkg import sub`` counts as importing ``pkg.sub``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_pkg = path.name == "__init__.py"
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for sub in child.orelse:
                    visit(sub)
                continue
            if isinstance(child, ast.Import):
                found.update(a.name for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    pkg = name if is_pkg else name.rpartition(".")[0]
                    for _ in range(child.level - 1):
                        pkg = pkg.rpartition(".")[0]
                    base = f"{pkg}.{base}" if base else pkg
                for a in child.names:
                    found.add(f"{base}.{a.name}" if f"{base}.{a.name}" in known else base)
            visit(child)

    visit(tree)
    out = set()
    for target in found:
        while target and target not in known:  # import a.b.c of a non-module attribute -> its module
            target = target.rpartition(".")[0]
        if target and target.startswith("talkbench") and target != name:
            out.add(target)
    return out


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports_of(name, path, set(mods)) for name, path in mods.items()}


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in g.get(v, ()):
            if w not in index:
                strong(w)
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
                out.append(sorted(comp))

    import sys

    sys.setrecursionlimit(10_000)
    for v in sorted(g):
        if v not in index:
            strong(v)
    return out


def upward(g: dict[str, set[str]]) -> list[str]:
    return sorted(f"{a} ({LAYERS[layer(a)]}) -> {b} ({LAYERS[layer(b)]})"
                  for a, deps in g.items() for b in deps if layer(b) > layer(a))


def test_the_graph_sees_function_level_imports_and_skips_type_checking(tmp_path):
    src = tmp_path / "m.py"
    src.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import talkbench.app.cli\n"
                   "def f():\n    from talkbench.models import train\n")
    assert imports_of("talkbench.x", src, {"talkbench.models", "talkbench.models.train", "talkbench.app.cli"}) == {
        "talkbench.models.train"}
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles():
    found = cycles(graph())
    assert not found, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_no_upward_imports_between_layers():
    found = upward(graph())
    assert not found, "upward imports (core -> pipelines -> models -> benchmark -> app):\n" + "\n".join(found)
