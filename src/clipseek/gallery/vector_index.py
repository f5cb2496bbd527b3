"""A FAISS index derived from the store (the store stays the truth; this is a cache).

Small galleries get an exact inner-product index (`IndexFlatIP`). Above `APPROX_THRESHOLD` vectors
the default is "pq-sq8": an exhaustive scan of 4-bit product-quantizer codes with SIMD look-up tables
(faiss "fast scan", 2 dimensions per 4-bit code: 256 bytes for 512-d) picks `REFINE_CANDIDATES`
candidates, and 8-bit scalar-quantized copies of the vectors (1 byte per dimension) re-score them
(`IndexRefine`); the gallery then re-ranks the survivors with the exact stored vectors. For 512-d that
is 0.77 KB per vector, a million vectors in about 0.6 GB. Why not a graph: on random (structureless)
vectors HNSW reached recall@10 0.56 at 100k, and building it took minutes per 100k vectors on two
cores; the scan reaches 0.97 at 1M and builds in seconds. Adding vectors is an append (no re-training).
The approximate index is split into `PARTS` halves searched in parallel threads (faiss releases the
GIL), because a single query is otherwise scanned by one core. "hnsw-sq8" remains available by name.

FAISS positions map to the store's row ids through int64 arrays kept beside the index (faiss's
IndexIDMap made single queries ~30x slower on a busy machine).

Persisted beside the database as `<db>.faiss` (and `<db>.faiss.1`, ... for further parts),
`<db>.faiss.ids.npy` and `<db>.faiss.json` (which DB, which model, the highest row id and the rows
each part covers). Row ids are never reused, so on open:
  - new rows (id > max_id) are added to the index, no rebuild;
  - rows deleted since (count of ids <= max_id dropped) are filtered out of results, searching a few
    more neighbours to make up for them, until they exceed `REBUILD_FRACTION`; then it rebuilds.
Deleting these files loses nothing: the next search rebuilds them from the store.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

import numpy as np

APPROX_THRESHOLD = 50_000
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 128
REFINE_CANDIDATES = 1024   # pq-sq8: candidates from the 4-bit scan re-scored with the 8-bit vectors
PARTS = 2                  # pq-sq8: parts searched in parallel (one per core here)
REBUILD_FRACTION = 0.1
TRAIN_SAMPLE = 100_000
FORMAT = 2

_pool: ThreadPoolExecutor | None = None


@dataclass
class IndexState:
    db_id: str
    fingerprint: str  # str(Fingerprint) of the store's model, "" before one is bound
    kind: str        # "flat", "pq-sq8" or "hnsw-sq8"
    max_id: int      # highest store row id in the index
    count: int       # vectors in the index
    deleted: int = 0  # of those, rows no longer in the store (filtered at query time)
    parts: list[int] = field(default_factory=list)  # vectors per part
    format: int = FORMAT


def _faiss():
    import faiss

    return faiss


def choose_kind(n: int, threshold: int = APPROX_THRESHOLD) -> str:
    return "flat" if n < threshold else "pq-sq8"


def pq_subquantizers(dim: int) -> int:
    """4-bit PQ with 2 dimensions per code where possible; fast scan needs an even count."""
    m = dim // 2
    while m > 2 and (dim % m or m % 2):
        m -= 1
    return max(m, 2)


def new_index(kind: str, dim: int, train: np.ndarray | None = None, m: int = HNSW_M,
              ef_construction: int = HNSW_EF_CONSTRUCTION):
    faiss = _faiss()
    if kind == "flat":
        return faiss.IndexFlatIP(dim)
    if kind not in ("hnsw-sq8", "pq-sq8"):
        raise ValueError(f"unknown index kind {kind!r}")
    if train is None or len(train) == 0:
        raise ValueError(f"{kind} needs training vectors")
    if kind == "hnsw-sq8":
        base = faiss.IndexHNSWSQ(dim, faiss.ScalarQuantizer.QT_8bit, m, faiss.METRIC_INNER_PRODUCT)
        base.hnsw.efConstruction = ef_construction
    else:
        base = faiss.index_factory(dim, f"PQ{pq_subquantizers(dim)}x4fs,Refine(SQ8)",
                                   faiss.METRIC_INNER_PRODUCT)
    base.train(np.ascontiguousarray(train, dtype=np.float32))
    return base


def _clone(index):
    faiss = _faiss()
    return faiss.deserialize_index(faiss.serialize_index(index))


class VectorIndex:
    """ids + vectors -> top-k by inner product. Use `VectorIndex.for_store(store)` in the app."""

    def __init__(self, parts: list, state: IndexState, ids: list[np.ndarray] | None = None):
        self.parts = parts
        self.state = state
        self.ids = ids if ids is not None else [np.zeros(0, np.int64) for _ in parts]  # position -> row id
        if not state.parts:
            state.parts = [int(p.ntotal) for p in parts]
        self.set_ef_search(HNSW_EF_SEARCH)
        self.refine_candidates = REFINE_CANDIDATES

    @property
    def index(self):
        """The (first) faiss index."""
        return self.parts[0]

    # ---- building from arrays (benchmarks, rebuilds) ------------------------------------------
    @classmethod
    def empty(cls, kind: str, dim: int, train: np.ndarray | None, db_id: str = "", fingerprint: str = "",
              **kw) -> "VectorIndex":
        first = new_index(kind, dim, train, **kw)
        parts = [first] + [_clone(first) for _ in range(PARTS - 1)] if kind == "pq-sq8" else [first]
        return cls(parts, IndexState(db_id, fingerprint, kind, 0, 0))

    @classmethod
    def build(cls, ids: np.ndarray, vectors: np.ndarray, kind: str | None = None, db_id: str = "",
              fingerprint: str = "", **kw) -> "VectorIndex":
        kind = kind or choose_kind(len(ids))
        rng = np.random.default_rng(0)
        sample = vectors[rng.choice(len(vectors), min(len(vectors), TRAIN_SAMPLE), replace=False)] \
            if kind != "flat" else None
        vi = cls.empty(kind, vectors.shape[1], sample, db_id, fingerprint, **kw)
        step = -(-len(ids) // len(vi.parts))
        for i in range(0, len(ids), step):
            vi.add(ids[i:i + step], vectors[i:i + step])
        return vi

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Append vectors (to the smallest part): no rebuild, no re-training."""
        if len(ids) == 0:
            return
        p = int(np.argmin(self.state.parts))
        self.parts[p].add(np.ascontiguousarray(vectors, dtype=np.float32))
        self.ids[p] = np.concatenate([self.ids[p], np.asarray(ids, dtype=np.int64)])
        self.state.parts[p] += len(ids)
        self.state.max_id = max(self.state.max_id, int(np.max(ids)))
        self.state.count += len(ids)

    def set_ef_search(self, ef: int) -> None:
        """HNSW search breadth (higher: better recall, slower). Each query uses max(ef, k)."""
        self.ef_search = ef
        for part in self.parts:
            if hasattr(part, "hnsw"):
                part.hnsw.efSearch = ef

    def _search_part(self, p: int, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        part, params = self.parts[p], None
        k = max(1, min(k, int(part.ntotal)))
        if hasattr(part, "hnsw"):
            part.hnsw.efSearch = max(self.ef_search, k)
        elif self.state.kind == "pq-sq8":
            params = _faiss().IndexRefineSearchParameters()
            params.k_factor = float(max(2.0, self.refine_candidates / k))
        scores, pos = part.search(q, k, params=params)
        ids = np.where(pos >= 0, self.ids[p][np.maximum(pos, 0)], -1) if len(self.ids[p]) else pos
        return scores, ids

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids), each (m, k'), best first; ids of -1 mark empty slots."""
        global _pool
        q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        k = max(1, min(int(k), max(self.state.count, 1)))
        live = [p for p in range(len(self.parts)) if self.parts[p].ntotal > 0] or [0]
        if len(live) == 1:
            return self._search_part(live[0], q, k)
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=PARTS, thread_name_prefix="clipseek-search")
        results = list(_pool.map(lambda p: self._search_part(p, q, k), live))
        scores = np.concatenate([r[0] for r in results], axis=1)
        ids = np.concatenate([r[1] for r in results], axis=1)
        scores = np.where(ids >= 0, scores, -np.inf)
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(scores, order, 1), np.take_along_axis(ids, order, 1)

    @property
    def ntotal(self) -> int:
        return int(sum(p.ntotal for p in self.parts))

    # ---- persistence -----------------------------------------------------------------------------
    @staticmethod
    def _part_path(path: str, p: int) -> str:
        return path if p == 0 else f"{path}.{p}"

    def save(self, path: str) -> None:
        """Write every file to a temp name and rename; the state (written last) names what is valid."""
        faiss = _faiss()
        for p, part in enumerate(self.parts):
            faiss.write_index(part, self._part_path(path, p) + ".tmp")
        with open(path + ".ids.tmp", "wb") as f:
            np.save(f, np.concatenate(self.ids))
        for p in range(len(self.parts)):
            os.replace(self._part_path(path, p) + ".tmp", self._part_path(path, p))
        os.replace(path + ".ids.tmp", path + ".ids.npy")
        with open(path + ".json.tmp", "w") as f:
            json.dump(asdict(self.state), f)
        os.replace(path + ".json.tmp", path + ".json")

    @classmethod
    def load(cls, path: str) -> "VectorIndex | None":
        """The saved index, or None if missing, unreadable or inconsistent (it is only a cache)."""
        try:
            with open(path + ".json") as f:
                state = IndexState(**json.load(f))
            if state.format != FORMAT:
                return None
            parts = [_faiss().read_index(cls._part_path(path, p)) for p in range(len(state.parts))]
            ids = np.load(path + ".ids.npy")
        except Exception:
            return None
        if [int(p.ntotal) for p in parts] != state.parts or sum(state.parts) != state.count \
                or len(ids) != state.count or not parts:
            return None
        return cls(parts, state, np.split(ids, np.cumsum(state.parts)[:-1]))

    # ---- keeping it in step with the store ------------------------------------------------------
    @classmethod
    def for_store(cls, store, path: str | None = None, threshold: int = APPROX_THRESHOLD) -> "VectorIndex":
        """Load the index persisted beside the store, extend or rebuild it if stale, save if changed."""
        path = path or store.path + ".faiss"
        vi = cls.load(path)
        if vi is not None and vi.sync(store, threshold):
            vi.save(path)
        elif vi is None:
            vi = cls.rebuild(store, threshold)
            vi.save(path)
        return vi

    def sync(self, store, threshold: int = APPROX_THRESHOLD) -> bool:
        """Bring this index up to date with the store: extend it with new rows, or rebuild it when
        it belongs to another DB/model, too many rows were deleted, or it outgrew the exact index.
        Returns True if anything changed (so the caller saves it)."""
        s = self.state
        if s.db_id != store.db_id or s.fingerprint != str(store.fingerprint or ""):
            self._replace(self.rebuild(store, threshold))
            return True
        live_old = store.count_upto(s.max_id)
        deleted = s.count - live_old
        n_new = store.count() - live_old
        want = choose_kind(live_old + n_new, threshold)
        if deleted > REBUILD_FRACTION * max(s.count, 1) or (want != s.kind and s.kind == "flat"):
            self._replace(self.rebuild(store, threshold))
            return True
        changed = deleted != s.deleted or n_new > 0
        s.deleted = deleted
        for ids, vecs in store.iter_vectors(after_id=s.max_id):
            self.add(ids, vecs)
        return changed

    def _replace(self, other: "VectorIndex") -> None:
        self.parts, self.state, self.ids = other.parts, other.state, other.ids
        self.set_ef_search(self.ef_search)

    @classmethod
    def rebuild(cls, store, threshold: int = APPROX_THRESHOLD) -> "VectorIndex":
        n = store.count()
        kind = choose_kind(n, threshold)
        dim = int(store.meta("dim") or 0) or 1
        chunks = store.iter_vectors(chunk=min(TRAIN_SAMPLE, max(1, -(-n // PARTS))))
        first = next(chunks, None)
        vi = cls.empty(kind, dim, first[1] if first is not None else None, store.db_id, str(store.fingerprint or ""))
        if first is not None:
            vi.add(*first)
        for ids, vecs in chunks:
            vi.add(ids, vecs)
        return vi
