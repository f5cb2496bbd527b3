"""Bring a gallery database up to date with folders on disk, reading each file once.

scan (stat only) -> plan by (size, mtime): unchanged / still skipped / to read / gone -> read each file
to read once -> resolve it by content hash: touched / moved / copied / to embed -> encode and commit
window by window -> remove the rows of gone files that no move claimed.

Reading once. A file's content hash must be known before deciding whether to embed it (a moved,
copied or touched file is not re-embedded), and its pixels come from the same bytes. So the read
stage, in a thread pool, reads the whole file (`embed.stages.read_blob`), hashes those bytes and, in
the same task, decodes them once for the model input, the pHash and the thumbnails (`gallery.derive`),
unless the hash is one that a row under the indexed folders already has (a touch, a move or a copy
within them: nothing to decode). The bytes are
dropped when the task ends, so at most `workers` files' bytes are in memory, whatever the size of
the folder; results (hash, and pixels or not) wait for at most `2 * batch_size + workers` files, as
in `embed_paths`. The caller's thread takes them in windows of `batch_size`, looks their hashes up
in the store (one query per window), resolves each file in order, encodes the window's files to
embed and commits the window in one transaction, its changes applied in the order they were decided.
Two rare cases cost more: content that matches only rows outside the folders is decoded for nothing
(it becomes a copy or a move, not encoded), and content that matched a row this run has since
replaced (two files that swapped contents) is read a second time to be embedded.

Capture time. A file to embed has its EXIF DateTimeOriginal read from the same bytes (the header
only). Last, rows under the folders whose capture time was never read (a database made by an older
release, or rows loaded from Parquet) get it from their file's header: no pixel is decoded, nothing is
re-embedded.

Links. A symbolic link inside the folders whose target (a regular file) lies outside all of them is
followed only when the user asked (`follow_links`, `index --follow-links`, off by default as in `find`
and `rsync`); the choice is kept in the database (meta `follow_links`), so later runs and a watcher
use the same rule until `--follow-links` or `--no-follow-links` changes it. Such a link is never read:
it is recorded as skipped ("link to outside the gallery (use --follow-links)"), and retried every run,
like a limit skip, so turning the rule on takes effect. Links within the folders are followed.

A run killed at any point leaves every committed window in place; the next run sees those files as
unchanged and goes on (and removes the rows of gone files, which are removed last).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Collection, Sequence

from clipseek.core.images import DEFAULT_LIMITS, ImageLimits, capture_time_ns
from clipseek.embed.stages import (
    batched,
    default_workers,
    encode_batch,
    ordered_map,
    read_blob,
)
from clipseek.errors import Skipped
from clipseek.gallery.derive import Derive, decode_derived
from clipseek.gallery.scan import FOLLOW_LINKS, check_roots, links_rule, scan  # noqa: F401 - check_roots: importers
from clipseek.gallery.store import Store
from clipseek.gallery.store_rows import FileRow
from clipseek.gallery.store_vectors import log as store_log
from clipseek.gallery.store_vectors import summary as summary_of
from clipseek.gallery.thumbs import default_thumb_dir
from clipseek.gallery.sync_video import VIDEO, embed_video, insert_video, is_video, read_video

if TYPE_CHECKING:
    from clipseek.model.base import Encoder


# Skips that depend on this run's limits (--max-pixels, --max-file-mb), not on the file alone: retried
# every run (cheaply: the size from stat, the pixels from the header), so raising a limit takes effect.
LIMIT_REASONS = ("too many pixels", "file too large")
OUTSIDE_REASON = "link to outside the gallery (use --follow-links)"
RETRY_REASONS = (*LIMIT_REASONS, OUTSIDE_REASON)  # skips that depend on this run's settings
CHECKED = "vectors_checked"  # meta: every row up to this id had its vector checked (`_unusable_rows`)


@dataclass
class IndexSummary:
    added: int = 0        # new files embedded (or copied from an identical file)
    updated: int = 0      # changed files re-embedded
    moved: int = 0        # renamed/moved files recognised by content hash (not re-embedded)
    removed: int = 0      # catalogued files that are gone
    unchanged: int = 0
    skipped: list[Skipped] = field(default_factory=list)  # files that failed in this run
    still_skipped: int = 0  # failed before and unchanged since: not retried
    total: int = 0        # images in the database afterwards
    dated: int = 0        # catalogued rows whose capture time was read now (no re-embedding)
    notes: list[Skipped] = field(default_factory=list)  # videos kept with a note (path, note)
    moments: int = 0      # video moments embedded by this run

    def to_dict(self) -> dict:
        return {"added": self.added, "updated": self.updated, "moved": self.moved,
                "removed": self.removed, "unchanged": self.unchanged, "still_skipped": self.still_skipped,
                "total": self.total, "dated": self.dated, "moments": self.moments, "skipped": [
                    {"path": s.path, "reason": s.reason} for s in self.skipped],
                "notes": [{"path": n.path, "note": n.reason} for n in self.notes]}


@dataclass
class Plan:
    """What the scan tells without reading a file."""

    found: dict[str, tuple[int, int]]                            # path -> (size, mtime_ns) on disk
    known: dict[str, FileRow]                                    # rows under the folders
    unchanged: int = 0
    still_skipped: int = 0
    to_read: list[str] = field(default_factory=list)             # new, changed or retried files
    gone: dict[str, FileRow] = field(default_factory=dict)       # rows whose file is gone (may be moves)
    gone_skips: list[str] = field(default_factory=list)          # skip records of files that are gone
    outside: dict[str, tuple[int, int]] = field(default_factory=dict)  # links to outside, to record
    stale: set[str] = field(default_factory=set)                 # rows whose vector is unusable


@dataclass
class Read:
    """A file after the read stage: what was read, and its pixels unless its hash made them needless."""

    size: int
    mtime_ns: int
    hash: str
    decoded: tuple | Skipped | None  # (pixels, (w, h)), a decoding failure, or None: not decoded
    taken_ns: int | None = None      # EXIF capture time, read when decoded
    phash: str | None = None         # perceptual hash, from the same decode (`gallery.derive`)


def plan_changes(store: Store, roots: Sequence[str], found: dict[str, tuple[int, int]],
                 outside: dict[str, tuple[int, int]] | None = None, unusable: Collection[int] = ()) -> Plan:
    """Sort the scanned files by (size, mtime) against the store's rows; reads no file. A row whose
    stored vector is unusable (its id in `unusable`) counts as no row: its file is read and embedded
    again (its row replaced), or the row removed when the file is gone."""
    rows = store.rows_under(roots)
    plan = Plan(found, {p: r for p, r in rows.items() if r.id not in unusable})
    plan.stale = {p for p, r in rows.items() if r.id in unusable}
    plan.gone_skips = [p for p in plan.stale if p not in found]
    known_skips = store.skipped_under(roots)
    for path, (size, mtime) in found.items():
        row = plan.known.get(path)
        if row is not None and (row.size, row.mtime_ns) == (size, mtime):
            plan.unchanged += 1
        elif row is None and path in known_skips and known_skips[path][:2] == (size, mtime) \
                and not known_skips[path][2].startswith(RETRY_REASONS):
            plan.still_skipped += 1
        else:
            plan.to_read.append(path)
    for path, (size, mtime) in (outside or {}).items():
        if path not in plan.known and known_skips.get(path) == (size, mtime, OUTSIDE_REASON):
            plan.still_skipped += 1
        else:
            plan.outside[path] = (size, mtime)
    seen = found.keys() | (outside or {}).keys()
    plan.gone = {p: r for p, r in plan.known.items() if p not in seen}
    plan.gone_skips += [p for p in known_skips if p not in seen]
    return plan


def read_file(path: str, encoder: Encoder, skip_decode: frozenset[str] | set[str],
              limits: ImageLimits = DEFAULT_LIMITS, derive: Derive = Derive()) -> Read | Skipped:
    """Read stage (thread pool): one read; hash; unless the hash is in `skip_decode`, one decode for
    the model input, the pHash and the thumbnails (`gallery.derive`)."""
    if is_video(path):
        got = read_video(path, skip_decode)
        return got if isinstance(got, Skipped) else Read(*got)
    blob = read_blob(path, limits)
    if isinstance(blob, Skipped):
        return blob
    if blob.hash in skip_decode:
        return Read(blob.size, blob.mtime_ns, blob.hash, None)
    decoded, phash = decode_derived(encoder, blob, limits, derive)
    return Read(blob.size, blob.mtime_ns, blob.hash, decoded, capture_time_ns(blob.data), phash)


class _Resolver:
    """Decides, file after file in the caller's thread, what a read file is. Remembers the rows that
    moves claimed and the rows this run replaces (never the source of a later move or copy)."""

    def __init__(self, plan: Plan):
        self.plan = plan
        self.claimed: set[int] = set()
        self.replaced: set[int] = set()

    def replace(self, path: str) -> None:
        """`path` gets new content (or a skip record): its old row goes."""
        row = self.plan.known.get(path)
        if row is not None:
            self.replaced.add(row.id)

    def resolve(self, path: str, h: str, same: list[FileRow]) -> tuple[str, FileRow | None]:
        """("touched", its row), ("moved", the row), ("copied", the source row) or ("embed", None)."""
        row = self.plan.known.get(path)
        if row is not None and row.hash == h:
            return "touched", row
        self.replace(path)
        src = _reusable([r for r in same if r.id not in self.replaced], self.plan.gone, self.claimed, path)
        if src is not None and src[1]:
            self.claimed.add(src[0].id)
            self.plan.gone.pop(src[0].path, None)
            return "moved", src[0]
        return ("copied", src[0]) if src is not None else ("embed", None)


def _reusable(rows: list[FileRow], gone: dict[str, FileRow], claimed: set[int],
              path: str) -> tuple[FileRow, bool] | None:
    """A row with the same content: (row, True) if its file is gone (a move), (row, False) to copy."""
    for r in rows:
        if r.id not in claimed and r.path != path and (r.path in gone or not os.path.exists(r.path)):
            return r, True
    for r in rows:
        if r.path != path:
            return r, False
    return None


def _index_window(store: Store, encoder: Encoder, resolver: _Resolver, window: list[tuple[str, Read | Skipped]],
                  summary: IndexSummary, reread: Callable[[str], Read | Skipped]) -> None:
    """Resolve a window of read files in order, encode those to embed, commit it in one transaction."""
    same = store.rows_with_hashes(r.hash for _, r in window if isinstance(r, Read))
    steps = [_step(resolver, path, r, same, reread) for path, r in window]
    to_embed = [(path, r.decoded) for kind, path, r, _ in steps if kind == "embed"]
    batch = encode_batch(encoder, to_embed) if to_embed else None
    vectors = dict(zip(batch.paths, zip(batch.sizes, batch.vectors))) if batch else {}
    videos = {path: embed_video(encoder, path) for kind, path, _, _ in steps if kind == "video"}
    with store.transaction():  # in decision order: a copy's source is never replaced before it
        for kind, path, r, src in steps:
            if kind == "embed" and path not in vectors:  # its vector was not finite (see encode_batch)
                kind, r = "skip", next(s for s in batch.skipped if s.path == path)
            if kind == "video" and not isinstance(videos[path], Skipped):
                insert_video(store, resolver.plan, path, r, videos[path], summary)
                continue
            kind, r = ("skip", videos[path]) if kind == "video" else (kind, r)
            if kind == "skip":
                size, mtime = resolver.plan.found[path]
                store.record_skipped([(path, size, mtime, r.reason)])
                summary.skipped.append(Skipped(path, r.reason))
            elif kind == "touched":
                store.touch_file(src.id, r.size, r.mtime_ns)
                summary.unchanged += 1
            elif kind == "moved":
                store.move_file(src.id, path, r.size, r.mtime_ns)
                summary.moved += 1
            elif kind == "copied":
                store.copy_file_row(src.id, path, r.size, r.mtime_ns)
                summary.added += 1
            else:
                (w, h), v = vectors[path]
                store.insert_files([(path, r.size, r.mtime_ns, r.hash, w, h, v, r.taken_ns, r.phash)])
                had = path in resolver.plan.known or path in resolver.plan.stale
                summary.updated += had
                summary.added += not had


def _step(resolver: _Resolver, path: str, r: Read | Skipped, same: dict[str, list[FileRow]],
          reread: Callable[[str], Read | Skipped]) -> tuple[str, str, Read | Skipped, FileRow | None]:
    """(kind, path, what was read, source row): kind is "touched", "moved", "copied", "embed" (with
    pixels) or "skip" (r is then the Skipped record)."""
    if isinstance(r, Skipped):
        kind, src = "skip", None
    else:
        kind, src = resolver.resolve(path, r.hash, same.get(r.hash, []))
    if kind == "embed" and r.decoded is None:  # its content's row was replaced meanwhile
        r = reread(path)  # the one case of a second read
        kind = "skip" if isinstance(r, Skipped) else kind
    if kind == "embed" and isinstance(r.decoded, Skipped):
        kind, r = "skip", r.decoded
    kind = "video" if kind == "embed" and r.decoded == VIDEO else kind  # sampled in `_index_window`
    if kind == "skip":
        resolver.replace(path)
    return kind, path, r, src


def index_folders(store: Store, encoder: Encoder, dirs: Sequence[str], batch_size: int = 32,
                  workers: int | None = None, limits: ImageLimits = DEFAULT_LIMITS,
                  on_start: Callable[[int], None] | None = None,
                  on_progress: Callable[[int], None] | None = None,
                  follow_links: bool | None = None, derive: Derive | None = None,
                  on_phase: Callable[[str, int | None], object] | None = None,
                  on_read: Callable[[int], None] | None = None) -> IndexSummary:
    """Index `dirs` into `store` with `encoder`; returns what changed. Safe to interrupt any time.
    `on_start(n)` gets the number of files to read, `on_progress(n)` the files committed since,
    `on_read(1)` each file as it is read and decoded, `on_phase(name, n)` each phase as it starts.
    `follow_links`: follow links to outside the folders (None: the rule recorded, see `links_rule`).
    `derive`: what else each decode gives (default: the pHash, and thumbnails in `DB.thumbs/`)."""
    roots = check_roots(dirs)
    store.bind_model(encoder.fingerprint, encoder.dim)
    phase = on_phase or (lambda name, n: None)
    phase("scanning", None)
    found, outside = scan(roots, links_rule(store, follow_links))
    plan = plan_changes(store, roots, found, outside, _unusable_rows(store, roots))
    summary = IndexSummary(unchanged=plan.unchanged, still_skipped=plan.still_skipped)
    phase("embedding", len(plan.to_read))
    if on_start:
        on_start(len(plan.to_read))
    workers = workers or default_workers()
    local = frozenset(r.hash for r in plan.known.values())  # content the folders' rows already have
    derive = derive or Derive(default_thumb_dir(store.path))
    reads = ordered_map(lambda p: read_file(p, encoder, local, limits, derive), plan.to_read, workers,
                        ahead=2 * batch_size + workers)
    resolver = _Resolver(plan)
    _record_outside(store, resolver, summary)
    for window in batched(_each(reads, on_read), batch_size):
        _index_window(store, encoder, resolver, window, summary,
                      lambda p: read_file(p, encoder, frozenset(), limits, derive))
        if on_progress:
            on_progress(len(window))
    gone = plan.gone_skips + list(plan.gone)  # gone files that no move claimed
    with store.transaction():
        store.remove_paths(gone)
    summary.removed = sum(p in plan.gone or p in plan.stale for p in gone)  # images; not skip records
    summary.dated = fill_capture_times(store, roots, workers)
    summary.total = store.count()
    return summary


def _each(items, on_item: Callable[[int], None] | None):
    """`items`, calling `on_item(1)` as each one arrives (a file read and decoded)."""
    for item in items:
        if on_item:
            on_item(1)
        yield item


def _record_outside(store: Store, resolver: _Resolver, summary: IndexSummary) -> None:
    """Links to outside the folders (not followed): skip records; a row such a path had goes."""
    outside = resolver.plan.outside
    if not outside:
        return
    with store.transaction():
        store.record_skipped([(p, size, mtime, OUTSIDE_REASON) for p, (size, mtime) in outside.items()])
    for p in outside:
        resolver.replace(p)
        summary.skipped.append(Skipped(p, OUTSIDE_REASON))


def _unusable_rows(store: Store, roots: Sequence[str]) -> set[int]:
    """Ids of the rows whose stored vector cannot be used (`store.scan_unusable`), said in one line:
    those under `roots` are embedded again by this run. Each row is checked once: the database keeps
    the highest id checked (meta `vectors_checked`), and the rows written since were checked as they
    were written (`Store.insert_files` refuses what is not finite); reads check every row anyway."""
    mark = store.meta(CHECKED)
    bad = store.scan_unusable(int(mark) if mark and mark.isdigit() else 0)
    if str(store.checked_upto) != mark:
        store.set_meta({CHECKED: str(store.checked_upto)})
    if bad:
        under = {r.id for r in store.rows_under(roots).values()} & set(bad)
        store.mark_reported(bad)
        store_log.warning("%s: %d rows have an unusable stored vector (%s): %d under the folders indexed now "
                          "are embedded again%s", store.path, len(bad), summary_of(bad), len(under),
                          "" if len(under) == len(bad) else "; the others stay left out of search")
    return set(bad)


def fill_capture_times(store: Store, roots: Sequence[str], workers: int, window: int = 500) -> int:
    """Read the capture time of the rows under `roots` that never had it read (headers only, in a
    thread pool), committed `window` rows at a time. Returns how many rows it filled."""
    pending = store.pending_taken(roots)
    times = ordered_map(lambda item: capture_time_ns(item[1]), pending, workers, ahead=2 * workers)
    for part in batched(times, window):
        with store.transaction():
            store.set_taken([(row_id, t) for (row_id, _), t in part])
    return len(pending)
