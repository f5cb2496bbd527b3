"""The `clipseek` command: a thin shell over the library. Parse, call, print; no logic here.

Each command lives in its own module and registers itself on `app`. Expected errors (ClipseekError,
bad arguments) become one line on stderr and a non-zero exit; no tracebacks.
"""

from __future__ import annotations

import logging
import sys

import typer

from clipseek.cli.app import app

try:  # a typer that vendors click exports the base class of its exceptions
    from typer import TyperException as CommandLineError
except ImportError:  # pragma: no cover - older typer raises click's own
    from click import ClickException as CommandLineError  # type: ignore[assignment]

# Command modules register themselves on `app` when imported.
from clipseek.cli import (  # noqa: F401
    classify_cmd,
    demo_cmd,
    dupes_cmd,
    embed_cmd,
    eval_cmd,
    export_cmd,
    fit_cmd,
    index_cmd,
    models_cmd,
    search_cmd,
    serve_cmd,
    synth_cmd,
    train_cmd,
    undo_cmd,
)

EXIT_FAILURE = 1  # the work could not be done (model not loadable, a job failed, a corrupt shard)
EXIT_USAGE = 2    # bad arguments: nothing was attempted


class _ModelNotes(logging.Handler):
    """The model loader's notes as `clipseek: ...` lines on the current stderr: warnings (a fallback to
    torch, a slow dtype) and progress notes (an export under way, its time and size), also when stderr
    is not a terminal (a piped first run must not sit silent for the export). The library only logs them."""

    def emit(self, record: logging.LogRecord) -> None:
        print(f"clipseek: {record.getMessage()}", file=sys.stderr, flush=True)


def _show_model_notes() -> None:
    # the model loader's notes, and the store's (rows whose stored vector cannot be used)
    for name in ("clipseek.model", "clipseek.gallery.store"):
        log = logging.getLogger(name)
        if not any(isinstance(h, _ModelNotes) for h in log.handlers):
            log.addHandler(_ModelNotes())
            log.setLevel(logging.INFO)


def main(argv: list[str] | None = None) -> int:
    from clipseek.errors import ClipseekError, UsageError

    _show_model_notes()
    try:
        rv = app(args=argv, prog_name="clipseek", standalone_mode=False)
        if rv == 130:  # click turns Ctrl-C into a return value of 130 when not in standalone mode
            print("clipseek: interrupted", file=sys.stderr)
        return int(rv or 0)
    except typer.Exit as e:
        return e.exit_code
    except typer.Abort:
        print("clipseek: interrupted", file=sys.stderr)
        return 130
    except CommandLineError as e:
        if type(e).__name__ == "NoArgsIsHelpError":  # `clipseek GROUP` alone: its help, exit 0
            print(e.format_message())
            return 0
        print(f"clipseek: error: {e.format_message()} (see --help)", file=sys.stderr)
        return EXIT_USAGE
    except UsageError as e:
        print(f"clipseek: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except ClipseekError as e:  # a failure at run time: the model, a job, a file could not be used
        print(f"clipseek: error: {e}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print("clipseek: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
