"""The store's moments (`MomentRows`, part of `gallery.store.Store`): a video's sampled frames, each
a row of `moments` (id, file_id, time_s, shot, vector), and `MomentsView`, the moments seen as a
store of vectors, so that `search.vector_index.VectorIndex` indexes them as it indexes files (its
own cache, `<db>.moments.faiss`): ids are AUTOINCREMENT, never reused; a moved video keeps its
moments (its file row keeps its id), a copied one gets copies (new ids), a deleted file row takes its
moments with it (trigger `files_moments_gone`). Vectors are checked as file vectors are (finite, of
the store's dim) before they are written, and decoded by `store_vectors.decode` when read."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence

import numpy as np

from clipseek.gallery.dbfile import StoreError
from clipseek.gallery.store_vectors import _chunks, decode


class MomentRows:
    """Moment reads and writes over `self.conn` (writes inside the store's transactions)."""

    conn: sqlite3.Connection
    path: str

    def insert_moments(self, file_id: int, times: Sequence[float], shots: Sequence[bool],
                       vectors: np.ndarray) -> None:
        vectors = np.asarray(vectors, np.float32).reshape(len(times), -1)
        if len(times) and (not np.isfinite(vectors).all() or (self.dim and vectors.shape[1] != self.dim)):
            raise StoreError(f"{self.path}: refusing to store moment vectors that are not finite or not "
                             f"of {self.dim} numbers")
        self.conn.executemany("INSERT INTO moments(file_id, time_s, shot, vector) VALUES (?,?,?,?)",
                              [(file_id, float(t), int(bool(s)), np.ascontiguousarray(v).tobytes())
                               for t, s, v in zip(times, shots, vectors, strict=True)])

    def copy_moments(self, src_id: int, dst_id: int) -> None:
        self.conn.execute("INSERT INTO moments(file_id, time_s, shot, vector) SELECT ?, time_s, shot, "
                          "vector FROM moments WHERE file_id = ? ORDER BY id", (dst_id, src_id))

    def moment_count(self) -> int:
        return self.conn.execute("SELECT count(*) FROM moments").fetchone()[0]

    def moment_files(self) -> tuple[np.ndarray, np.ndarray]:
        """(moment ids ascending, their file ids), int64 (16 bytes a moment)."""
        rows = self.conn.execute("SELECT id, file_id FROM moments ORDER BY id").fetchall()
        a = np.array(rows, np.int64).reshape(-1, 2)
        return a[:, 0].copy(), a[:, 1].copy()

    def moments_of(self, file_id: int) -> list[tuple[int, float, bool]]:
        """(moment id, time_s, shot) of one file, in time order."""
        return [(i, t, bool(s)) for i, t, s in self.conn.execute(
            "SELECT id, time_s, shot FROM moments WHERE file_id = ? ORDER BY time_s", (file_id,))]

    def get_moments_with_vectors(self, ids: Sequence[int]) -> dict[int, tuple[int, float, np.ndarray]]:
        """{moment id: (file id, time_s, vector)} of those among `ids` whose vector can be used."""
        out: dict[int, tuple[int, float, np.ndarray]] = {}
        for chunk in _chunks([int(i) for i in ids], 500):
            marks = ",".join("?" * len(chunk))
            rows = self.conn.execute(f"SELECT id, file_id, time_s, vector FROM moments WHERE id IN ({marks})",
                                     chunk).fetchall()  # placeholders only
            vecs, bad = decode([r[3] for r in rows], self.dim)
            out.update((r[0], (r[1], float(r[2]), vecs[j])) for j, r in enumerate(rows) if j not in bad)
        return out

    def media_info(self, ids: Sequence[int]) -> dict[int, tuple[int, float | None]]:
        """{file id: (kind, duration_s)}."""
        out: dict[int, tuple[int, float | None]] = {}
        for chunk in _chunks([int(i) for i in ids], 500):
            marks = ",".join("?" * len(chunk))
            out.update((i, (k, d)) for i, k, d in self.conn.execute(
                f"SELECT id, kind, duration_s FROM files WHERE id IN ({marks})", chunk))
        return out

    def has_videos(self) -> bool:
        return self.conn.execute("SELECT 1 FROM moments LIMIT 1").fetchone() is not None


class MomentsView:
    """A store's moments with the interface `VectorIndex` reads a store by (db_id, fingerprint, dim,
    path, count, count_upto, ids_upto, iter_vectors)."""

    def __init__(self, store):
        self.store = store
        self.conn = store.conn
        self.path = store.path + ".moments"

    @property
    def db_id(self) -> str:
        return self.store.db_id + ":moments"

    @property
    def fingerprint(self):
        return self.store.fingerprint

    @property
    def dim(self) -> int:
        return self.store.dim

    def count(self) -> int:
        return self.store.moment_count()

    def count_upto(self, max_id: int) -> int:
        return self.conn.execute("SELECT count(*) FROM moments WHERE id <= ?", (max_id,)).fetchone()[0]

    def ids_upto(self, max_id: int) -> np.ndarray:
        cur = self.conn.execute("SELECT id FROM moments WHERE id <= ? ORDER BY id", (max_id,))
        return np.fromiter((r[0] for r in cur), dtype=np.int64)

    def iter_vectors(self, after_id: int = 0, chunk: int = 20_000,
                     report: bool = True) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        last = after_id
        while True:
            rows = self.conn.execute("SELECT id, vector FROM moments WHERE id > ? ORDER BY id LIMIT ?",
                                     (last, chunk)).fetchall()
            if not rows:
                return
            ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            vecs, _ = decode([r[1] for r in rows], self.dim)  # an unusable one: zero, never a result
            last = int(ids[-1])
            yield ids, vecs
