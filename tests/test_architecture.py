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


def test_the_contract_fails_on_an_upward_import(tmp_path):
    """The checker is real: a core module that imports the gallery breaks the contract."""
    import grimp

    graph = grimp.build_graph("clipseek")
    graph.add_import(importer="clipseek.core.images", imported="clipseek.gallery.store")
    layers = ["clipseek.gallery", "clipseek.core"]
    illegal = graph.find_illegal_dependencies_for_layers(layers=layers, containers=set())
    assert illegal, "an upward import from core to gallery went unnoticed"
