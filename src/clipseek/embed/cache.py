"""On-disk cache of image embeddings, keyed by file identity and the encoder fingerprint.

A vector is computed once per (image file, model): the key is the absolute path plus size and mtime
(a changed file is a miss), and the encoder's `fingerprint` (model identity, dtype, preprocessing).
Unreadable files are cached too (with their reason), so a second run does not decode them again.
SQLite from the standard library, parameterised SQL, one transaction per batch; paths are stored as
`core.paths.db_value` says (TEXT, or a BLOB of the bytes for a name that is not UTF-8).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from clipseek._io import default_cache_dir
from clipseek.core.paths import db_value
from clipseek.embed.stages import EmbedBatch, embed_all, embed_paths
from clipseek.errors import Skipped, UsageError
from clipseek.model.fingerprint import Fingerprint

if TYPE_CHECKING:
    from clipseek.model.base import Encoder

SCHEMA_VERSION = 1
# Skips that depend on the run, not on the file: a missing file, and the limits (--max-pixels,
# --max-file-mb), which another run may set higher. These are not cached.
UNCACHED_REASONS = ("file not found", "too many pixels", "file too large")


def file_identity(path: str) -> tuple[str, int, int] | None:
    """(absolute path, size, mtime_ns), or None when the file cannot be stat'ed."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return os.path.abspath(path), st.st_size, st.st_mtime_ns


class EmbeddingCache:
    def __init__(self, directory: str | os.PathLike | None = None):
        self.directory = Path(directory) if directory else default_cache_dir()
        self.path = self.directory / "embeddings.sqlite3"
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(str(self.path), timeout=30)
            self.db.execute("PRAGMA journal_mode=WAL")
            self._ensure_schema()
        except (OSError, sqlite3.Error) as e:
            raise UsageError(f"cannot use the embedding cache at {self.path} ({e}); "
                             "pass --cache-dir DIR or --no-cache") from None

    def _ensure_schema(self) -> None:
        db = self.db
        db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is not None and int(row[0]) != SCHEMA_VERSION:  # an older layout: start afresh
            db.execute("DROP TABLE IF EXISTS image_vectors")
        db.execute("""CREATE TABLE IF NOT EXISTS image_vectors (
            fingerprint TEXT NOT NULL, path TEXT NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
            vector BLOB, width INTEGER, height INTEGER, reason TEXT,
            PRIMARY KEY (fingerprint, path))""")
        db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
                   (str(SCHEMA_VERSION),))
        db.commit()

    def close(self) -> None:
        self.db.close()

    def lookup(self, fingerprint: Fingerprint, ident: tuple[str, int, int]):
        """A cached np.ndarray vector, a Skipped record, or None (miss or stale)."""
        row = self.db.execute("SELECT size, mtime_ns, vector, reason FROM image_vectors "
                              "WHERE fingerprint = ? AND path = ?", (str(fingerprint), db_value(ident[0]))).fetchone()
        if row is None or (row[0], row[1]) != (ident[1], ident[2]):
            return None
        if row[2] is None:
            return Skipped(ident[0], row[3] or "unreadable")
        return np.frombuffer(row[2], dtype=np.float32)

    def store(self, fingerprint: Fingerprint, entries) -> None:
        """entries: (ident, vector or None, (w, h) or None, reason or None); one transaction."""
        with self.db:
            self.db.executemany(
                "INSERT OR REPLACE INTO image_vectors (fingerprint, path, size, mtime_ns, vector, width, "
                "height, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(str(fingerprint), db_value(i[0]), i[1], i[2],
                  None if v is None else np.ascontiguousarray(v, np.float32).tobytes(),
                  wh[0] if wh else None, wh[1] if wh else None, r) for i, v, wh, r in entries])

    def count(self, fingerprint: Fingerprint | None = None) -> int:
        if fingerprint is None:
            return self.db.execute("SELECT COUNT(*) FROM image_vectors").fetchone()[0]
        return self.db.execute("SELECT COUNT(*) FROM image_vectors WHERE fingerprint = ?",
                               (str(fingerprint),)).fetchone()[0]


def embed_cached(encoder: Encoder, paths: Sequence[str], cache: EmbeddingCache | None = None,
                 on_progress: Callable[[int], None] | None = None, **kwargs) -> EmbedBatch:
    """Like `pipeline.embed_all`, but vectors (and skips) come from `cache` when the file is unchanged.

    The result keeps the input order: `paths[i]` for the readable files, `skipped` for the others.
    """
    if cache is None:
        return embed_all(encoder, paths, on_progress=on_progress, **kwargs)
    fp = encoder.fingerprint
    found: dict[str, object] = {}
    idents: dict[str, tuple[str, int, int]] = {}
    misses: list[str] = []
    for p in paths:
        ident = file_identity(p)
        hit = cache.lookup(fp, ident) if ident else None
        if hit is None:
            misses.append(p)
            if ident:
                idents[p] = ident
        else:
            found[p] = hit if isinstance(hit, np.ndarray) else Skipped(p, hit.reason)
    if on_progress and len(paths) > len(misses):
        on_progress(len(paths) - len(misses))
    for batch in embed_paths(encoder, misses, on_progress=on_progress, **kwargs):
        entries = []  # stored batch by batch: an interrupted run keeps what it has embedded
        for p, v, wh in zip(batch.paths, batch.vectors, batch.sizes):
            found[p] = v
            if p in idents:
                entries.append((idents[p], v, wh, None))
        for s in batch.skipped:
            found[s.path] = s
            if s.path in idents and not s.reason.startswith(UNCACHED_REASONS):
                entries.append((idents[s.path], None, None, s.reason))
        cache.store(fp, entries)
    out_paths, vecs, skipped = [], [], []
    for p in paths:
        r = found.get(p, Skipped(p, "not processed"))
        if isinstance(r, Skipped):
            skipped.append(r)
        else:
            out_paths.append(p)
            vecs.append(r)
    dim = encoder.dim
    arr = np.stack(vecs).astype(np.float32) if vecs else np.zeros((0, dim), np.float32)
    return EmbedBatch(out_paths, arr, skipped, [])
