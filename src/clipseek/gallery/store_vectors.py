"""The store's reads of vectors (`VectorReads`, part of `gallery.store.Store`): where a database row's
vector becomes an array, and the one place where it is trusted or not.

A row's vector is a BLOB of `dim` float32. A database may come from anyone (or from an older version
that stored NaN vectors), so a blob of another length (3 bytes, empty, another dim), one that is not
a BLOB, or one holding NaN or an infinity is *unusable*: it never reaches a search, a duplicate pair
or the vector index as numbers. `decode` gives such a row a zero vector (so row positions stay aligned
with the ids, as the vector index needs: `iter_vectors`) and notes it; the other reads leave it out
(a search, `dupes`), each newly found one is reported once per connection (one line on the
"clipseek.gallery.store" logger, with the count), and `clipseek index` embeds the file again
(`scan_unusable`, called by `gallery.sync`). A pHash that is not 16 hex digits is left out likewise.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from typing import Iterator, Sequence

import numpy as np

log = logging.getLogger("clipseek.gallery.store")

MAX_DIM = 65_536
_PHASH = re.compile(r"[0-9a-f]{16}")


def decode(blobs: Sequence, dim: int) -> tuple[np.ndarray, dict[int, str]]:
    """(n, dim) float32 vectors of `blobs`, and {position: reason} of the unusable ones (zeroed)."""
    n, size = len(blobs), 4 * dim
    bad = {i: _size_reason(b, size) for i, b in enumerate(blobs)
           if not isinstance(b, bytes) or len(b) != size}
    if not bad:
        vecs = np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(n, dim)
    else:
        vecs = np.zeros((n, dim), np.float32)
        good = [i for i in range(n) if i not in bad]
        if good:
            vecs[good] = np.frombuffer(b"".join(blobs[i] for i in good), dtype=np.float32).reshape(-1, dim)
    finite = np.isfinite(vecs).all(axis=1) if n else np.ones(0, bool)
    if not finite.all():
        vecs = vecs.copy() if not vecs.flags.writeable else vecs
        for i in np.flatnonzero(~finite).tolist():
            bad[i] = "not finite"
            vecs[i] = 0
    return vecs, bad


def _size_reason(blob, size: int) -> str:
    if not isinstance(blob, bytes):
        return "not a blob"
    return "empty" if not blob else f"of {len(blob)} bytes, not {size}"


def summary(reasons: dict[int, str]) -> str:
    """"2 of the wrong size, 1 not finite" for {id: reason}."""
    kinds = Counter("not finite" if r == "not finite" else "not a blob" if r == "not a blob"
                    else "of the wrong size" for r in reasons.values())
    return ", ".join(f"{n} {k}" for k, n in sorted(kinds.items(), key=lambda kv: -kv[1]))


class VectorReads:
    """The vector reads of `Store` (it provides `conn`, `path`, `dim` and `_file_row`)."""

    def _init_vector_reads(self) -> None:
        self.unusable: dict[int, str] = {}  # row id -> why its vector cannot be used (found so far)
        self._reported: set[int] = set()
        self._checked = 0  # `scan_unusable` has looked at every row up to this id

    def _decode(self, ids: Sequence[int], blobs: Sequence) -> tuple[np.ndarray, dict[int, str]]:
        """`decode` with the store's dim (that of the first blob in a store that has none recorded,
        as only tests make); the unusable rows found are noted by id."""
        dim = self.dim or next((len(b) // 4 for b in blobs if isinstance(b, bytes) and b), 0)
        vecs, bad = decode(blobs, dim)
        self.unusable.update((int(ids[i]), why) for i, why in bad.items())
        return vecs, bad

    def report_unusable(self) -> None:
        """One line for the unusable rows found since the last one (nothing when there are none)."""
        new = {i: r for i, r in self.unusable.items() if i not in self._reported}
        if new:
            self._reported.update(new)
            log.warning("%s: %d rows have an unusable stored vector (%s): left out; `clipseek index` on "
                        "their folders embeds them again", self.path, len(new), summary(new))

    @property
    def checked_upto(self) -> int:
        return self._checked

    def mark_reported(self, ids) -> None:
        """The caller said these in its own words: no second line for them."""
        self._reported.update(ids)

    def get_rows_with_vectors(self, ids: Sequence[int]) -> dict[int, tuple]:
        """{id: (FileRow, float32 vector)} of the rows among `ids` whose vector can be used."""
        out: dict[int, tuple] = {}
        for rows in rows_where_in(self.conn, "id", [int(i) for i in ids], vector=True):
            vecs, bad = self._decode([r[0] for r in rows], [r[7] for r in rows])
            out.update((r[0], (self._file_row(r), vecs[j])) for j, r in enumerate(rows) if j not in bad)
        self.report_unusable()
        return out

    def vector(self, row_id: int) -> np.ndarray:
        """The vector of row `row_id`; KeyError when it has none that can be used."""
        return self.get_rows_with_vectors([row_id])[row_id][1].copy()

    def iter_vectors(self, after_id: int = 0, chunk: int = 20_000,
                     report: bool = True) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(ids int64, vectors float32 (n, D)) in id order, for ids > after_id, `chunk` rows at a time;
        an unusable row's vector is zero (left out of every result: see the module doc)."""
        last = after_id
        try:
            while True:
                rows = self.conn.execute("SELECT id, vector FROM files WHERE id > ? ORDER BY id LIMIT ?",
                                         (last, chunk)).fetchall()
                if not rows:
                    return
                ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
                vecs, _ = self._decode(ids, [r[1] for r in rows])
                last = int(ids[-1])
                yield ids, vecs
        finally:
            if report:
                self.report_unusable()

    def all_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) of every row whose vector can be used."""
        parts = list(self.iter_vectors())
        if not parts:
            return np.zeros(0, np.int64), np.zeros((0, self.dim), np.float32)
        ids, vecs = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        keep = ~np.isin(ids, np.fromiter(self.unusable, np.int64, len(self.unusable)))
        return ids[keep], vecs[keep]

    def scan_unusable(self, after_id: int = 0) -> dict[int, str]:
        """Check the vector of every row with an id over `after_id` not checked yet on this connection
        (ids are never reused and a row's vector never changes, so each row once); {id: reason} of
        the unusable rows found there. `checked_upto` is then the highest id checked."""
        self._checked = max(self._checked, after_id)
        for ids, _ in self.iter_vectors(after_id=self._checked, report=False):
            self._checked = int(ids[-1])
        live: set[int] = set()
        for chunk in _chunks(sorted(self.unusable), 500):
            marks = ",".join("?" * len(chunk))
            live.update(r[0] for r in self.conn.execute(f"SELECT id FROM files WHERE id IN ({marks})", chunk))
        for gone in set(self.unusable) - live:  # removed since (by this run or another process)
            del self.unusable[gone]
        return dict(self.unusable)

    def phashes(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids int64, 64-bit perceptual hashes uint64) of every row that has one (16 hex digits: any
        other value a database holds is left out), in id order."""
        rows = [r for r in self.conn.execute("SELECT id, phash FROM files WHERE phash IS NOT NULL AND "
                                             "phash != '' ORDER BY id")
                if isinstance(r[1], str) and _PHASH.fullmatch(r[1])]
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        codes = np.fromiter((int(r[1], 16) for r in rows), dtype=np.uint64, count=len(rows))
        return ids, codes


ROW_COLUMNS = "id, path, size, mtime_ns, hash, width, height"  # a FileRow's columns, in its order


def rows_where_in(conn, column: str, values: list, vector: bool = False) -> Iterator[list]:
    """The files rows (ROW_COLUMNS, then `vector` when asked) whose `column` is one of `values`, fetched
    500 values at a time (SQLite's placeholder limit): one list of rows per chunk."""
    if column not in ("id", "hash"):
        raise ValueError(f"not a lookup column: {column!r}")
    cols = ROW_COLUMNS + (", vector" if vector else "")
    for chunk in _chunks(values, 500):
        marks = ",".join("?" * len(chunk))
        yield conn.execute(f"SELECT {cols} FROM files WHERE {column} IN ({marks})", chunk).fetchall()


def _chunks(items: list, n: int) -> Iterator[list]:
    for i in range(0, len(items), n):
        yield items[i:i + n]
