r"""Shared output helpers for CLI commands: formats, stderr notes, progress bars.

File names are printed as `core.paths` says: JSON with `\udcXX` escapes for bytes that are not UTF-8,
text lines (tables, `--format paths`, CSV, messages) with `quote_path` (a name with a newline, a
control character or such bytes in double quotes with C escapes), `--print0` as raw NUL-terminated
bytes. Table cells are plain text, never Rich markup.
"""

from __future__ import annotations

import csv
import os
import re
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


_NUMBERISH = re.compile(r"[-+\d\s.,:x%*()/B]*")  # 0.2531, "4096x2304", "3,912,220 B", "12.5%", "-"
MIN_PATH = 16  # a path column is never shortened below this


def middle_ellipsis(text: str, width: int) -> str:
    """`text` cut to `width` characters in the middle (the start and the file name stay)."""
    if len(text) <= width:
        return text
    tail = (width - 1) * 2 // 3
    return text[:width - 1 - tail] + "…" + text[len(text) - tail:]


def _path_widths(header: list[str], cells: list[list[str]], width: int) -> dict[int, int]:
    """The width each path column (a cell with a path separator) gets for the table to fit `width`
    columns, the others at their natural width; {} when it fits as it is."""
    natural = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(header)]
    paths = [i for i in range(len(header)) if any(os.sep in r[i] for r in cells)]
    budget = width - 3 * len(header) - 1  # Rich's borders and padding
    if sum(natural) <= budget or not paths:
        return {}
    room = max(budget - sum(n for i, n in enumerate(natural) if i not in paths), MIN_PATH * len(paths))
    out: dict[int, int] = {}
    for k, i in enumerate(sorted(paths, key=lambda i: natural[i])):  # the short ones take what they need
        out[i] = max(min(natural[i], MIN_PATH), min(natural[i], room // (len(paths) - k)))
        room -= out[i]
    return out


def print_table(title: str | None, header: list[str], rows: list[list]) -> None:
    """A table on stdout that fits the terminal (or COLUMNS): paths shortened in the middle with an
    ellipsis, numbers and headers kept whole; piped with no COLUMNS, as wide as its rows (to 400).
    No rows: nothing (the caller says so in one line). Full paths: --format json|csv|paths."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    if not rows:
        return
    cells = [[quote_path(str(x)) for x in r] for r in rows]
    console = Console()
    natural = sum(max([len(h)] + [len(r[i]) for r in cells]) + 3 for i, h in enumerate(header)) + 1
    fits = console.is_terminal or os.environ.get("COLUMNS", "").isdigit()
    width = console.width if fits else max(console.width, min(natural, 400))
    shorten = _path_widths(header, cells, width)
    cells = [[middle_ellipsis(c, shorten[i]) if i in shorten else c for i, c in enumerate(r)] for r in cells]
    table = Table(title=title, show_lines=False)
    for i, h in enumerate(header):
        numbers = all(_NUMBERISH.fullmatch(r[i]) for r in cells)
        whole = numbers or i in shorten
        table.add_column(h, no_wrap=whole, overflow="fold", min_width=max(len(h), max(len(r[i]) for r in cells))
                         if numbers else min(len(h), 12))
    for r in cells:
        table.add_row(*(Text(c) for c in r))  # Text: a name like "[bold]x.png" is not markup
    Console(width=width).print(table)


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
