"""The `clipseek` command: a thin shell over the library. Parse, call, print; no logic here.

Each command lives in its own module and registers itself on `app`. Expected errors (ClipseekError,
bad arguments) become one line on stderr and a non-zero exit; no tracebacks.
"""

from __future__ import annotations

import sys

import typer

try:  # typer >= 0.20 vendors its own copy of click
    from typer._click import exceptions as click_exc  # type: ignore
except ImportError:  # pragma: no cover - older typer uses click itself
    from click import exceptions as click_exc

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  rich_markup_mode=None,
                  help="Zero-shot classification, evaluation and text-to-image search with CLIP models.")



@app.callback(invoke_without_command=True)
def _root(version: bool = typer.Option(False, "--version", help="Show the version and exit.")) -> None:
    if version:
        from .. import __version__

        print(f"clipseek {__version__}")
        raise typer.Exit(0)


# Command modules register themselves on `app` when imported.
from . import classify_cmd, demo_cmd, embed_cmd, eval_cmd, gallery_cmd, serve_cmd, train_cmd  # noqa: E402,F401

EXIT_USAGE = 2


def main(argv: list[str] | None = None) -> int:
    from ..errors import ClipseekError

    try:
        rv = app(args=argv, prog_name="clipseek", standalone_mode=False)
        return int(rv or 0)
    except typer.Exit as e:
        return e.exit_code
    except typer.Abort:
        print("clipseek: interrupted", file=sys.stderr)
        return 130
    except getattr(click_exc, "NoArgsIsHelpError", ()) as e:
        print(e.format_message())
        return 0
    except click_exc.ClickException as e:
        print(f"clipseek: error: {e.format_message()} (see --help)", file=sys.stderr)
        return EXIT_USAGE
    except ClipseekError as e:
        print(f"clipseek: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("clipseek: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
