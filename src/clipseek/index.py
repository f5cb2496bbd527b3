"""A FAISS index derived from the store (the store stays the truth; this is a cache).

Small galleries get an exact inner-product index (`IndexFlatIP`); above `HNSW_THRESHOLD` vectors an
HNSW graph over 8-bit scalar-quantized vectors (about 0.8 KB per 512-d vector with the graph, so a
million images fit in well under 1.5 GB). FAISS positions map to the store's row ids through an int64
array kept beside the index (faiss's IndexIDMap made single queries ~30x slower on a busy machine).

Persisted beside the database as `<db>.faiss`, `<db>.faiss.ids.npy` and `<db>.faiss.json` (which DB,
which model, the highest row id and the row count it covers). Row ids are never reused, so on open:
  - new rows (id > max_id) are added to the index, no rebuild;
  - rows deleted since (count of ids <= max_id dropped) are filtered out of results, searching a few
    more neighbours to make up for them, until they exceed `REBUILD_FRACTION`; then it rebuilds.
Deleting the two files loses nothing: the next search rebuilds them from the store.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass

import numpy as np

HNSW_THRESHOLD = 50_000
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 128
REBUILD_FRACTION = 0.1
TRAIN_SAMPLE = 100_000
FORMAT = 1


@dataclass
class IndexState:
    db_id: str
    fingerprint: str
    kind: str        # "flat" or "hnsw-sq8"
    max_id: int      # highest store row id in the index
    count: int       # vectors in the index
    deleted: int = 0  # of those, rows no longer in the store (filtered at query time)
    format: int = FORMAT


def _faiss():
    import faiss

    return faiss


def choose_kind(n: int, threshold: int = HNSW_THRESHOLD) -> str:
    return "flat" if n < threshold else "hnsw-sq8"


def new_index(kind: str, dim: int, train: np.ndarray | None = None, m: int = HNSW_M,
              ef_construction: int = HNSW_EF_CONSTRUCTION):
    faiss = _faiss()
    if kind == "flat":
        base = faiss.IndexFlatIP(dim)
    elif kind == "hnsw-sq8":
        base = faiss.IndexHNSWSQ(dim, faiss.ScalarQuantizer.QT_8bit, m, faiss.METRIC_INNER_PRODUCT)
        base.hnsw.efConstruction = ef_construction
        if train is None or len(train) == 0:
            raise ValueError("hnsw-sq8 needs training vectors")
        base.train(np.ascontiguousarray(train, dtype=np.float32))
    else:
        raise ValueError(f"unknown index kind {kind!r}")
    return base


class VectorIndex:
    """ids + vectors -> top-k by inner product. Use `VectorIndex.for_store(store)` in the app."""

    def __init__(self, index, state: IndexState, ids: np.ndarray | None = None):
        self.index = index
        self.state = state
        self.ids = np.zeros(0, np.int64) if ids is None else ids  # faiss position -> store row id
        self.set_ef_search(HNSW_EF_SEARCH)

    # ---- building from arrays (benchmarks, rebuilds) ------------------------------------------
    @classmethod
    def build(cls, ids: np.ndarray, vectors: np.ndarray, kind: str | None = None, db_id: str = "",
              fingerprint: str = "", **kw) -> "VectorIndex":
        kind = kind or choose_kind(len(ids))
        rng = np.random.default_rng(0)
        sample = vectors[rng.choice(len(vectors), min(len(vectors), TRAIN_SAMPLE), replace=False)] \
            if kind != "flat" else None
        vi = cls(new_index(kind, vectors.shape[1], sample, **kw), IndexState(db_id, fingerprint, kind, 0, 0))
        vi.add(ids, vectors)
        return vi

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids) == 0:
            return
        self.index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        self.ids = np.concatenate([self.ids, np.asarray(ids, dtype=np.int64)])
        self.state.max_id = max(self.state.max_id, int(np.max(ids)))
        self.state.count += len(ids)

    def set_ef_search(self, ef: int) -> None:
        """HNSW search breadth (higher: better recall, slower). Each query uses max(ef, k)."""
        self.ef_search = ef
        if hasattr(self.index, "hnsw"):
            self.index.hnsw.efSearch = ef

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids), each (m, k'), best first; ids of -1 mark empty slots."""
        q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        k = max(1, min(int(k), max(self.state.count, 1)))
        if hasattr(self.index, "hnsw"):
            self.index.hnsw.efSearch = max(self.ef_search, k)
        scores, pos = self.index.search(q, k)
        ids = np.where(pos >= 0, self.ids[np.maximum(pos, 0)], -1) if len(self.ids) else pos
        return scores, ids

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    # ---- persistence -----------------------------------------------------------------------------
    def save(self, path: str) -> None:
        """Atomic: write to temp files, then rename (index first, state last)."""
        faiss = _faiss()
        faiss.write_index(self.index, path + ".tmp")
        with open(path + ".ids.tmp", "wb") as f:
            np.save(f, self.ids)
        os.replace(path + ".tmp", path)
        os.replace(path + ".ids.tmp", path + ".ids.npy")
        with open(path + ".json.tmp", "w") as f:
            json.dump(asdict(self.state), f)
        os.replace(path + ".json.tmp", path + ".json")

    @classmethod
    def load(cls, path: str) -> "VectorIndex | None":
        """The saved index, or None if missing or unreadable (it is only a cache)."""
        try:
            with open(path + ".json") as f:
                state = IndexState(**json.load(f))
            index = _faiss().read_index(path)
            ids = np.load(path + ".ids.npy")
        except Exception:
            return None
        if state.format != FORMAT or index.ntotal != state.count or len(ids) != state.count:
            return None
        return cls(index, state, ids)

    # ---- keeping it in step with the store ------------------------------------------------------
    @classmethod
    def for_store(cls, store, path: str | None = None, threshold: int = HNSW_THRESHOLD) -> "VectorIndex":
        """Load the index persisted beside the store, extend or rebuild it if stale, save if changed."""
        path = path or store.path + ".faiss"
        vi = cls.load(path)
        if vi is not None and vi.sync(store, threshold):
            vi.save(path)
        elif vi is None:
            vi = cls.rebuild(store, threshold)
            vi.save(path)
        return vi

    def sync(self, store, threshold: int = HNSW_THRESHOLD) -> bool:
        """Bring this index up to date with the store: extend it with new rows, or rebuild it when
        it belongs to another DB/model, too many rows were deleted, or it outgrew the exact index.
        Returns True if anything changed (so the caller saves it)."""
        s = self.state
        if s.db_id != store.db_id or s.fingerprint != (store.fingerprint or ""):
            self._replace(self.rebuild(store, threshold))
            return True
        live_old = store.count_upto(s.max_id)
        deleted = s.count - live_old
        n_new = store.count() - live_old
        want = choose_kind(live_old + n_new, threshold)
        if deleted > REBUILD_FRACTION * max(s.count, 1) or (want != s.kind and want == "hnsw-sq8"):
            self._replace(self.rebuild(store, threshold))
            return True
        changed = deleted != s.deleted or n_new > 0
        s.deleted = deleted
        for ids, vecs in store.iter_vectors(after_id=s.max_id):
            self.add(ids, vecs)
        return changed

    def _replace(self, other: "VectorIndex") -> None:
        self.index, self.state, self.ids = other.index, other.state, other.ids
        self.set_ef_search(self.ef_search)

    @classmethod
    def rebuild(cls, store, threshold: int = HNSW_THRESHOLD) -> "VectorIndex":
        n = store.count()
        kind = choose_kind(n, threshold)
        dim = int(store.meta("dim") or 0) or 1
        state = IndexState(store.db_id, store.fingerprint or "", kind, 0, 0)
        chunks = store.iter_vectors(chunk=TRAIN_SAMPLE)
        first = next(chunks, None)
        vi = cls(new_index(kind, dim, first[1] if first is not None else None), state)
        if first is not None:
            vi.add(*first)
        for ids, vecs in chunks:
            vi.add(ids, vecs)
        return vi
