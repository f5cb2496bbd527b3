"""The Typer application every command module registers on (kept apart from `main` so that
command modules never import the package that imports them)."""

from __future__ import annotations

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  rich_markup_mode=None,
                  help="Zero-shot classification, evaluation and text-to-image search with CLIP models.")



@app.callback(invoke_without_command=True)
def _root(version: bool = typer.Option(False, "--version", help="Show the version and exit.")) -> None:
    if version:
        from clipseek._version import __version__

        print(f"clipseek {__version__}")
        raise typer.Exit(0)
