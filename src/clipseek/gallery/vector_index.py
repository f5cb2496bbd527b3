"""A FAISS index derived from the store (the store stays the truth; this is a cache).

Kinds. Below `APPROX_THRESHOLD` vectors an exact inner-product index ("flat", `IndexFlatIP`). Above,
"pq-sq8": an exhaustive scan of 4-bit product-quantizer codes with SIMD look-up tables (faiss "fast
scan", 2 dimensions per 4-bit code) picks `REFINE_CANDIDATES` candidates, 8-bit scalar-quantized
copies of the vectors re-score them (`IndexRefine`), and the gallery re-ranks the survivors with the
exact stored vectors: 0.77 KB per 512-d vector, recall@10 0.97 at 1M, built in seconds (HNSW reached
0.56 at 100k random vectors and took minutes to build: benchmarks/search_bench.py keeps it). It is
split into `PARTS` equal parts searched in parallel by the index's own threads (faiss releases the
GIL; one query is otherwise scanned by one core); `close()` stops them.

Building. Arrays (`build`) and the store (`rebuild`) take one path (`_build`): an approximate index is
trained on `training_sample` (the one rule: `TRAIN_SAMPLE` vectors drawn uniformly, seed 0, from all of
them), then every vector is added. Zero vectors give an empty index of either kind (an approximate one
stays untrained until its first `add` trains it by the same rule) that saves, loads and answers [].

Rows. Positions map to the store's row ids through int64 arrays beside the index (IndexIDMap made
single queries ~30x slower). Row ids are never reused, so on open new rows (id > max_id) are appended,
and rows deleted since get the id `DELETED`; queries skip those: the exact index through an
`IDSelectorBitmap`, the approximate one (fast scan takes no selector) by filtering its results, asked
for its share of deleted rows more and searched again with twice as many only if a query lost more.
Past `REBUILD_FRACTION` deleted, or outgrowing the exact index, it is rebuilt.

Filtered search (`search(q, k, allowed=ids)`: the k best of the allowed rows, never fewer when as
many pass). The allowed rows' positions are looked up in a sorted copy of each part's ids. The exact
index scores them alone through an `IDSelectorBitmap`. The approximate one scores them alone too when they are few, from its 8-bit codes (the refine index,
which takes a selector), so recall is that of exact search after the gallery's re-rank; when they are
many, the fast scan is asked for live/allowed times as many candidates and the results are filtered,
as for deleted rows. Scoring alone costs in proportion to the allowed rows, over-fetching in
proportion to live/allowed (the candidates re-scored), so the first is used while allowed² <
SCAN_FACTOR x live: 63k of 1M rows (6%), 20k of 100k (20%), where benchmarks/search_bench.py
(filtered rows) measured the two to cross.

Files: `<db>.faiss` (`.faiss.1`... for more parts), `<db>.faiss.ids.npy`, `<db>.faiss.json` (DB, model,
max id, deleted count, part sizes). One of another format or kind (the former "hnsw-sq8") is not
loaded: rebuilt from the store.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterable, Iterator

import numpy as np

from clipseek._io import atomic_write, atomic_write_json

APPROX_THRESHOLD = 50_000
KINDS = ("flat", "pq-sq8")
MIN_TRAIN = 16             # a 4-bit PQ learns 16 centroids per sub-quantizer
REFINE_CANDIDATES = 1024   # pq-sq8: candidates from the 4-bit scan re-scored with the 8-bit vectors
PARTS = 2                  # pq-sq8: parts searched in parallel (one per core here)
REBUILD_FRACTION = 0.1
SCAN_FACTOR = 4000         # pq-sq8: allowed rows are scored alone when allowed² < SCAN_FACTOR x live
TRAIN_SAMPLE = 100_000
CHUNK = 20_000
DELETED = -1               # the id of a position whose row left the store
FORMAT = 3                 # 3: deleted positions carry DELETED in the ids file

Chunks = Iterator[tuple[np.ndarray, np.ndarray]]


@dataclass
class IndexState:
    db_id: str
    fingerprint: str  # str(Fingerprint) of the store's model, "" before one is bound
    kind: str        # one of KINDS
    max_id: int      # highest store row id in the index
    count: int       # vectors in the index
    deleted: int = 0  # of those, rows no longer in the store (id DELETED, skipped by queries)
    parts: list[int] = field(default_factory=list)  # vectors per part
    format: int = FORMAT


def _faiss():
    import faiss

    return faiss


def choose_kind(n: int, threshold: int = APPROX_THRESHOLD) -> str:
    return "flat" if n < max(threshold, MIN_TRAIN) else "pq-sq8"


def pq_subquantizers(dim: int) -> int:
    """4-bit PQ with 2 dimensions per code where possible; fast scan needs an even count."""
    m = dim // 2
    while m > 2 and (dim % m or m % 2):
        m -= 1
    return max(m, 2)


def new_index(kind: str, dim: int):
    """An empty faiss index of `kind` ("pq-sq8" comes untrained)."""
    faiss = _faiss()
    if kind == "flat":
        return faiss.IndexFlatIP(dim)
    if kind != "pq-sq8":
        raise ValueError(f"unknown index kind {kind!r} (known: {', '.join(KINDS)})")
    return faiss.index_factory(dim, f"PQ{pq_subquantizers(dim)}x4fs,Refine(SQ8)", faiss.METRIC_INNER_PRODUCT)


def training_sample(chunks: Iterable[tuple[np.ndarray, np.ndarray]], n: int) -> np.ndarray:
    """The one training-sample rule: min(n, TRAIN_SAMPLE) of the n vectors `chunks` yields (in order),
    drawn uniformly without replacement (seed 0), kept in their order."""
    pick = np.sort(np.random.default_rng(0).choice(n, min(n, TRAIN_SAMPLE), replace=False))
    out, start = [], 0
    for _, vecs in chunks:
        lo, hi = np.searchsorted(pick, [start, start + len(vecs)])
        out.append(np.asarray(vecs, dtype=np.float32)[pick[lo:hi] - start])
        start += len(vecs)
        if hi == len(pick):
            break
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


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
        self.refine_candidates = REFINE_CANDIDATES
        self._selectors: dict[int, tuple | None] = {}  # part -> (bitmap, selector, params) if it has deleted
        self._sorted: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # part -> (live ids sorted, positions)
        self._pool: ThreadPoolExecutor | None = None

    # ---- building ----------------------------------------------------------------------------------
    @classmethod
    def empty(cls, kind: str, dim: int, db_id: str = "", fingerprint: str = "") -> "VectorIndex":
        n_parts = 1 if kind == "flat" else PARTS
        return cls([new_index(kind, dim) for _ in range(n_parts)], IndexState(db_id, fingerprint, kind, 0, 0))

    @classmethod
    def build(cls, ids: np.ndarray, vectors: np.ndarray, kind: str | None = None, db_id: str = "",
              fingerprint: str = "") -> "VectorIndex":
        ids, vectors = np.asarray(ids, np.int64), np.asarray(vectors, np.float32)

        def chunks() -> Chunks:
            return ((ids[i:i + CHUNK], vectors[i:i + CHUNK]) for i in range(0, len(ids), CHUNK))
        dim = vectors.shape[1] if vectors.ndim == 2 else 0
        return cls._build(kind or choose_kind(len(ids)), dim, len(ids), chunks, db_id, fingerprint)

    @classmethod
    def rebuild(cls, store, threshold: int = APPROX_THRESHOLD) -> "VectorIndex":
        n = store.count()
        return cls._build(choose_kind(n, threshold), int(store.meta("dim") or 0), n, store.iter_vectors,
                          store.db_id, str(store.fingerprint or ""))

    @classmethod
    def _build(cls, kind: str, dim: int, n: int, chunks: Callable[[], Chunks], db_id: str,
               fingerprint: str) -> "VectorIndex":
        """The one build path: train on the sample rule over all n vectors, then add them all."""
        vi = cls.empty(kind, dim, db_id, fingerprint)
        if kind != "flat" and n:
            vi.train(training_sample(chunks(), n))
        for ids, vecs in chunks():
            vi.add(ids, vecs)
        return vi

    def train(self, sample: np.ndarray) -> None:
        """Train an empty approximate index; every part shares the quantizers of the first."""
        if self.state.count:
            raise ValueError("only an empty index can be trained")
        if len(sample) < MIN_TRAIN:
            raise ValueError(f"a {self.state.kind} index needs at least {MIN_TRAIN} vectors to train, "
                             f"got {len(sample)}")
        self.parts[0].train(np.ascontiguousarray(sample, dtype=np.float32))
        self.parts[1:] = [_clone(self.parts[0]) for _ in self.parts[1:]]

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Append vectors, spread over the parts to keep them even: no rebuild, no re-training (an
        untrained, empty index is first trained on these vectors by the sample rule)."""
        if len(ids) == 0:
            return
        ids, vectors = np.asarray(ids, np.int64), np.ascontiguousarray(vectors, dtype=np.float32)
        if not self.parts[0].is_trained:
            self.train(training_sample([(ids, vectors)], len(ids)))
        start = 0
        for p, take in enumerate(self._spread(len(ids))):
            if take:
                self.parts[p].add(vectors[start:start + take])
                self.ids[p] = np.concatenate([self.ids[p], ids[start:start + take]])
                self.state.parts[p] += take
                self._forget(p)
                start += take
        self.state.max_id = max(self.state.max_id, int(np.max(ids)))
        self.state.count += len(ids)

    def _spread(self, n: int) -> list[int]:
        """How many of n new vectors each part takes: the smallest first, towards equal sizes."""
        sizes = self.state.parts
        target = -(-(sum(sizes) + n) // len(sizes))
        take, left = [0] * len(sizes), n
        for p in sorted(range(len(sizes)), key=lambda i: sizes[i]):
            take[p] = min(max(target - sizes[p], 0), left)
            left -= take[p]
        return take

    def mark_deleted(self, live_ids: np.ndarray) -> None:
        """Give every position whose row id is not in `live_ids` the id DELETED (skipped by queries)."""
        for p, ids in enumerate(self.ids):
            gone = (ids != DELETED) & ~np.isin(ids, live_ids)
            if gone.any():
                ids[gone] = DELETED
                self._forget(p)
        self.state.deleted = int(sum(np.count_nonzero(ids == DELETED) for ids in self.ids))

    # ---- searching ---------------------------------------------------------------------------------
    def search(self, queries: np.ndarray, k: int,
               allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids), each (m, min(k, live rows)), best first; deleted rows never appear. With
        `allowed` (row ids), only those rows: the k best of them (min(k, how many are live))."""
        q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        s = self.state
        live = s.count - s.deleted
        if allowed is not None:
            allowed = np.asarray(allowed, np.int64)
            if len(allowed) > 1 and not bool((allowed[1:] > allowed[:-1]).all()):
                allowed = np.unique(allowed)  # the store's are sorted already: no copy then
            return self._search_allowed(q, k, allowed, live)
        k = min(int(k), live)
        if k <= 0:
            return _no_results(len(q))
        # the exact index skips deleted rows itself; the approximate one is asked for enough more
        # that its share of deleted rows still leaves k, and again with twice as many if not
        fetch = k if s.kind == "flat" or not s.deleted else -(-k * s.count // live) + 8
        return self._fetch_until(q, k, fetch, live, lambda ids: ids != DELETED)

    def _fetch_until(self, q: np.ndarray, k: int, fetch: int, passing: int,
                     passes: Callable[[np.ndarray], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Ask the parts for `fetch` each, keep what `passes`, double `fetch` until k pass (or all)."""
        s = self.state
        while True:
            scores, ids = self._search_parts(q, fetch, passing)
            scores = np.where(passes(ids), scores, -np.inf)
            order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
            scores, ids = np.take_along_axis(scores, order, 1), np.take_along_axis(ids, order, 1)
            if fetch >= s.count or bool(np.isfinite(scores).all()):
                found = np.isfinite(scores).any(axis=0)  # fewer pass than thought: no empty columns
                return scores[:, found], np.where(np.isfinite(scores), ids, DELETED)[:, found]
            fetch = min(2 * fetch, s.count)

    def _search_allowed(self, q: np.ndarray, k: int, allowed: np.ndarray,
                        live: int) -> tuple[np.ndarray, np.ndarray]:
        """Few allowed rows (or the exact index): find their positions and score them alone. Many:
        over-fetch and filter, taking len(allowed) as how many pass (looking up positions would
        cost more than the search); ids that are not live rows only make it fetch again."""
        if self.state.kind == "flat" or len(allowed) ** 2 < SCAN_FACTOR * live:
            positions = [self._positions(p, allowed) for p in range(len(self.parts))]
            k = min(int(k), sum(len(x) for x in positions))
            return self._search_selected(q, k, positions) if k > 0 else _no_results(len(q))
        m = len(allowed)
        k = min(int(k), m, live)
        if k <= 0:
            return _no_results(len(q))
        fetch = -(-k * self.state.count // m) + 8
        return self._fetch_until(q, k, fetch, m, lambda ids: _member(ids, allowed))

    def _positions(self, p: int, ids: np.ndarray) -> np.ndarray:
        """Positions in part p of those of `ids` (sorted) that are live rows there."""
        if p not in self._sorted:
            live = np.flatnonzero(self.ids[p] != DELETED)
            order = np.argsort(self.ids[p][live], kind="stable")
            self._sorted[p] = (self.ids[p][live][order], live[order])
        have, pos = self._sorted[p]
        at = np.minimum(np.searchsorted(have, ids), max(len(have) - 1, 0))
        hit = have[at] == ids if len(have) else np.zeros(len(ids), bool)
        return pos[at[hit]]

    def _search_selected(self, q: np.ndarray, k: int, positions: list[np.ndarray]):
        """Score only the given positions of each part: the exact index, or the 8-bit codes of the
        approximate one (its refine index), through an IDSelectorBitmap."""
        faiss = _faiss()

        def one(p: int) -> tuple[np.ndarray, np.ndarray]:
            keep = np.zeros(int(self.parts[p].ntotal), bool)
            keep[positions[p]] = True
            bitmap = np.packbits(keep, bitorder="little")
            params = faiss.SearchParameters(sel=faiss.IDSelectorBitmap(len(bitmap), faiss.swig_ptr(bitmap)))
            index = self.parts[p] if self.state.kind == "flat" else faiss.downcast_index(self.parts[p].refine_index)
            scores, pos = index.search(q, min(k, len(positions[p])), params=params)
            return np.where(pos >= 0, scores, -np.inf), np.where(pos >= 0, self.ids[p][np.maximum(pos, 0)], DELETED)

        results = self._map_parts(one, [p for p in range(len(self.parts)) if len(positions[p])])
        scores = np.concatenate([r[0] for r in results], axis=1)
        ids = np.concatenate([r[1] for r in results], axis=1)
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(scores, order, 1), np.take_along_axis(ids, order, 1)

    def _map_parts(self, fn: Callable, used: list[int]) -> list:
        if len(used) == 1:
            return [fn(used[0])]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=PARTS, thread_name_prefix="clipseek-search")
        return list(self._pool.map(fn, used))

    def _search_parts(self, q: np.ndarray, k: int, passing: int) -> tuple[np.ndarray, np.ndarray]:
        """Every non-empty part's top k, side by side (unsorted across parts); `passing` rows of the
        index can be kept (the approximate index looks at count/passing times more candidates)."""
        used = [p for p in range(len(self.parts)) if self.parts[p].ntotal > 0]
        results = self._map_parts(lambda p: self._search_part(p, q, k, passing), used)
        return np.concatenate([r[0] for r in results], axis=1), np.concatenate([r[1] for r in results], axis=1)

    def _search_part(self, p: int, q: np.ndarray, k: int, passing: int) -> tuple[np.ndarray, np.ndarray]:
        part = self.parts[p]
        k = max(1, min(k, int(part.ntotal)))
        if self.state.kind == "flat":
            params = self._selector(p)
        else:
            params = _faiss().IndexRefineSearchParameters()
            params.k_factor = float(max(2.0, self.refine_candidates * self.state.count / max(passing, 1) / k))
        scores, pos = part.search(q, k, params=params)
        ids = np.where(pos >= 0, self.ids[p][np.maximum(pos, 0)], DELETED)
        return np.where(ids != DELETED, scores, -np.inf), ids

    def _selector(self, p: int):
        """faiss SearchParameters that skip part p's deleted positions (None when it has none)."""
        if p not in self._selectors:
            keep = self.ids[p] != DELETED
            entry = None
            if not keep.all():
                faiss = _faiss()
                bitmap = np.packbits(keep, bitorder="little")  # bit i: position i is searched
                sel = faiss.IDSelectorBitmap(len(bitmap), faiss.swig_ptr(bitmap))
                entry = (bitmap, sel, faiss.SearchParameters(sel=sel))  # the bitmap must outlive sel
            self._selectors[p] = entry
        entry = self._selectors.get(p)
        return entry[2] if entry else None

    @property
    def ntotal(self) -> int:
        return int(sum(p.ntotal for p in self.parts))

    def close(self) -> None:
        """Stop the search threads (a later search starts them again)."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    # ---- persistence -------------------------------------------------------------------------------
    @staticmethod
    def _part_path(path: str, p: int) -> str:
        return path if p == 0 else f"{path}.{p}"

    def save(self, path: str) -> None:
        """Write each file atomically; the state (written last) names what is valid."""
        faiss = _faiss()
        for p, part in enumerate(self.parts):
            atomic_write(self._part_path(path, p), lambda tmp, part=part: faiss.write_index(part, tmp))

        def write_ids(tmp: str) -> None:
            with open(tmp, "wb") as f:
                np.save(f, np.concatenate(self.ids))
        atomic_write(path + ".ids.npy", write_ids)
        atomic_write_json(path + ".json", asdict(self.state), indent=None)
        p = len(self.parts)
        while os.path.exists(self._part_path(path, p)):  # parts of an earlier, larger index
            os.remove(self._part_path(path, p))
            p += 1

    @classmethod
    def load(cls, path: str) -> "VectorIndex | None":
        """The saved index, or None if missing, unreadable, inconsistent, of another format or of a
        kind this version does not build (it is only a cache)."""
        try:
            with open(path + ".json") as f:
                state = IndexState(**json.load(f))
            if state.format != FORMAT or state.kind not in KINDS:
                return None
            parts = [_faiss().read_index(cls._part_path(path, p)) for p in range(len(state.parts))]
            ids = np.load(path + ".ids.npy")
        except Exception:
            return None
        if not parts or [int(p.ntotal) for p in parts] != state.parts or sum(state.parts) != state.count \
                or len(ids) != state.count or int(np.count_nonzero(ids == DELETED)) != state.deleted:
            return None
        return cls(parts, state, np.split(ids, np.cumsum(state.parts)[:-1]))

    # ---- keeping it in step with the store ---------------------------------------------------------
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
        """Bring this index up to date with the store: extend it with new rows and mark deleted ones,
        or rebuild it when it belongs to another DB/model, too many rows were deleted, it outgrew the
        exact index or it was empty. Returns True if anything changed (so the caller saves it)."""
        s = self.state
        if s.db_id != store.db_id or s.fingerprint != str(store.fingerprint or ""):
            self._replace(self.rebuild(store, threshold))
            return True
        live_old = store.count_upto(s.max_id)
        deleted = s.count - live_old
        n_new = store.count() - live_old
        want = choose_kind(live_old + n_new, threshold)
        if deleted > REBUILD_FRACTION * max(s.count, 1) or (want != s.kind and s.kind == "flat") \
                or (s.count == 0 and n_new > 0):
            self._replace(self.rebuild(store, threshold))
            return True
        changed = deleted != s.deleted or n_new > 0
        if deleted != s.deleted:
            self.mark_deleted(store.ids_upto(s.max_id))
        for ids, vecs in store.iter_vectors(after_id=s.max_id):
            self.add(ids, vecs)
        return changed

    def _replace(self, other: "VectorIndex") -> None:
        self.parts, self.state, self.ids = other.parts, other.state, other.ids
        self._selectors, self._sorted = {}, {}

    def _forget(self, p: int) -> None:
        """Part p's ids changed: drop what was derived from them."""
        self._selectors.pop(p, None)
        self._sorted.pop(p, None)


def _no_results(m: int) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((m, 0), np.float32), np.zeros((m, 0), np.int64)


def _member(ids: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """ids (any shape) that are in `allowed` (sorted, non-empty)."""
    at = np.minimum(np.searchsorted(allowed, ids), len(allowed) - 1)
    return allowed[at] == ids
