"""`clipseek undo LOG`: put back what a sort or a dupes move did (core.organise.undo_log)."""

from __future__ import annotations

import typer

from clipseek.cli.app import app
from clipseek.cli.output import (
    eprint,
    progress,
)


@app.command("undo")
def undo_cmd(log: str = typer.Argument(..., help="The CSV log a sort or a dupes move wrote.")) -> int:
    """Put back what `classify --sort-into` or `dupes --move-extras-to` did, from its log."""
    from clipseek.core.organise import read_log, undo_log

    n = len(read_log(log))  # a bad log fails here with one line
    with progress(n, "undoing") as advance:
        report = undo_log(log, on_item=advance)
    for s in report.kept:
        eprint(f"left alone {s.path}: {s.reason}")
    print(undo_line(report, n, log))
    return 1 if report.kept else 0


def undo_line(report, n: int, log: str) -> str:
    """What an undo did, in words: moves put back, copies removed, rows already undone."""
    if report.untouched == n and n:
        return f"nothing to undo: all {n} files in {log} are already as they were (undone already, or never done)"
    moved_back = report.restored - report.removed
    parts = [f"{moved_back} files put back"] if moved_back or not report.removed else []
    if report.removed:
        parts.append(f"{report.removed} copies removed (the originals stayed in place)")
    if report.untouched:
        parts.append(f"{report.untouched} already undone or never done")
    parts.append(f"{len(report.kept)} left alone")
    return f"{', '.join(parts)} (of {n} in {log})"
