"""`clipseek dupes`: duplicate groups of a gallery and their keepers; `--move-extras-to` moves the
others out, reversibly (gallery.dupes, core.organise)."""

from __future__ import annotations

import os
from typing import Optional

import typer

from clipseek.cli.app import app
from clipseek.cli.options import DB_HELP, finite, format_option
from clipseek.cli.output import (
    check_format,
    eprint,
    print_csv,
    print_json,
    print_table,
)
from clipseek.cli.transfers import apply_plan


@app.command("dupes")
def dupes_cmd(
    db: str = typer.Option("clipseek.db", "--db", help=DB_HELP),
    similar: bool = typer.Option(False, "--similar", help="Also group near-identical shots (bursts) by "
                                 "CLIP cosine >= --threshold."),
    threshold: float = typer.Option(0.95, "--threshold", callback=finite(0, 1, lo_open=True),
                                   help="CLIP cosine for --similar."),
    phash_distance: int = typer.Option(12, "--phash-distance", help="Perceptual-hash bits (of 64) "
                                       "that may differ between copies."),
    fmt: str = format_option("table", "json", "csv"),
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
        return apply_plan(extras_plan(groups, out, root), "move", out, dry_run, log, fmt, "dupes",
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
