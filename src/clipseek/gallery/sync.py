"""Bring a gallery database up to date with folders on disk: scan, plan, embed, commit per batch.

scan -> plan (unchanged / touched / moved / copied / to embed / gone) -> one transaction for the
cheap changes -> embed the rest in batches, one transaction each. A run killed at any point leaves
every committed batch in place; the next run sees those files as unchanged and goes on.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Sequence

from clipseek.core.images import DEFAULT_MAX_PIXELS, walk_images
from clipseek.embed.stages import embed_paths
from clipseek.errors import ModelMismatchError, Skipped, UsageError
from clipseek.gallery.store import FileRow, Store, file_hash

if TYPE_CHECKING:
    from clipseek.model.base import Encoder


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

    def to_dict(self) -> dict:
        return {"added": self.added, "updated": self.updated, "moved": self.moved,
                "removed": self.removed, "unchanged": self.unchanged, "still_skipped": self.still_skipped,
                "total": self.total, "skipped": [{"path": s.path, "reason": s.reason} for s in self.skipped]}


@dataclass
class Plan:
    unchanged: int = 0
    still_skipped: int = 0
    touched: list[tuple[int, int, int]] = field(default_factory=list)         # (id, size, mtime)
    moved: list[tuple[int, str, int, int]] = field(default_factory=list)      # (id, path, size, mtime)
    copied: list[tuple[int, str, int, int]] = field(default_factory=list)     # (src id, path, size, mtime)
    embed: dict[str, tuple[int, int, str]] = field(default_factory=dict)      # path -> (size, mtime, hash)
    changed: set[str] = field(default_factory=set)                           # embed paths seen before
    gone: list[str] = field(default_factory=list)                            # paths to forget
    bad: list[tuple[str, int, int, str]] = field(default_factory=list)        # unreadable while hashing


def check_roots(dirs: Sequence[str]) -> list[str]:
    if not dirs:
        raise UsageError("give at least one folder to index")
    roots = []
    for d in dirs:
        p = os.path.abspath(os.path.expanduser(str(d)))
        if not os.path.exists(p):
            raise UsageError(f"folder not found: {d}")
        if not os.path.isdir(p):
            raise UsageError(f"not a folder: {d}")
        if not os.access(p, os.R_OK | os.X_OK):
            raise UsageError(f"cannot read folder: {d}")
        roots.append(p)
    return roots


def scan(roots: Sequence[str]) -> dict[str, tuple[int, int]]:
    """Every image file under the roots -> (size, mtime_ns)."""
    found: dict[str, tuple[int, int]] = {}
    for root in roots:
        for path in walk_images(root):
            try:
                st = os.stat(path)
            except OSError:
                continue  # vanished between listing and stat
            found[path] = (st.st_size, st.st_mtime_ns)
    return found


def _hash_all(paths: list[str], workers: int) -> dict[str, str | Exception]:
    def one(p: str):
        try:
            return file_hash(p)
        except OSError as e:
            return e
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return dict(zip(paths, pool.map(one, paths)))


def plan_changes(store: Store, roots: Sequence[str], found: dict[str, tuple[int, int]],
                 workers: int = 4) -> Plan:
    plan = Plan()
    known = store.rows_under(roots)
    known_skips = store.skipped_under(roots)
    candidates = []
    for path, (size, mtime) in found.items():
        row = known.get(path)
        if row is not None and (row.size, row.mtime_ns) == (size, mtime):
            plan.unchanged += 1
        elif row is None and path in known_skips and known_skips[path][:2] == (size, mtime):
            plan.still_skipped += 1
        else:
            candidates.append(path)
    gone_rows = {p: r for p, r in known.items() if p not in found}
    plan.gone = [p for p in known_skips if p not in found]
    hashes = _hash_all(candidates, workers)
    same_content = store.rows_with_hashes(h for h in hashes.values() if isinstance(h, str))
    claimed: set[int] = set()
    for path in candidates:
        size, mtime = found[path]
        h = hashes[path]
        if isinstance(h, Exception):
            plan.bad.append((path, size, mtime, f"cannot read: {h.strerror or h}"))
            continue
        row = known.get(path)
        if row is not None and row.hash == h:
            plan.touched.append((row.id, size, mtime))
            continue
        src = _reusable(same_content.get(h, []), gone_rows, claimed, path)
        if src is not None and src[1]:
            plan.moved.append((src[0].id, path, size, mtime))
            gone_rows.pop(src[0].path, None)
            claimed.add(src[0].id)
        elif src is not None:
            plan.copied.append((src[0].id, path, size, mtime))
        else:
            plan.embed[path] = (size, mtime, h)
            if row is not None:
                plan.changed.add(path)
    plan.gone += list(gone_rows)
    return plan


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


def apply_cheap(store: Store, plan: Plan) -> None:
    """Moves, touches, copies, removals and unreadable files: one transaction, no model needed."""
    with store.transaction():
        store.remove_paths(plan.gone)
        for row_id, path, size, mtime in plan.moved:
            store.move_file(row_id, path, size, mtime)
        for row_id, size, mtime in plan.touched:
            store.touch_file(row_id, size, mtime)
        for src_id, path, size, mtime in plan.copied:
            store.copy_file_row(src_id, path, size, mtime)
        store.record_skipped(plan.bad)


def index_folders(store: Store, encoder: Encoder, dirs: Sequence[str], batch_size: int = 32,
                  workers: int | None = None, max_pixels: int = DEFAULT_MAX_PIXELS,
                  on_start: Callable[[int], None] | None = None,
                  on_progress: Callable[[int], None] | None = None) -> IndexSummary:
    """Index `dirs` into `store` with `encoder`; returns what changed. Safe to interrupt any time."""
    roots = check_roots(dirs)
    store.bind_model(encoder.fingerprint, encoder.dim)
    plan = plan_changes(store, roots, scan(roots), workers=max(2, workers or 4))
    apply_cheap(store, plan)
    summary = IndexSummary(unchanged=plan.unchanged + len(plan.touched), moved=len(plan.moved),
                           added=len(plan.copied), removed=len(plan.gone), still_skipped=plan.still_skipped,
                           skipped=[Skipped(p, r) for p, _, _, r in plan.bad])
    if on_start:
        on_start(len(plan.embed))
    for batch in embed_paths(encoder, list(plan.embed), batch_size=batch_size, workers=workers,
                             max_pixels=max_pixels):
        rows = [(p, *plan.embed[p][:3], w, h, v) for p, (w, h), v in zip(batch.paths, batch.sizes, batch.vectors)]
        bad = [(s.path, *plan.embed[s.path][:2], s.reason) for s in batch.skipped]
        with store.transaction():
            store.insert_files(rows)
            store.record_skipped(bad)
        n_changed = sum(p in plan.changed for p in batch.paths)
        summary.updated += n_changed
        summary.added += len(batch.paths) - n_changed
        summary.skipped += batch.skipped
        if on_progress:
            on_progress(len(batch.paths) + len(batch.skipped))
    summary.total = store.count()
    return summary


def index_from_parquet(store: Store, out_dir: str,
                       on_progress: Callable[[int], None] | None = None) -> IndexSummary:
    """Load the shards of a `clipseek embed` job into `store`, one transaction per shard.

    Every shard's model must be the store's (checked for all shards before anything is written).
    A file already in the store with the same content is left alone, so loading twice adds nothing.
    """
    from clipseek.embed import shards

    manifest = shards.read_manifest(out_dir)
    done = sorted(shards.done_shards(out_dir))
    have = store.fingerprint
    for i in done:
        path = shards.shard_path(out_dir, i)
        fp = shards.shard_fingerprint(path)
        if have is not None and not have.same_weights(fp):
            raise ModelMismatchError(f"{path} holds vectors of model [{fp}] but {store.path} was indexed with "
                             f"model [{have}]; load it into another --db")
        have = have or fp
    summary = IndexSummary()
    if not done:
        summary.total = store.count()
        return summary
    if store.fingerprint is None:
        store.bind_model(have, int(manifest["dim"]))
    for i in done:
        rows, vectors, _ = shards.read_shard(shards.shard_path(out_dir, i))
        skipped = shards.read_skipped(out_dir, i)
        same = store.rows_with_hashes(r[1] for r in rows)
        known = {(r.path, r.hash) for rs in same.values() for r in rs}
        new = [(path, size, mtime, h, w, ht, v) for (path, h, size, mtime, w, ht), v in zip(rows, vectors)
               if (path, h) not in known]
        with store.transaction():
            store.insert_files(new)
            store.record_skipped([(s.path, 0, 0, s.reason) for s in skipped])
        summary.added += len(new)
        summary.unchanged += len(rows) - len(new)
        summary.skipped += skipped
        if on_progress:
            on_progress(len(rows) + len(skipped))
    summary.total = store.count()
    return summary
