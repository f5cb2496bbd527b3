"""`clipseek dupes`, `clipseek undo`, and the `--sort-into` part of `clipseek classify`: organise a photo
folder. Parse, call the library (gallery.dupes, zero_shot.sort_plan, core.organise), print."""

from __future__ import annotations

import os
from typing import Optional

import typer

from clipseek.cli.app import app
from clipseek.cli.options import finite
from clipseek.cli.output import (
    check_format,
    eprint,
    print_csv,
    print_json,
    print_table,
    progress,
)

DB_HELP = "Gallery database (SQLite). Default: ./clipseek.db"


# ---- classify --sort-into ----------------------------------------------------------------------
def check_sort_args(out: str, inputs, mode: str, unsure_below: float | None) -> str:
    """Fail fast, before a model is loaded: the absolute OUT folder."""
    from clipseek.core.organise import check_destination
    from clipseek.core.transfer import MODES
    from clipseek.errors import UsageError

    if mode not in MODES:
        raise UsageError(f"--mode must be one of {', '.join(MODES)}, not {mode!r}")
    if unsure_below is not None and not 0.0 <= unsure_below <= 1.0:
        raise UsageError(f"--unsure-below must be a probability between 0 and 1, not {unsure_below}")
    return check_destination(out, [str(p) for p in inputs])


def sort_classified(result, out: str, mode: str, unsure_below: float | None, none_below: float | None,
                    dry_run: bool, log: str | None, fmt: str) -> int:
    """Plan, log, transfer and print, for `classify --sort-into`."""
    from clipseek.zero_shot import sort_plan

    plan = sort_plan(result, out, unsure_below, none_below)
    return _apply(plan, mode, out, dry_run, log, fmt, "sort", unreadable=result.skipped)


def _apply(plan, mode: str, out: str, dry_run: bool, log: str | None, fmt: str, what: str,
           unreadable=(), on_done=None) -> int:
    """Log, transfer and print a plan; `on_done(transfers done)` is called before printing."""
    from clipseek.core.organise import clean_destination, default_log_path, transfer_all, write_log

    log_path = None
    skipped = []
    if not dry_run:
        clean_destination(out)  # temp files a killed run left in OUT
    if not dry_run and plan:
        log_path = os.path.abspath(log) if log else default_log_path(out, what)
        write_log(log_path, plan, mode)  # complete and fsynced before the first file moves
        with progress(len(plan), f"{mode} files") as advance:
            report = transfer_all(plan, mode, on_item=advance)
        skipped = report.skipped
        if on_done:
            on_done(report.done)
        for s in skipped:
            eprint(f"skipping {s.path}: {s.reason}")
    done = len(plan) - len(skipped)
    _print_plan(plan, mode, log_path, skipped, fmt, dry_run, list(unreadable), what)
    verb = {"move": "moved", "copy": "copied", "link": "linked"}[mode]
    if dry_run:
        eprint(f"dry run: {len(plan)} files would be {verb} into {out}; nothing was changed")
    elif plan:
        eprint(f"{done} files {verb} into {out}" + (f", {len(skipped)} skipped" if skipped else "") +
               f"; undo with: clipseek undo {log_path}")
    return 0


def _print_plan(plan, mode, log_path, skipped, fmt, dry_run, unreadable, what) -> None:
    failed = {s.path for s in skipped}
    if fmt == "json":
        print_json({"log": log_path, "mode": mode, "dry_run": dry_run,
                    "files": [{"source": t.source, "destination": t.destination, "label": t.label,
                               "probability": round(t.probability, 6), "done": not dry_run and
                               t.source not in failed} for t in plan],
                    "skipped": [{"path": s.path, "reason": s.reason} for s in unreadable + skipped]})
    elif fmt == "csv":
        print_csv(["source", "destination", "label", "probability"],
                  [[t.source, t.destination, t.label, f"{t.probability:.6f}"] for t in plan])
    elif what == "dupes":
        print_table(None, ["image", "to", "why", "score"],
                    [[t.source, t.destination, t.label, f"{t.probability:.3f}"] for t in plan])
    else:
        print_table(None, ["image", "to", "label"],
                    [[t.source, t.destination, f"{t.label} ({t.probability:.1%})"] for t in plan])


# ---- dupes -------------------------------------------------------------------------------------
@app.command("dupes")
def dupes_cmd(
    db: str = typer.Option("clipseek.db", "--db", help=DB_HELP),
    similar: bool = typer.Option(False, "--similar", help="Also group near-identical shots (bursts) by "
                                 "CLIP cosine >= --threshold."),
    threshold: float = typer.Option(0.95, "--threshold", callback=finite(0, 1, lo_open=True),
                                   help="CLIP cosine for --similar."),
    phash_distance: int = typer.Option(12, "--phash-distance", help="Perceptual-hash bits (of 64) "
                                       "that may differ between copies."),
    fmt: str = typer.Option("table", "--format", "-f", help="table, json or csv."),
    move_extras_to: Optional[str] = typer.Option(None, "--move-extras-to", metavar="DIR",
                                                 help="Move every non-keeper into DIR (relative paths "
                                                 "kept; an undo log is written first)."),
    log: Optional[str] = typer.Option(None, "--log", help="Where to write the undo log (with "
                                      "--move-extras-to). Default: DIR/clipseek-dupes-DATE.csv"),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what --move-extras-to would move."),
) -> int:
    """Groups of duplicate images in a gallery: same bytes, the same picture re-encoded, resized or
    lightly cropped, and with --similar near-identical shots; a suggested keeper per group. Never
    deletes anything."""
    from clipseek.gallery.dupes.groups import check_settings, find_duplicates
    from clipseek.gallery.store import Store

    check_format(fmt)
    check_settings(threshold, phash_distance)
    if move_extras_to:
        return _move_extras(db, move_extras_to, similar, threshold, phash_distance, dry_run, log, fmt)
    with Store.open(db, create=False) as store:
        groups = find_duplicates(store, similar=similar, threshold=threshold, phash_distance=phash_distance)
    _print_groups(groups, fmt)
    extras = sum(len(g.extras) for g in groups)
    eprint(f"{len(groups)} group{'s' * (len(groups) != 1)}, {extras} extra cop{'y' if extras == 1 else 'ies'}"
           if groups else "no duplicates found")
    return 0


def _move_extras(db: str, to: str, similar: bool, threshold: float, phash_distance: int, dry_run: bool,
                 log: str | None, fmt: str) -> int:
    """`--move-extras-to`: as the gallery's writer, every file of every group read again first
    (gallery.dupes.movable_groups: what changed since it was indexed is dropped, one line each),
    then moved; the moved files' rows leave the database."""
    from contextlib import nullcontext

    from clipseek.core.paths import quote_path
    from clipseek.gallery.dupes.groups import extras_plan, forget_moved, movable_groups
    from clipseek.gallery.gallery import Gallery

    with Gallery(db) as gallery, nullcontext() if dry_run else gallery.writing():
        store = gallery.store
        root = store.common_root()
        out = _check_extras_dir(to, root)
        groups, dropped = movable_groups(store, similar=similar, threshold=threshold,
                                         phash_distance=phash_distance)
        for s in dropped:
            eprint(f"not moving {quote_path(s.path)}: {s.reason}")
        return _apply(extras_plan(groups, out, root), "move", out, dry_run, log, fmt, "dupes",
                      on_done=lambda done: forget_moved(store, [t.source for t in done]))


def _check_extras_dir(out: str, root: str | None) -> str:
    from clipseek.core.organise import check_destination

    return check_destination(out, [root] if root and root != os.sep else [])


def _print_groups(groups, fmt: str) -> None:
    if fmt == "json":
        print_json({"groups": [g.to_dict() for g in groups]})
    elif fmt == "csv":
        print_csv(["group", "path", "reason", "score", "keep", "bytes", "width", "height"],
                  [[k + 1, m.path, m.reason, f"{m.score:.4f}", int(m.reason == "keep"), m.size, m.width,
                    m.height] for k, g in enumerate(groups) for m in g.members])
    else:
        print_table(None, ["group", "path", "why", "size"],
                    [[str(k + 1) if m.reason == "keep" else "", m.path,
                      "keep" if m.reason == "keep" else f"{m.reason} {m.score:.3f}",
                      f"{m.width}x{m.height}, {m.size:,} B"] for k, g in enumerate(groups) for m in g.members])


# ---- undo --------------------------------------------------------------------------------------
@app.command("undo")
def undo_cmd(log: str = typer.Argument(..., help="The CSV log a sort or a dupes move wrote.")) -> int:
    """Put back what `classify --sort-into` or `dupes --move-extras-to` did, from its log."""
    from clipseek.core.organise import read_log, undo_log

    n = len(read_log(log))  # a bad log fails here with one line
    with progress(n, "undoing") as advance:
        report = undo_log(log, on_item=advance)
    for s in report.kept:
        eprint(f"left alone {s.path}: {s.reason}")
    print(f"{report.restored} files put back, {report.untouched} had not been moved, "
          f"{len(report.kept)} left alone (of {n} in {log})")
    return 1 if report.kept else 0
