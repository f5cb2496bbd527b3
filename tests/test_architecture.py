"""The house's import rules (ARCHITECTURE.md): floors only import downwards, and no module imports
itself back through others. Both are checked on the real import graph of the installed package."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _graph():
    import grimp

    return grimp.build_graph("clipseek")


def test_import_contract_holds():
    """The layers contract in pyproject.toml, run by import-linter as CI would."""
    exe = Path(sys.executable).with_name("lint-imports")
    out = subprocess.run([str(exe), "--config", str(ROOT / "pyproject.toml")], capture_output=True,
                         text=True, cwd=ROOT)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "1 kept, 0 broken" in out.stdout


def test_no_import_cycles():
    """No module reaches itself through imports (lazy imports inside functions count too)."""
    graph = _graph()
    modules = sorted(m for m in graph.modules if m.startswith("clipseek"))
    edges = {m: {d for d in graph.find_modules_directly_imported_by(m) if d.startswith("clipseek.")}
             for m in modules}
    cycles = []
    state: dict[str, int] = {}

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        stack.append(m)
        for d in sorted(edges.get(m, ())):
            if state.get(d) == 1:
                cycles.append(stack[stack.index(d):] + [d])
            elif d not in state:
                visit(d, stack)
        stack.pop()
        state[m] = 2

    for m in modules:
        if m not in state:
            visit(m, [])
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def _pyproject_layers() -> list[list[str]]:
    """The floors as pyproject.toml's [tool.importlinter] layers contract states them, top floor first."""
    import tomllib

    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    layers = [c for c in conf["contracts"] if c["type"] == "layers"]
    assert len(layers) == 1, "expected exactly one layers contract in pyproject.toml"
    return [[m.strip() for m in floor.split("|")] for floor in layers[0]["layers"]]


def _documented_floors() -> list[list[str]]:
    """The floors block of ARCHITECTURE.md (numbered lines, `a | .b` siblings), top floor first."""
    import re

    text = (ROOT / "ARCHITECTURE.md").read_text()
    block = text.split("## The floors", 1)[1].split("```", 2)[1]
    floors = []
    for line in block.splitlines():
        m = re.match(r"\s*(\d+)\s+(\S+(?:\s*\|\s*\S+)*)", line)
        if m:
            names = [n.strip() for n in m.group(2).split("|")]
            floors.append((int(m.group(1)), ["clipseek" + n if n.startswith(".") else n for n in names]))
    assert [n for n, _ in floors] == list(range(1, len(floors) + 1)), floors
    return [names for _, names in reversed(floors)]


def test_every_subpackage_sits_on_exactly_one_floor():
    """Each top-level module and subpackage of src/clipseek is named by exactly one pyproject layer."""
    pkg = ROOT / "src" / "clipseek"
    children = {f"clipseek.{p.stem}" for p in pkg.iterdir()
                if (p.is_dir() and (p / "__init__.py").exists())
                or (p.suffix == ".py" and p.stem not in ("__init__", "__main__"))}
    named = [m for floor in _pyproject_layers() for m in floor]
    dupes = sorted({m for m in named if named.count(m) > 1})
    assert not dupes, f"on more than one floor: {dupes}"
    assert sorted(children - set(named)) == [], "not on any floor in pyproject.toml"
    assert sorted(set(named) - children) == [], "a floor names a module that does not exist"


def test_pyproject_layers_are_the_documented_floors():
    """pyproject's layer order is ARCHITECTURE.md's floors block, floor by floor (siblings as sets)."""
    ours = [set(f) for f in _pyproject_layers()]
    documented = [set(f) for f in _documented_floors()]
    assert ours == documented


def test_the_contract_fails_on_an_upward_import():
    """The pyproject contract is real: an upward import and a sibling import each break it."""
    import grimp

    layers = [grimp.Layer(*floor, independent=True) for floor in _pyproject_layers()]
    graph = _graph()
    assert not graph.find_illegal_dependencies_for_layers(layers=layers, containers=set())
    graph.add_import(importer="clipseek.core.images", imported="clipseek.gallery.store")
    illegal = graph.find_illegal_dependencies_for_layers(layers=layers, containers=set())
    assert {(d.importer, d.imported) for d in illegal} == {("clipseek.core", "clipseek.gallery")}
    graph = _graph()
    graph.add_import(importer="clipseek.gallery.store", imported="clipseek.training")
    illegal = graph.find_illegal_dependencies_for_layers(layers=layers, containers=set())
    assert {(d.importer, d.imported) for d in illegal} == {("clipseek.gallery", "clipseek.training")}
