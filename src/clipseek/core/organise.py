"""Put files into folders reversibly: plan -> log -> transfer -> undo.

Used by `clipseek classify --sort-into` (rows of path, label, probability from zero-shot results) and
`clipseek dupes --move-extras-to` (rows of path, reason, score): both floors above hand plain rows in,
so this module knows nothing of models or galleries.

- `plan_transfers` picks every destination up front; a name already taken on disk or by an earlier row
  gets a suffix (`name-1.jpg`, `name-2.jpg`, ...): nothing is ever overwritten.
- `write_log` writes the whole plan as CSV (source, destination, label, probability, mode) and fsyncs
  it *before* the first file moves; `transfer_all` then moves, copies or links, one file at a time.
- A move is one `rename` on the same filesystem; across filesystems it is copy to a hidden temp name
  -> fsync -> rename into place -> unlink the source. So after a kill at any moment each row's file
  is at its source or at its destination, and the log names both: `undo_log` puts back whatever was
  moved. (Across filesystems, a kill between the last two steps leaves the same bytes in both places;
  undo sees that they are identical and removes the copy.)
- `clean_destination` removes what a killed run left in OUT: the hidden temp copies (`.NAME.tmp-<pid>-...`)
  and log temps whose process is gone (`_io.remove_stale_temps`); the next run calls it first.
"""

from __future__ import annotations

import csv
import os
import re
import time
from dataclasses import dataclass
from typing import Iterable, Sequence

from clipseek._io import atomic_write, remove_stale_temps
from clipseek.core.transfer import MODES, transfer_one, undo_one
from clipseek.errors import Skipped, UsageError

LOG_FIELDS = ("source", "destination", "label", "probability", "mode")
UNSURE = "_unsure"
MAX_NAME = 100
_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}
_UNSAFE = re.compile(r'[\x00-\x1f\x7f<>:"/\\|?*]+')


@dataclass(frozen=True)
class Transfer:
    source: str
    destination: str
    label: str
    probability: float


@dataclass
class TransferReport:
    done: list[Transfer]
    skipped: list[Skipped]


def safe_folder_name(label: str) -> str:
    """A label as one folder name that works on every common filesystem: no separators or control
    characters, no leading/trailing dots or spaces, not a reserved name (CON, NUL, ...), not empty,
    not starting with '_' (kept for `_unsure`), at most MAX_NAME characters."""
    name = _UNSAFE.sub("_", label)
    name = re.sub(r"\s+", " ", name).strip(" .")
    name = name[:MAX_NAME].rstrip(" .")
    if not name.strip("_"):
        return "label"
    if name.split(".")[0].lower() in _RESERVED:
        name = "label " + name
    return "label" + name if name.startswith("_") else name


def _inside(path: str, folder: str) -> bool:
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def check_destination(out_dir: str, sources: Sequence[str]) -> str:
    """The absolute OUT folder, or UsageError if it would sort its own output or is not a folder."""
    out = os.path.abspath(os.path.expanduser(str(out_dir)))
    if os.path.exists(out) and not os.path.isdir(out):
        raise UsageError(f"{out_dir} exists and is not a folder")
    for src in sources:
        if os.path.isdir(src) and _inside(out, src):
            raise UsageError(f"{out_dir} is inside the source folder {src}: it would sort its own output; "
                             "choose a folder outside it")
    return out


def plan_transfers(rows: Iterable[tuple[str, str, str, float]], out_dir: str) -> list[Transfer]:
    """(source path, destination relative to out_dir, label, probability) -> transfers whose
    destinations are all free now and distinct from each other (case-insensitively)."""
    taken: set[str] = set()
    out = []
    for source, rel, label, prob in rows:
        dest = _free_name(os.path.join(out_dir, rel), taken)
        taken.add(dest.lower())
        out.append(Transfer(os.path.abspath(source), dest, label, float(prob)))
    return out


def _free_name(path: str, taken: set[str]) -> str:
    stem, ext = os.path.splitext(path)
    candidate, n = path, 0
    while candidate.lower() in taken or os.path.lexists(candidate):
        n += 1
        candidate = f"{stem}-{n}{ext}"
    return candidate


def clean_destination(out_dir: str) -> list[str]:
    """Remove the temp files a killed transfer into `out_dir` (or below) left; returns them."""
    return remove_stale_temps(out_dir, recursive=True) if os.path.isdir(out_dir) else []


def default_log_path(out_dir: str, what: str = "sort") -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return _free_name(os.path.join(out_dir, f"clipseek-{what}-{stamp}.csv"), set())


def write_log(path: str, transfers: Sequence[Transfer], mode: str) -> None:
    """The plan as CSV, written under a temp name, fsynced and renamed: complete before any move."""
    if mode not in MODES:
        raise UsageError(f"--mode must be one of {', '.join(MODES)}, not {mode!r}")
    if os.path.lexists(path):
        raise UsageError(f"log {path} exists already; give another --log")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)

    def write(tmp: str) -> None:
        # surrogateescape: a file name that is not UTF-8 is written as its own bytes, read back alike
        with open(tmp, "w", newline="", encoding="utf-8", errors="surrogateescape") as f:
            w = csv.writer(f)
            w.writerow(LOG_FIELDS)
            w.writerows([t.source, t.destination, t.label, f"{t.probability:.6f}", mode] for t in transfers)

    atomic_write(path, write, durable=True)


def read_log(path: str) -> list[tuple[Transfer, str]]:
    """(transfer, mode) per row of a log written by `write_log`; UsageError if it is not one."""
    try:
        with open(path, newline="", encoding="utf-8", errors="surrogateescape") as f:
            rows = list(csv.reader(f))
    except FileNotFoundError:
        raise UsageError(f"log not found: {path}") from None
    except (UnicodeDecodeError, csv.Error):
        raise UsageError(f"{path} is not a clipseek log (not CSV text)") from None
    except OSError as e:
        raise UsageError(f"cannot read log {path}: {e.strerror or e}") from None
    if not rows or tuple(rows[0]) != LOG_FIELDS:
        raise UsageError(f"{path} is not a clipseek log (its header is not {','.join(LOG_FIELDS)})")
    out = []
    for n, r in enumerate(rows[1:], start=2):
        if len(r) != len(LOG_FIELDS) or r[4] not in MODES:
            raise UsageError(f"{path}, line {n}: not a log row")
        out.append((Transfer(r[0], r[1], r[2], float(r[3] or 0)), r[4]))
    return out


def transfer_all(transfers: Sequence[Transfer], mode: str, on_item=None) -> TransferReport:
    """Move, copy or link each file (the log must be written first). A source that disappeared since
    the plan, or a destination that appeared, is skipped and reported; the rest go on."""
    report = TransferReport([], [])
    for t in transfers:
        problem = transfer_one(t.source, t.destination, mode)
        if problem:
            report.skipped.append(Skipped(t.source, problem))
        else:
            report.done.append(t)
        if on_item:
            on_item(1)
    return report


@dataclass
class UndoReport:
    restored: int = 0     # rows undone (moves reversed, copies and links removed)
    untouched: int = 0    # rows with nothing to undo: never transferred, or undone already
    removed: int = 0      # of `restored`: the copies and links removed (their sources never left)
    kept: list[Skipped] = None  # rows left alone, and why

    def __post_init__(self):
        self.kept = self.kept or []


def undo_log(path: str, on_item=None) -> UndoReport:
    """Reverse every row of a log, last first; then remove the folders that emptied."""
    rows = read_log(path)
    report = UndoReport()
    for t, mode in reversed(rows):
        status, problem = undo_one(t.source, t.destination, mode)
        if status == "restored":
            report.restored += 1
            report.removed += mode in ("copy", "link")
        elif status == "untouched":
            report.untouched += 1
        else:
            report.kept.append(Skipped(t.destination, problem or status))
        if on_item:
            on_item(1)
    _remove_empty_folders([t.destination for t, _ in rows], os.path.dirname(os.path.abspath(path)))
    return report


def _remove_empty_folders(destinations: Sequence[str], log_dir: str) -> None:
    """Folders of destinations that are empty now, up to (not including) the log's folder when they
    lie under it (the default: the log is in OUT), else up to their deepest common folder."""
    if not destinations:
        return
    root = os.path.commonpath([os.path.dirname(d) for d in destinations])
    if _inside(root, log_dir):
        root = log_dir
    folders = {os.path.dirname(d) for d in destinations}
    for folder in sorted(folders, key=len, reverse=True):
        while folder != root and folder.startswith(root.rstrip(os.sep) + os.sep):
            try:
                os.rmdir(folder)  # only succeeds when empty
            except OSError:
                break
            folder = os.path.dirname(folder)
