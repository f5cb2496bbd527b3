"""The docs site (docs/, mkdocs.yml) against the code: the CLI reference is the commands' own help, every
command has a guide page in the nav, and the README's links lead somewhere. CI also builds the site
with `mkdocs build --strict` (.ci/run), which checks the links between the pages."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


@pytest.fixture(scope="module")
def gen():
    spec = importlib.util.spec_from_file_location("gen_cli_docs", ROOT / "scripts" / "gen_cli_docs.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _commands(gen):
    """(command path, is a group) for every command under `clipseek`, as the generator walks them."""
    import typer.main

    from clipseek.cli import app

    root = typer.main.get_command(app)

    def walk(cmd, ctx):
        for sub, sub_ctx in gen._subcommands(cmd, ctx):
            yield sub_ctx.command_path, hasattr(sub, "list_commands")
            yield from walk(sub, sub_ctx)

    return list(walk(root, root.context_class(root, info_name="clipseek")))


def test_cli_reference_is_up_to_date(gen, tmp_path):
    out = tmp_path / "cli.md"
    assert gen.main(["--output", str(out)]) == 0
    fresh = out.read_text("utf-8")
    assert fresh == (DOCS / "cli.md").read_text("utf-8"), \
        "docs/cli.md is out of date: run scripts/gen_cli_docs.py"


def test_cli_reference_is_plain_markdown_of_every_command(gen):
    text = (DOCS / "cli.md").read_text("utf-8")
    assert "\x1b" not in text and not re.search(r"[╭╰│─]", text), "ANSI codes or Rich boxes in docs/cli.md"
    for path, _ in _commands(gen):
        assert f"## `{path}`\n" in text, path
    # help text that Markdown would read as HTML is escaped (`OUT/<label>/` would vanish as a tag)
    assert "OUT/&lt;label>/" in text


def test_every_command_has_a_guide_page_in_the_nav(gen):
    nav = (ROOT / "mkdocs.yml").read_text("utf-8")
    missing = [p for p, group in _commands(gen) if not group and not gen.guide_link(p)]
    assert not missing, f"document {missing} in docs/commands/NAME.md (ARCHITECTURE.md: How to add a CLI command)"
    pages = sorted(str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md"))
    assert [p for p in pages if f": {p}\n" not in nav] == [], "pages missing from the nav of mkdocs.yml"


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as dashes."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_readme_links_resolve():
    readme = (ROOT / "README.md").read_text("utf-8")
    prose = re.sub(r"```.*?```", "", readme, flags=re.S)
    anchors = {_slug(h) for h in re.findall(r"^#+ (.+)$", prose, flags=re.M)}
    links = re.findall(r"\]\(([^)\s]+)\)", prose)
    assert any(link.startswith("docs/") for link in links)
    broken = []
    for link in links:
        if re.match(r"[a-z]+:", link):
            continue
        target, _, anchor = link.partition("#")
        if target and not (ROOT / target).exists():
            broken.append(link)
        elif not target and anchor not in anchors:
            broken.append(link)
    assert not broken, f"README.md links to nothing: {broken}"
