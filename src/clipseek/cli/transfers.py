"""Plans of file moves shared by `classify --sort-into` and `dupes --move-extras-to`: check the target, write
the undo log, move/copy/link, print the plan (core.organise does the work)."""

from __future__ import annotations

import os

from clipseek.cli.output import (
    eprint,
    print_csv,
    print_json,
    print_table,
    progress,
)


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
    return apply_plan(plan, mode, out, dry_run, log, fmt, "sort", unreadable=result.skipped)


def apply_plan(plan, mode: str, out: str, dry_run: bool, log: str | None, fmt: str, what: str,
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
    print_plan(plan, mode, log_path, skipped, fmt, dry_run, list(unreadable), what)
    verb = {"move": "moved", "copy": "copied", "link": "linked"}[mode]
    if dry_run:
        eprint(f"dry run: {len(plan)} files would be {verb} into {out}; nothing was changed")
    elif plan:
        eprint(f"{done} files {verb} into {out}" + (f", {len(skipped)} skipped" if skipped else "") +
               f"; undo with: clipseek undo {log_path}")
    return 0


def print_plan(plan, mode, log_path, skipped, fmt, dry_run, unreadable, what) -> None:
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
