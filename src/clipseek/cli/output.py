r"""Shared output helpers for CLI commands: formats, stderr notes, progress bars.

File names are printed as `core.paths` says: JSON with `\udcXX` escapes for bytes that are not UTF-8,
text lines (tables, `--format paths`, CSV, messages) with `quote_path` (a name with a newline, a
control character or such bytes in double quotes with C escapes), `--print0` as raw NUL-terminated
bytes. Table cells are plain text, never Rich markup.
"""

from __future__ import annotations

import csv
import os
import sys
from contextlib import contextmanager
from typing import Iterable

from clipseek.cli.options import BACKEND_HELP  # noqa: F401 - its old home; importers still find it
from clipseek.core.paths import json_text, quote_path
from clipseek.errors import UsageError

FORMATS = ("table", "json", "csv")


def check_format(fmt: str, allowed=FORMATS) -> str:
    if fmt not in allowed:
        raise UsageError(f"unknown format {fmt!r}; choose one of {', '.join(allowed)}")
    return fmt


def eprint(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def print_json(obj) -> None:
    sys.stdout.write(json_text(obj, indent=2) + "\n")


def print_paths(paths: Iterable[str], print0: bool = False) -> None:
    """One name per line (`quote_path`), or with `print0` each name's exact bytes followed by NUL."""
    if print0:
        sys.stdout.flush()
        sys.stdout.buffer.write(b"".join(os.fsencode(p) + b"\0" for p in paths))
        sys.stdout.buffer.flush()
    else:
        for p in paths:
            print(quote_path(p))


def print_csv(header: list[str], rows: list[list]) -> None:
    w = csv.writer(sys.stdout, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)


def print_table(title: str | None, header: list[str], rows: list[list]) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, show_lines=False)
    cells = [[quote_path(str(x)) for x in r] for r in rows]
    for i, h in enumerate(header):
        table.add_column(h, no_wrap=(i == 0), overflow="fold")
    for r in cells:
        table.add_row(*(Text(c) for c in r))  # Text: a name like "[bold]x.png" is not markup
    # never cut the first column (paths): widen the console to fit the longest row if needed
    natural = sum(max([len(h)] + [len(r[i]) for r in cells]) + 3 for i, h in enumerate(header)) + 1
    console = Console()
    Console(width=max(console.width, min(natural, 400))).print(table)


def report_skipped(skipped, fmt: str) -> None:
    """Table/CSV modes: skipped files go to stderr (JSON mode lists them in the document)."""
    if fmt != "json":
        for s in skipped:
            eprint(f"skipping {quote_path(s.path)}: {s.reason}")


@contextmanager
def progress(total: int, description: str, enabled: bool | None = None):
    """A Rich progress bar on stderr with rate and ETA; yields `advance(n, status="", unit="files")`."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    console = Console(stderr=True)
    if enabled is None:
        enabled = console.is_terminal
    if not enabled:
        yield lambda n=1, status="", unit="files": None
        return
    cols = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("[progress.percentage]{task.percentage:>3.0f}%"),
            TextColumn("{task.fields[rate]}"), TimeRemainingColumn()]
    import time

    start = time.perf_counter()
    with Progress(*cols, console=console, transient=False) as bar:
        task = bar.add_task(description, total=total, rate="")

        def advance(n: int = 1, status: str = "", unit: str = "files") -> None:
            done = bar.tasks[0].completed + n
            rate = done / max(time.perf_counter() - start, 1e-9)
            bar.update(task, advance=n, rate=f"{rate:.1f} {unit}/s {status}".rstrip())

        yield advance
