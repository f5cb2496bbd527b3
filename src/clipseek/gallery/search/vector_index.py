"""A FAISS index derived from the store (the store stays the truth; this is a cache).

Kinds (`kinds.py` holds all that is specific to one): below `APPROX_THRESHOLD` vectors exact
("flat"); above, "ivf-pq-sq8": an inverted file over 4-bit PQ fast-scan codes with an 8-bit refine
(~0.65 KB per 512-d vector) that probes the lists a measurement at build time chose; a build whose
data gives the lists nothing to exploit (they would all have to be probed: random vectors) makes the
exhaustive scan of the same codes, "pq-sq8", instead. The gallery re-ranks the candidates with the
exact stored vectors. An approximate index is split into `PARTS` equal parts, filled and searched in
parallel by the index's own threads (faiss releases the GIL; each thread runs faiss single-threaded),
or searched in turn on the caller's thread when a query probes under `PARALLEL_CODES` codes (handing
the work over would cost more); `close()` stops the threads.

Building. Arrays (`build`) and the store (`rebuild`) take one path (`_build`): an approximate index is
trained on `training_sample` (the one rule: `TRAIN_SAMPLE` vectors drawn uniformly, seed 0, from all of
them), every vector is added, then the probe count is measured (`kinds.choose_nprobe`). Zero
vectors give an empty index of either kind (an approximate one stays untrained until its first `add`
trains it by the same rule) that saves, loads and answers []. Later adds go into the trained lists (no
rebuild); the inverted file is trained again (rebuilt) when `kinds.drifted` says the data moved
away from its centroids or outgrew its lists.

Rows. Positions map to the store's row ids through int64 arrays beside the index (IndexIDMap made
single queries ~30x slower). Row ids are never reused, so on open new rows (id > max_id) are appended,
and rows deleted since get the id `DELETED`; queries skip those: the exact index through an
`IDSelectorBitmap`, the approximate one (fast scan takes no selector) by filtering its results, asked
for its share of deleted rows more and searched again with twice as many only if a query lost more
(an inverted file probes twice as many lists then, and when deleted rows emptied its nearest ones).
Saving, loading and the rules that keep it in step with the store (extend, mark deleted, rebuild past
`REBUILD_FRACTION` deleted, on outgrowing the exact index or on drift) are in `index_files.py`.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Iterator

import numpy as np

from clipseek.gallery.search import kinds
from clipseek.gallery.search.ids import member, sorted_unique
from clipseek.gallery.search.index_files import DELETED, IndexState, StoreBacked
from clipseek.gallery.search.kinds import (
    APPROX_KIND,
    APPROX_THRESHOLD,
    KINDS,
    MIN_TRAIN,
    REFINE_CANDIDATES,
    choose_kind,
)

PARTS = 2                  # approximate kinds: parts searched in parallel (one per core here)
PARALLEL_CODES = 100_000   # an inverted file probing fewer codes per query searches its parts in turn
SCAN_FACTOR = 4000         # filtered search scores the allowed rows alone while allowed² < SCAN_FACTOR x live
TRAIN_SAMPLE = 100_000
CHUNK = 20_000

Chunks = Iterator[tuple[np.ndarray, np.ndarray]]
__all__ = ["APPROX_KIND", "APPROX_THRESHOLD", "DELETED", "KINDS", "IndexState", "VectorIndex", "choose_kind"]


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
    f = kinds.faiss()
    return f.deserialize_index(f.serialize_index(index))


def _one_faiss_thread() -> None:
    kinds.faiss().omp_set_num_threads(1)  # per thread: the index's threads are the parallelism


class VectorIndex(StoreBacked):
    """ids + vectors -> top-k by inner product. Use `VectorIndex.for_store(store)` in the app."""

    def __init__(self, parts: list, state: IndexState, ids: list[np.ndarray] | None = None):
        self.parts = parts
        self.state = state
        self.ids = ids if ids is not None else [np.zeros(0, np.int64) for _ in parts]  # position -> row id
        if not state.parts:
            state.parts = [int(p.ntotal) for p in parts]
        self.refine_candidates = REFINE_CANDIDATES
        self._selectors: dict[int, tuple | None] = {}  # part -> (bitmap, selector) if it has deleted
        self._sorted: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # part -> (live ids sorted, positions)
        self._pool: ThreadPoolExecutor | None = None

    # ---- building ----------------------------------------------------------------------------------
    @classmethod
    def empty(cls, kind: str, dim: int, db_id: str = "", fingerprint: str = "") -> "VectorIndex":
        n_parts = 1 if kind == "flat" else PARTS
        return cls([kinds.new_index(kind, dim) for _ in range(n_parts)], IndexState(db_id, fingerprint, kind, 0, 0))

    @classmethod
    def build(cls, ids: np.ndarray, vectors: np.ndarray, kind: str | None = None, db_id: str = "",
              fingerprint: str = "", threshold: int = APPROX_THRESHOLD) -> "VectorIndex":
        """An index of these vectors: of `kind`, or (None) of the kind the gallery would choose."""
        ids, vectors = np.asarray(ids, np.int64), np.asarray(vectors, np.float32)

        def chunks() -> Chunks:
            return ((ids[i:i + CHUNK], vectors[i:i + CHUNK]) for i in range(0, len(ids), CHUNK))
        dim = vectors.shape[1] if vectors.ndim == 2 else 0
        return cls.from_chunks(chunks, len(ids), dim, kind, db_id, fingerprint, threshold)

    @classmethod
    def from_chunks(cls, chunks: Callable[[], Chunks], n: int, dim: int, kind: str | None = None,
                    db_id: str = "", fingerprint: str = "", threshold: int = APPROX_THRESHOLD) -> "VectorIndex":
        """As `build`, from more vectors than fit in memory: `chunks()` yields the n (ids, vectors)
        pairs, the same each time it is called (twice: for the training sample, then to add them)."""
        return cls._build(kind or choose_kind(n, threshold), dim, n, chunks, db_id, fingerprint,
                          exhaustive_if_no_gain=kind is None)

    @classmethod
    def rebuild(cls, store, threshold: int = APPROX_THRESHOLD) -> "VectorIndex":
        n = store.count()
        return cls._build(choose_kind(n, threshold), store.dim, n, store.iter_vectors,
                          store.db_id, str(store.fingerprint or ""))

    @classmethod
    def _build(cls, kind: str, dim: int, n: int, chunks: Callable[[], Chunks], db_id: str,
               fingerprint: str, exhaustive_if_no_gain: bool = True) -> "VectorIndex":
        """The one build path: train on the sample rule over all n vectors, add them all, measure."""
        vi = cls.empty(kind, dim, db_id, fingerprint)
        vi._fill(chunks, n, exhaustive_if_no_gain)
        return vi

    def _fill(self, chunks: Callable[[], Chunks], n: int, exhaustive_if_no_gain: bool = True) -> None:
        """Train (an inverted file that would have to probe every list to keep its recall on the
        sample gives way to the exhaustive scan, which is faster then), add every vector, measure."""
        s = self.state
        sample = training_sample(chunks(), n) if s.kind != "flat" and n else None
        if sample is not None:
            self.train(sample, n)
            if s.kind == APPROX_KIND and exhaustive_if_no_gain and self._probes_all(sample):
                self.parts = [kinds.new_index("pq-sq8", sample.shape[1]) for _ in self.parts]
                s.kind, s.nlist, s.nprobe = "pq-sq8", 0, 0
                self.train(sample, n)
        for ids, vecs in chunks():
            self._add(np.asarray(ids, np.int64), np.ascontiguousarray(vecs, dtype=np.float32))
        if sample is not None:
            s.trained = s.count
            if s.kind == APPROX_KIND:
                self._choose_nprobe(sample)

    def _probes_all(self, sample: np.ndarray) -> bool:
        """Would the trained, empty inverted file, holding only the sample, probe all its lists?"""
        self._add(np.arange(1, len(sample) + 1, dtype=np.int64), sample)
        self._choose_nprobe(sample)
        every = self.state.nprobe >= self.state.nlist
        for part in self.parts:
            part.reset()  # the trained quantizers stay
        self.ids = [np.zeros(0, np.int64) for _ in self.parts]
        self.state.parts, self.state.count, self.state.max_id = [0] * len(self.parts), 0, 0
        self._selectors, self._sorted = {}, {}
        return every

    def train(self, sample: np.ndarray, n: int | None = None) -> None:
        """Train an empty approximate index (an inverted file gets lists for n vectors, default the
        sample's size); every part shares the quantizers of the first."""
        s = self.state
        if s.count:
            raise ValueError("only an empty index can be trained")
        if len(sample) < MIN_TRAIN:
            raise ValueError(f"a {s.kind} index needs at least {MIN_TRAIN} vectors to train, got {len(sample)}")
        sample = np.ascontiguousarray(sample, dtype=np.float32)
        if s.kind == APPROX_KIND:
            s.nlist = kinds.nlist_for(n or len(sample))
            self.parts[0] = kinds.new_index(s.kind, sample.shape[1], s.nlist)
        s.base_distance = self._pooled(lambda _: kinds.train(self.parts[0], s.kind, sample), [0])[0]
        self.parts[1:] = [_clone(self.parts[0]) for _ in self.parts[1:]]

    def _choose_nprobe(self, sample: np.ndarray) -> None:
        def search(q: np.ndarray, k: int, nprobe: int) -> np.ndarray:
            self.state.nprobe = nprobe
            return self.search(q, k)[1]
        self.state.nprobe = kinds.choose_nprobe(search, kinds.pseudo_queries(sample), self.state.nlist)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Append vectors, spread over the parts to keep them even: no rebuild, no re-training (an
        untrained, empty index is first trained on these vectors by the sample rule). An inverted
        file records how far they lie from their centroids (`kinds.drifted`)."""
        if len(ids) == 0:
            return
        ids, vectors = np.asarray(ids, np.int64), np.ascontiguousarray(vectors, dtype=np.float32)
        if not self.parts[0].is_trained:
            self._fill(lambda: iter([(ids, vectors)]), len(ids))
            return
        if self.state.kind == APPROX_KIND:
            self.state.added_distance += float(kinds.centroid_distances(self.parts[0], vectors).sum())
        self._add(ids, vectors)

    def _add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        starts = np.cumsum([0] + self._spread(len(ids)))
        spans = [(p, starts[p], starts[p + 1]) for p in range(len(self.parts)) if starts[p + 1] > starts[p]]
        self._pooled(lambda span: self.parts[span[0]].add(vectors[span[1]:span[2]]), spans)
        for p, lo, hi in spans:
            self.ids[p] = np.concatenate([self.ids[p], ids[lo:hi]])
            self.state.parts[p] += int(hi - lo)
            self._selectors.pop(p, None)
            self._sorted.pop(p, None)
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
                self._selectors.pop(p, None)
                self._sorted.pop(p, None)
        self.state.deleted = int(sum(np.count_nonzero(ids == DELETED) for ids in self.ids))

    # ---- searching ---------------------------------------------------------------------------------
    def search(self, queries: np.ndarray, k: int,
               allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids), each (m, k'), best first; deleted rows never appear. With `allowed` (row
        ids), the k best of those rows alone: never fewer when as many are live (see `_search_allowed`)."""
        q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        s = self.state
        live = s.count - s.deleted
        k = min(int(k), live)
        if k <= 0:
            return _no_results(len(q))
        if allowed is not None:
            return self._search_allowed(q, k, sorted_unique(allowed), live)
        # the exact index skips deleted rows itself; the approximate one is asked for enough more
        # that its share of deleted rows still leaves k, and again with twice as many if not.
        fetch = k if s.kind == "flat" or not s.deleted else -(-k * s.count // live) + 8
        return self._fetch_until(q, k, fetch, live, lambda ids: ids != DELETED)

    def _fetch_until(self, q: np.ndarray, k: int, fetch: int, passing: int,
                     passes: Callable[[np.ndarray], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Ask the parts for `fetch` each, keep what `passes` (`passing` rows of the index can), and
        ask again with twice as many while fewer than k pass. An inverted file also probes twice as
        many lists then, or when far more of what it found failed than the share that cannot pass
        predicts (over 3x + 3: the nearest lists were emptied, the neighbours are in others; not
        the chance excess of a few rows)."""
        s = self.state
        expected_loss = 1 - passing / max(s.count, 1)
        widen = 1
        while True:
            scores, ids = self._search_parts(q, fetch, passing, widen)
            ok = passes(ids)
            lost = int((~ok).sum(axis=1).max()) if ok.size else 0
            expected = ok.shape[1] * expected_loss
            scores = np.where(ok, scores, -np.inf)
            order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
            scores, ids = np.take_along_axis(scores, order, 1), np.take_along_axis(ids, order, 1)
            short = fetch < s.count and not bool(np.isfinite(scores).all())
            emptied = s.nlist and s.nprobe * widen < s.nlist and lost > 3 * expected + 3
            if not short and not emptied:
                found = np.isfinite(scores).any(axis=0)  # fewer pass than thought: no empty columns
                return scores[:, found], np.where(np.isfinite(scores), ids, DELETED)[:, found]
            fetch, widen = (min(2 * fetch, s.count) if short else fetch), 2 * widen

    def _search_allowed(self, q: np.ndarray, k: int, allowed: np.ndarray,
                        live: int) -> tuple[np.ndarray, np.ndarray]:
        """Few allowed rows (or the exact index): find their positions and score them alone, from the
        8-bit codes of an approximate index (its refine index takes a selector), so recall is that of
        exact search after the gallery's re-rank. Many: over-fetch and filter, as for deleted rows.
        Scoring alone costs in proportion to the allowed rows, over-fetching to live/allowed; the first
        is used while allowed² < SCAN_FACTOR x live (benchmarks/search_bench.py, filtered rows)."""
        if self.state.kind == "flat" or len(allowed) ** 2 < SCAN_FACTOR * live:
            positions = [self._positions(p, allowed) for p in range(len(self.parts))]
            k = min(int(k), sum(len(x) for x in positions))
            return self._search_selected(q, k, positions) if k > 0 else _no_results(len(q))
        m = len(allowed)
        k = min(int(k), m, live)
        if k <= 0:
            return _no_results(len(q))
        fetch = -(-k * self.state.count // m) + 8
        return self._fetch_until(q, k, fetch, m, lambda ids: member(ids, allowed))

    def _positions(self, p: int, ids: np.ndarray) -> np.ndarray:
        """Positions in part p of those of `ids` (sorted) that are live rows there."""
        if p not in self._sorted:
            live = np.flatnonzero(self.ids[p] != DELETED)
            order = np.argsort(self.ids[p][live], kind="stable")
            self._sorted[p] = (self.ids[p][live][order], live[order])
        have, pos = self._sorted[p]
        if not len(have):
            return np.zeros(0, np.int64)
        at = np.minimum(np.searchsorted(have, ids), len(have) - 1)
        return pos[at[have[at] == ids]]

    def _search_selected(self, q: np.ndarray, k: int, positions: list[np.ndarray]):
        """Score only the given positions of each part (the exact index, or the approximate one's
        8-bit refine codes) through an IDSelectorBitmap."""
        f = kinds.faiss()

        def one(p: int) -> tuple[np.ndarray, np.ndarray]:
            keep = np.zeros(int(self.parts[p].ntotal), bool)
            keep[positions[p]] = True
            bitmap = np.packbits(keep, bitorder="little")
            params = f.SearchParameters(sel=f.IDSelectorBitmap(len(bitmap), f.swig_ptr(bitmap)))
            index = self.parts[p] if self.state.kind == "flat" else f.downcast_index(self.parts[p].refine_index)
            scores, pos = index.search(q, min(k, len(positions[p])), params=params)
            ids = np.where(pos >= 0, self.ids[p][np.maximum(pos, 0)], DELETED)
            return np.where(pos >= 0, scores, -np.inf), ids

        results = self._pooled(one, [p for p in range(len(self.parts)) if len(positions[p])],
                               inline=sum(len(x) for x in positions) < PARALLEL_CODES)
        scores = np.concatenate([r[0] for r in results], axis=1)
        ids = np.concatenate([r[1] for r in results], axis=1)
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(scores, order, 1), np.take_along_axis(ids, order, 1)

    def _search_parts(self, q: np.ndarray, k: int, passing: int,
                      widen: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Every non-empty part's top k, side by side (unsorted across parts); `passing` rows can be
        kept (the approximate index re-scores count/passing times more candidates); an inverted file
        probes `widen` times its lists."""
        used = [p for p in range(len(self.parts)) if self.parts[p].ntotal > 0]
        s = self.state
        small = s.kind == "flat" or (s.nlist and s.nprobe * widen * s.count < PARALLEL_CODES * s.nlist)
        results = self._pooled(lambda p: self._search_part(p, q, k, passing, widen), used, inline=small)
        return np.concatenate([r[0] for r in results], axis=1), np.concatenate([r[1] for r in results], axis=1)

    def _search_part(self, p: int, q: np.ndarray, k: int, passing: int,
                     widen: int = 1) -> tuple[np.ndarray, np.ndarray]:
        part, s = self.parts[p], self.state
        k = max(1, min(k, int(part.ntotal)))
        candidates = self.refine_candidates * s.count / max(1, passing)
        params = kinds.search_params(s.kind, part, k, nprobe=s.nprobe * widen, candidates=int(candidates),
                                     sel=self._selector(p) if s.kind == "flat" else None)
        scores, pos = part.search(q, k, params=params)
        ids = np.where(pos >= 0, self.ids[p][np.maximum(pos, 0)], DELETED)
        return np.where(ids != DELETED, scores, -np.inf), ids

    def _selector(self, p: int):
        """A faiss ID selector of part p's live positions (None when none is deleted)."""
        if p not in self._selectors:
            keep = self.ids[p] != DELETED
            entry = None
            if not keep.all():
                f = kinds.faiss()
                bitmap = np.packbits(keep, bitorder="little")  # bit i: position i is searched
                entry = (bitmap, f.IDSelectorBitmap(len(bitmap), f.swig_ptr(bitmap)))  # bitmap outlives it
            self._selectors[p] = entry
        entry = self._selectors.get(p)
        return entry[1] if entry else None

    def _pooled(self, fn: Callable, items: list, inline: bool = False) -> list:
        """fn over items, on the index's threads (faiss single-threaded there), or in turn on this one
        when the work is too small to pay for handing it over."""
        if inline:
            return [fn(i) for i in items]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=PARTS, thread_name_prefix="clipseek-search",
                                            initializer=_one_faiss_thread)
        return list(self._pool.map(fn, items))

    @property
    def ntotal(self) -> int:
        return int(sum(p.ntotal for p in self.parts))

    def close(self) -> None:
        """Stop the search threads (a later search starts them again)."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None


def _no_results(m: int) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((m, 0), np.float32), np.zeros((m, 0), np.int64)
