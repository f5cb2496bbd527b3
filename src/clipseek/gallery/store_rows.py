"""The store's file rows (`FileRows`, part of `gallery.store.Store`): the queries and writes of the
`files` and `skipped` tables, each one parameterised SQL. Paths go in as `core.paths.db_value` and
come back as `from_db` (TEXT or BLOB); prefix queries compare bytes (`_under`)."""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence

import numpy as np

from clipseek.core.paths import db_value, from_db, prefix_ranges, quote_path
from clipseek.gallery.dbfile import StoreError
from clipseek.gallery.query import PENDING
from clipseek.gallery.store_vectors import ROW_COLUMNS, rows_where_in


@dataclass(frozen=True)
class FileRow:
    id: int
    path: str
    size: int
    mtime_ns: int
    hash: str
    width: int
    height: int


def _file_row(r: Sequence) -> FileRow:
    """A row of (id, path, size, mtime_ns, hash, width, height) as SQLite returns it."""
    return FileRow(r[0], from_db(r[1]), *r[2:7])


def _under(root: str) -> tuple[int, bytes]:
    """(byte length, bytes) of the folder prefix `root/`, for `substr(CAST(path AS BLOB), 1, n) = prefix`."""
    prefix = os.fsencode(root.rstrip(os.sep) + os.sep)
    return len(prefix), prefix


class FileRows:
    """Row queries and writes over `self.conn` (a Store's connection, inside its transactions)."""

    conn: sqlite3.Connection
    path: str

    def count(self) -> int:
        return self.conn.execute("SELECT count(*) FROM files").fetchone()[0]

    def max_id(self) -> int:
        return self.conn.execute("SELECT coalesce(max(id), 0) FROM files").fetchone()[0]

    def count_upto(self, max_id: int) -> int:
        return self.conn.execute("SELECT count(*) FROM files WHERE id <= ?", (max_id,)).fetchone()[0]

    def ids_upto(self, max_id: int) -> np.ndarray:
        """The row ids <= max_id still in the store, ascending (int64)."""
        cur = self.conn.execute("SELECT id FROM files WHERE id <= ? ORDER BY id", (max_id,))
        return np.fromiter((r[0] for r in cur), dtype=np.int64)

    def rows_under(self, roots: Sequence[str]) -> dict[str, FileRow]:
        """Catalogued files whose path lies inside one of `roots` (absolute folder paths)."""
        out: dict[str, FileRow] = {}
        for root in roots:
            cur = self.conn.execute(
                f"SELECT {ROW_COLUMNS} FROM files "
                "WHERE substr(CAST(path AS BLOB), 1, ?) = ?", _under(root))
            out.update((row.path, row) for row in map(_file_row, cur))
        return out

    def skipped_under(self, roots: Sequence[str]) -> dict[str, tuple[int, int, str]]:
        out: dict[str, tuple[int, int, str]] = {}
        for root in roots:
            cur = self.conn.execute("SELECT path, size, mtime_ns, reason FROM skipped "
                                    "WHERE substr(CAST(path AS BLOB), 1, ?) = ?", _under(root))
            out.update((from_db(r[0]), (r[1], r[2], r[3])) for r in cur)
        return out

    def rows_with_hashes(self, hashes: Iterable[str]) -> dict[str, list[FileRow]]:
        """Rows by content hash; a row known to have an unusable vector is never a source to copy."""
        out: dict[str, list[FileRow]] = {}
        for rows in rows_where_in(self.conn, "hash", sorted(set(hashes))):
            for r in rows:
                if r[0] not in self.unusable:
                    out.setdefault(r[4], []).append(_file_row(r))
        return out

    def get_rows(self, ids: Sequence[int]) -> dict[int, FileRow]:
        out: dict[int, FileRow] = {}
        for rows in rows_where_in(self.conn, "id", [int(i) for i in ids]):
            out.update((r[0], _file_row(r)) for r in rows)
        return out

    def skipped(self) -> list[tuple[str, str]]:
        rows = self.conn.execute("SELECT path, reason FROM skipped").fetchall()
        return sorted((from_db(p), r) for p, r in rows)

    def common_root(self) -> str | None:
        """The deepest folder holding every catalogued file (None when empty). The common prefix of
        a sorted set is that of its first and last items: SQLite sorts every TEXT path before every
        BLOB one, each kind by its bytes, so the first and last of each kind (four index reads) do."""
        ends = self.conn.execute(
            "SELECT (SELECT min(path) FROM files), (SELECT max(path) FROM files WHERE path < X''), "
            "(SELECT min(path) FROM files WHERE path >= X''), (SELECT max(path) FROM files)").fetchone()
        found = [os.fsencode(from_db(v)) for v in ends if v is not None]
        if not found:
            return None
        prefix = os.path.commonprefix(found)
        sep = os.fsencode(os.sep)
        return os.fsdecode(prefix[:prefix.rfind(sep) + 1].rstrip(sep) or sep)

    def facet_rows(self) -> Iterator[tuple[int, str | bytes, int, int, int]]:
        """(id, path as stored: str for TEXT, bytes for BLOB, width, height, capture time in ns, kind,
        duration_s) of
        every row, read from the covering index `files_facets` (no vector is read), in path order.
        The capture time is taken_ns, or mtime_ns where that is NULL or PENDING (`gallery.search.facets`)."""
        return self.conn.execute(f"SELECT id, path, width, height, coalesce(nullif(taken_ns, {PENDING}), "
                                 "mtime_ns), kind, duration_s FROM files INDEXED BY files_facets")

    def pending_taken(self, roots: Sequence[str]) -> list[tuple[int, str]]:
        """(id, path) of the rows under `roots` whose capture time was never read."""
        out: list[tuple[int, str]] = []
        for root in roots:
            cur = self.conn.execute("SELECT id, path FROM files WHERE ((path >= ? AND path < ?) OR "
                                    "(path >= ? AND path < ?)) AND taken_ns = ?", [*prefix_ranges(root), PENDING])
            out += [(i, from_db(p)) for i, p in cur]
        return out

    # ---- perceptual hashes and identical files (clipseek dupes) ----------------------------------
    def rows_without_phash(self, limit: int = 1000, after_id: int = 0) -> list[tuple[int, str]]:
        """(id, path) of up to `limit` photo rows with id > after_id whose perceptual hash is not
        computed (a video has none: its file is never read as an image)."""
        cur = self.conn.execute("SELECT id, path FROM files WHERE phash IS NULL AND kind = 0 AND id > ? "
                                "ORDER BY id LIMIT ?", (after_id, limit))
        return [(i, from_db(p)) for i, p in cur]

    def count_without_phash(self) -> int:
        return self.conn.execute("SELECT count(*) FROM files WHERE phash IS NULL AND kind = 0").fetchone()[0]

    def without_phash(self) -> list[tuple[int, str, str]]:
        """(id, path, content hash) of every row whose perceptual hash is not computed, in id order."""
        cur = self.conn.execute("SELECT id, path, hash FROM files WHERE phash IS NULL AND kind = 0 ORDER BY id")
        return [(i, from_db(p), h) for i, p, h in cur]

    def hashes_after(self, after_id: int) -> list[tuple[int, str, str]]:
        """(id, path, content hash) of every row with id > after_id, in id order."""
        cur = self.conn.execute("SELECT id, path, hash FROM files WHERE id > ? ORDER BY id", (after_id,))
        return [(i, from_db(p), h) for i, p, h in cur]

    def same_content_ids(self) -> list[list[int]]:
        """Ids of the rows sharing one content hash, a list per hash held by more than one row."""
        cur = self.conn.execute("SELECT f.hash, f.id FROM files f JOIN (SELECT hash FROM files GROUP BY "
                                "hash HAVING count(*) > 1) d ON f.hash = d.hash ORDER BY f.hash, f.id")
        out: dict[str, list[int]] = {}
        for h, i in cur:
            out.setdefault(h, []).append(i)
        return list(out.values())

    # ---- writes (call inside `with store.transaction():`) --------------------------------------
    def insert_files(self, rows: Sequence[tuple]) -> None:
        """(path, size, mtime_ns, hash, width, height, vector[, taken_ns[, phash[, kind, duration_s]]])
        (kind 1: a video, whose moments `insert_moments` adds under `last_id()`). A path already present
        is replaced by a new row with a new id (its content changed); its skip record, if any, is cleared.
        Without taken_ns (capture time, None: none) the row's capture time is PENDING; without phash (16
        hex digits, computed from the same decode) it is NULL, filled later (`gallery.derive`)."""
        dim = self.dim
        for r in rows:  # nothing non-finite (or of another length) is ever stored
            v = np.asarray(r[6], dtype=np.float32).reshape(-1)
            if dim and len(v) != dim:
                raise StoreError(f"{self.path}: refusing to store a vector of {len(v)} numbers, not {dim}, "
                                 f"for {quote_path(r[0])}")
            if not np.isfinite(v).all():
                raise StoreError(f"{self.path}: refusing to store a vector that is not finite for "
                                 f"{quote_path(r[0])}")
        paths = [(db_value(r[0]),) for r in rows]
        self.conn.executemany("DELETE FROM files WHERE path = ?", paths)
        self.conn.executemany("DELETE FROM skipped WHERE path = ?", paths)
        self.conn.executemany(
            "INSERT INTO files(path, size, mtime_ns, hash, width, height, vector, taken_ns, phash, kind, "
            "duration_s) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            [(db_value(r[0]), *r[1:6], np.ascontiguousarray(r[6], dtype=np.float32).tobytes(),
              r[7] if len(r) > 7 else PENDING, r[8] if len(r) > 8 else None, r[9] if len(r) > 9 else 0,
              r[10] if len(r) > 10 else None) for r in rows])

    def set_taken(self, items: Iterable[tuple[int, int | None]]) -> None:
        """(row id, capture time in ns or None when the file has none)."""
        self.conn.executemany("UPDATE files SET taken_ns = ? WHERE id = ?", [(t, i) for i, t in items])

    def copy_file_row(self, src_id: int, path: str, size: int, mtime_ns: int) -> None:
        """A new path with the same content as row `src_id`: reuse its vector (a video: its moments
        too), no re-embedding."""
        path = db_value(path)
        self.conn.execute("DELETE FROM files WHERE path = ?", (path,))
        self.conn.execute("DELETE FROM skipped WHERE path = ?", (path,))
        cur = self.conn.execute("INSERT INTO files(path, size, mtime_ns, hash, width, height, vector, phash, "
                                "taken_ns, kind, duration_s) SELECT ?, ?, ?, hash, width, height, vector, "
                                "phash, taken_ns, kind, duration_s FROM files WHERE id = ?",
                                (path, size, mtime_ns, src_id))
        self.conn.execute("INSERT INTO moments(file_id, time_s, shot, vector) SELECT ?, time_s, shot, "
                          "vector FROM moments WHERE file_id = ? ORDER BY id", (cur.lastrowid, src_id))

    def move_file(self, row_id: int, new_path: str, size: int, mtime_ns: int) -> None:
        new_path = db_value(new_path)
        self.conn.execute("DELETE FROM files WHERE path = ? AND id != ?", (new_path, row_id))
        self.conn.execute("DELETE FROM skipped WHERE path = ?", (new_path,))
        self.conn.execute("UPDATE files SET path = ?, size = ?, mtime_ns = ? WHERE id = ?",
                          (new_path, size, mtime_ns, row_id))

    def last_id(self) -> int:
        return self.conn.execute("SELECT last_insert_rowid()").fetchone()[0]

    def touch_file(self, row_id: int, size: int, mtime_ns: int) -> None:
        self.conn.execute("UPDATE files SET size = ?, mtime_ns = ? WHERE id = ?", (size, mtime_ns, row_id))

    def set_phashes(self, items: Sequence[tuple[int, str]]) -> None:
        """(id, perceptual hash as 16 hex digits, or '' when the file could not be read)."""
        self.conn.executemany("UPDATE files SET phash = ? WHERE id = ?", [(h, i) for i, h in items])

    def remove_ids(self, ids: Iterable[int]) -> None:
        ids = [(int(i),) for i in ids]
        self.conn.executemany("DELETE FROM files WHERE id = ?", ids)
        for (i,) in ids:
            self.unusable.pop(i, None)

    def remove_paths(self, paths: Iterable[str]) -> None:
        items = [(db_value(p),) for p in paths]
        self.conn.executemany("DELETE FROM files WHERE path = ?", items)
        self.conn.executemany("DELETE FROM skipped WHERE path = ?", items)

    def record_skipped(self, items: Sequence[tuple[str, int, int, str]]) -> None:
        """(path, size, mtime_ns, reason); a file that turned bad loses its old vector row."""
        items = [(db_value(i[0]), *i[1:]) for i in items]
        self.conn.executemany("DELETE FROM files WHERE path = ?", [(i[0],) for i in items])
        self.conn.executemany("INSERT INTO skipped(path, size, mtime_ns, reason) VALUES (?,?,?,?) "
                              "ON CONFLICT(path) DO UPDATE SET size = excluded.size, "
                              "mtime_ns = excluded.mtime_ns, reason = excluded.reason", items)
