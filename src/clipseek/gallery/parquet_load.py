"""`clipseek index --from-parquet DIR`: the shards of a `clipseek embed` job into a gallery, no model needed.

The folder is read through `embed.shard_load`, which trusts none of it: a bad manifest refuses the
load, a shard file or a row that fails a check is skipped with its reason. Here: the job's model must
be the store's (and every shard's the job's), checked for all shards before anything is written; each
shard is one transaction; a path is loaded once (a second row for it is skipped); a file already in the
store with the same content is left alone, so loading twice adds nothing.
"""

from __future__ import annotations

import os
from typing import Callable

from clipseek.errors import ModelMismatchError, Skipped
from clipseek.gallery.store import Store
from clipseek.gallery.sync import IndexSummary


def index_from_parquet(store: Store, out_dir: str,
                       on_progress: Callable[[int], None] | None = None) -> IndexSummary:
    """Load the shards of a `clipseek embed` job into `store` (see the module doc); what was skipped,
    and why, is in `summary.skipped`."""
    from clipseek.embed import shard_load, shards

    job = shard_load.load_manifest(out_dir)
    summary = IndexSummary()
    done, bad = _usable_shards(store, out_dir, job)
    summary.skipped += bad
    if done and store.fingerprint is None:
        store.bind_model(job.fingerprint, job.dim)
    seen: set[str] = set()
    for i in done:
        path = shards.shard_path(out_dir, i)
        try:
            shard = shard_load.load_shard(path, job.dim, job.root)
        except shards.BadShard as e:
            summary.skipped.append(Skipped(e.path, e.reason))
            continue
        _load_shard(store, out_dir, i, shard, seen, summary)
        if on_progress:
            on_progress(len(shard.rows) + len(shard.refused))
    summary.total = store.count()
    return summary


def _usable_shards(store: Store, out_dir: str, job) -> tuple[list[int], list[Skipped]]:
    """The shards to load, and those skipped: unreadable, or of another model than their job's.
    ModelMismatchError when the job's model is not the store's; ShardFolderError when shards exist
    but the manifest names no model."""
    from clipseek.embed import shards

    done = sorted(shards.done_shards(out_dir))
    if not done:
        return [], []
    if job.fingerprint is None:
        raise shards.ShardFolderError(f"{out_dir} has shards but its {shards.MANIFEST} names no model")
    have = store.fingerprint
    if have is not None and not have.same_weights(job.fingerprint):
        raise ModelMismatchError(f"{out_dir} holds vectors of model [{job.fingerprint}] but {store.path} was "
                                 f"indexed with model [{have}]; load it into another --db")
    if have is not None and store.dim != job.dim:
        raise ModelMismatchError(f"{out_dir} holds vectors of {job.dim} dimensions but {store.path} holds "
                                 f"{store.dim}; load it into another --db")
    usable, bad = [], []
    for i in done:
        path = shards.shard_path(out_dir, i)
        try:
            fp = shards.shard_fingerprint(path)
        except shards.BadShard as e:
            bad.append(Skipped(e.path, e.reason))
            continue
        if not fp.same_weights(job.fingerprint):
            bad.append(Skipped(path, f"vectors of model [{fp}], not the job's [{job.fingerprint}]"))
        else:
            usable.append(i)
    return usable, bad


def _load_shard(store: Store, out_dir: str, i: int, shard, seen: set[str], summary: IndexSummary) -> None:
    """One checked shard into the store, in one transaction; a path seen in an earlier row is refused."""
    from clipseek.embed import shard_load

    name = os.path.basename(out_dir.rstrip(os.sep)) + os.sep + f"shard-{i:05d}.parquet"
    new, fresh = [], []
    same = store.rows_with_hashes(r[1] for r in shard.rows)
    known = {(r.path, r.hash) for rs in same.values() for r in rs}
    for row, v in zip(shard.rows, shard.vectors):
        if row[0] in seen:
            summary.skipped.append(Skipped(row[0], f"{name}: a second row for this path (the first kept)"))
            continue
        seen.add(row[0])
        fresh.append(row)
        if (row[0], row[1]) not in known:
            path, h, size, mtime, w, ht = row
            new.append((path, size, mtime, h, w, ht, v))
    skipped, note = shard_load.load_skipped(out_dir, i)
    skipped = [s for s in skipped if s.path not in seen]  # a file embedded elsewhere keeps its row
    seen.update(s.path for s in skipped)
    with store.transaction():
        store.insert_files(new)
        store.record_skipped([(s.path, 0, 0, s.reason) for s in skipped])
    summary.added += len(new)
    summary.unchanged += len(fresh) - len(new)
    summary.skipped += shard.refused + skipped + ([note] if note else [])
