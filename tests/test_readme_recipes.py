"""The README's three library recipes (classify, evaluate, search) run exactly as written, each in a
fresh interpreter, in a folder holding the synthetic shapes they name."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import cli_env

README = Path(__file__).resolve().parents[1] / "README.md"


def recipes() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Quick start: the library", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_the_readme_has_three_recipes():
    blocks = recipes()
    assert len(blocks) == 3
    assert "clipseek.classify(" in blocks[0] and "clipseek.evaluate(" in blocks[1] and ".search(" in blocks[2]


@pytest.fixture(scope="module")
def shapes_dir(tmp_path_factory) -> Path:
    from clipseek.data.synthetic import generate

    root = tmp_path_factory.mktemp("recipes")
    generate(str(root / "shapes"), n=300, seed=0, workers=1)
    return root


@pytest.mark.parametrize("k, expect", [(0, r"^\w+ \w+ \d\.\d\d .*shapes/test/.*\.png$"),
                                       (1, r"^top-1 \d+\.\d% +top-5 \d+\.\d%"),
                                       (2, r"^\d\.\d{3} .*shapes/test/.*\.png 64x64$")])
def test_recipe_runs_as_written(shapes_dir, k, expect):
    r = subprocess.run([sys.executable, "-c", recipes()[k]], cwd=shapes_dir, capture_output=True, text=True,
                       env=cli_env(), timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert re.search(expect, r.stdout, flags=re.M), r.stdout
