"""Text-to-image and image-to-image search over a gallery: `clipseek.Gallery(db).search(...)`.

`Gallery` ties the pieces together: the store (truth), the FAISS index (a cache, kept in step), and
an encoder (loaded from the model recorded in the database unless one is given).

A search: the query's terms (text, an image, `add` and `subtract`: gallery.query) -> one unit vector
-> the row ids that pass the filter (`where`, before ranking: gallery.search.facets, the filter columns
held in memory until the database changes) -> candidates from the index among those rows -> exact
cosine from the stored vectors -> relevance of each result against the query's scores over a uniform
sample of the gallery and its best scores over the whole gallery (an extra unfiltered look-up of the
top when filtered) -> with `relevant=True`, only the relevant ones.

One writer per gallery: `index`, `index_parquet` and `writing()` (a watcher's whole run) hold
`DB.lock` (`_io.writer_lock`), so a second writer exits at once (BusyError naming the first). Readers take no such lock:
SQLite's WAL lets them search while a writer commits. Any process may save the FAISS cache after
bringing it up to date; saves are serialized by `DB.faiss.lock`, held for the save only.
"""

from __future__ import annotations

import os
from contextlib import ExitStack, contextmanager, nullcontext
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

import numpy as np

from clipseek._io import short_lock, writer_lock
from clipseek.core.images import DEFAULT_LIMITS, ImageLimits, one_or_many
from clipseek.core.numbers import check_number
from clipseek.core.paths import quote_path
from clipseek.errors import BusyError, ModelMismatchError, UsageError
from clipseek.gallery.dbfile import write_error
from clipseek.gallery.result import SearchResult
from clipseek.gallery.search.facets import Facets
from clipseek.gallery.search.moments import MomentSearch, ranked_media
from clipseek.gallery.query import (
    RELEVANT_AT,
    SAMPLE,
    TOP_N,
    Filter,
    Term,
    combine,
    filter_from_keywords,
    query_terms,
    relevance,
    term_vectors,
)
from clipseek.gallery.store import Store
from clipseek.gallery.search.vector_index import APPROX_THRESHOLD, VectorIndex
from clipseek.model.fingerprint import model_source
from clipseek.model.spec import ModelSpec

if TYPE_CHECKING:
    from clipseek.model.base import Encoder

DEFAULT_DB = "clipseek.db"
RERANK_MIN = 32


class Gallery:
    """A searchable image collection stored in one SQLite file (plus a FAISS cache beside it).

    `Gallery(db)` opens an existing gallery and searches it with the model it was indexed with;
    `Gallery(db, encoder)`, `Gallery(db, spec=ModelSpec(...))` or `Gallery(db, model="...")` picks the
    model (it must match the DB's). `model`, `device`, `dtype`, `backend` and `int8_text` are the
    fields of a `ModelSpec`, for short.
    """

    def __init__(self, db_path: str | os.PathLike[str] = DEFAULT_DB, encoder: Encoder | None = None, *,
                 spec: ModelSpec | None = None, model: str | None = None, device: str = "auto",
                 dtype: str | None = None, approx_threshold: int = APPROX_THRESHOLD, int8_text: bool = False,
                 backend: str = "torch"):
        self.db_path = os.path.abspath(os.path.expanduser(os.fspath(db_path)))
        self._encoder = encoder
        if spec is None:
            spec = ModelSpec(model, device, dtype, backend, int8_text=int8_text)
        elif (model, device, dtype, backend, int8_text) != (None, "auto", None, "torch", False):
            raise UsageError("give the model as spec=ModelSpec(...) or as keywords, not both")
        self.spec = spec
        self._store: Store | None = None
        self._index: VectorIndex | None = None
        self._data_version: int | None = None
        self._sample: tuple[tuple, np.ndarray] | None = None  # (index state it was drawn for, vectors)
        self._facets: tuple[tuple, Facets] | None = None  # (database state they were read at, filter columns)
        self.approx_threshold = approx_threshold
        self._writing_depth = 0  # > 0 while this Gallery holds its writer lock
        self._moments = MomentSearch(approx_threshold)  # the videos' moments (their own index)

    # ---- lazily opened parts ---------------------------------------------------------------------
    def _open(self, create: bool, model=None) -> Store:
        if self._store is None:
            self._store = Store.open(self.db_path, create=create, model=model)
        return self._store

    def _exists(self) -> bool:
        return os.path.isfile(self.db_path) and os.path.getsize(self.db_path) > 0

    @contextmanager
    def writing(self) -> Iterator["Gallery"]:
        """Hold this gallery's writer lock for the block (re-entrant): BusyError at once when another
        process holds it. `index` takes it by itself; a watcher holds it for its whole run."""
        if self._writing_depth == 0:
            with self._writer_lock():
                self._writing_depth = 1
                try:
                    yield self
                finally:
                    self._writing_depth = 0
            return
        self._writing_depth += 1
        try:
            yield self
        finally:
            self._writing_depth -= 1

    @contextmanager
    def _writer_lock(self) -> Iterator[None]:
        """`_io.writer_lock` on DB.lock; a folder where it cannot be made (read-only, full) is one line."""
        with ExitStack() as stack:
            try:
                stack.enter_context(writer_lock(self.db_path + ".lock", self.db_path, BusyError))
            except OSError as e:
                raise (write_error(self.db_path, e, "locking") or e) from None
            yield

    def check_database(self) -> None:
        """DatabaseGone when the open database file was deleted or replaced (a watcher checks before
        each batch, so it never writes into a file that is no longer the gallery)."""
        if self._store is not None:
            self._store.check_file()

    def _open_for_writing(self) -> tuple[Store, Encoder]:
        """The store and its encoder; a new database is created with the encoder's model recorded."""
        if self._store is None and not self._exists():
            enc = self.encoder  # the model given, or the default: loaded before the file exists
            return self._open(create=True, model=(enc.fingerprint, enc.dim)), enc
        store = self._open(create=True)
        return store, self.encoder  # raises if the DB belongs to another model

    @property
    def store(self) -> Store:
        return self._open(create=False)

    @property
    def encoder(self) -> Encoder:
        if self._encoder is None:
            from clipseek.model.loader import DEFAULT_MODEL

            spec = self.spec
            if self._store is None and spec.name is None and os.path.isfile(self.db_path):
                self._open(create=False)  # the DB names its model
            fp = self._store.fingerprint if self._store is not None else None
            name = model_source(spec.name or (fp.name if fp else DEFAULT_MODEL))
            dtype = spec.dtype or (fp.dtype if fp and not spec.name else None) or "auto"
            backend = spec.backend
            if backend == "auto" and fp is not None and not spec.name and fp.dtype != "float32" \
                    and fp.backend in ("torch", "onnx"):
                backend = fp.backend  # reduced-precision vectors are runtime-specific: keep the DB's
            self._encoder = spec.replace(name=name, dtype=dtype, backend=backend,
                                         framing=fp.framing if fp else spec.framing).load()
        self._check_model()
        return self._encoder

    def _check_model(self) -> None:
        store, enc = self._store, self._encoder
        if store is None or enc is None:
            return
        have = store.fingerprint
        if have is not None and not have.same_weights(enc.fingerprint):
            raise ModelMismatchError(f"{store.path} was indexed with model [{have}] but the model "
                             f"given is [{enc.fingerprint}]; to use this database, leave --model out (it "
                             f"names its own model: --model {quote_path(have.name)}); to use this model, "
                             "give a new --db")

    def close(self) -> None:
        if self._index is not None:
            self._index.close()
        self._moments.close()
        if self._store is not None:
            self._store.close()
            self._store = None
        self._facets = None

    def __enter__(self) -> "Gallery":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- indexing --------------------------------------------------------------------------------
    def index(self, dirs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], batch_size: int = 32,
              workers: int | None = None,
              limits: ImageLimits = DEFAULT_LIMITS, on_start: Callable[[int], None] | None = None,
              on_progress: Callable[[int], None] | None = None, refresh_index: bool = True,
              follow_links: bool | None = None, thumbnails: bool = True,
              on_phase: Callable[[str, int | None], Callable[[int], None] | None] | None = None,
              on_read: Callable[[int], None] | None = None):
        """Add new/changed images under `dirs`, forget deleted ones; returns an IndexSummary.
        `refresh_index=False` leaves the FAISS cache to whoever searches (a watcher beside a server).
        `follow_links`: follow symbolic links to files outside `dirs` (None: the rule the gallery
        recorded, off by default; see gallery.sync). `thumbnails`: make both thumbnail sizes from
        each file's one decode (`gallery.derive`). `on_phase(name, n)` hears each phase as it starts
        ("loading the model", "scanning", "embedding" n files, the pass over rows an older release left
        without pHash or thumbnails, "saving the index"), and may return `advance(k)` for that phase's
        progress; `on_progress(n)` the files committed, `on_read(1)` each file as it is read and decoded."""
        from clipseek.embed.stages import default_workers
        from clipseek.gallery.derive import Derive, fill_derived
        from clipseek.gallery.thumbs import default_thumb_dir
        from clipseek.gallery.roots import record_roots
        from clipseek.gallery.sync import check_roots, index_folders

        dirs = one_or_many(dirs)
        roots = check_roots(dirs)  # before loading a model: a typo in a folder name fails fast
        if not os.path.isdir(os.path.dirname(self.db_path)):
            raise UsageError(f"cannot create database {self.db_path}: folder does not exist")
        self.check_database()  # before each batch of a watcher: never into a deleted file
        phase = on_phase or (lambda name, n: None)
        with self.writing():
            if self._encoder is None:
                phase("loading the model", None)
            store, enc = self._open_for_writing()
            record_roots(store, roots)  # before any row of them: the server serves files inside roots
            summary = index_folders(store, enc, dirs, batch_size=batch_size,
                                    workers=workers, limits=limits, on_start=on_start,
                                    on_progress=on_progress, follow_links=follow_links, on_phase=on_phase,
                                    on_read=on_read,
                                    derive=Derive(default_thumb_dir(store.path) if thumbnails else None))
            # pHashes and thumbnails that rows lack (a database made by an older release)
            fill_derived(store, default_thumb_dir(store.path) if thumbnails else None,
                         workers or default_workers(), limits, on_phase)
            phase("saving the index", summary.total)
            if refresh_index:
                self._refresh_index(force=True)
        return summary

    def index_parquet(self, out_dir: str, on_progress: Callable[[int], None] | None = None):
        """Load the Parquet shards of a `clipseek embed` job (no model needed); returns an IndexSummary."""
        from clipseek.embed.shard_load import load_manifest
        from clipseek.gallery.parquet_load import index_from_parquet
        from clipseek.gallery.roots import record_roots, unrooted_folder

        job = load_manifest(out_dir)  # checked: a bad manifest is one line before anything is opened
        model = None if job.fingerprint is None else (job.fingerprint, job.dim)
        if not os.path.isdir(os.path.dirname(self.db_path)):
            raise UsageError(f"cannot create database {self.db_path}: folder does not exist")
        with self.writing():
            store = self._open(create=True, model=None if self._exists() else model)
            record_roots(store, [])  # the folder of the rows already there, if none was recorded
            summary = index_from_parquet(store, out_dir, on_progress=on_progress)
            loaded = unrooted_folder(store)  # the folder of the rows loaded (from anywhere)
            if loaded:
                record_roots(store, [loaded])
            self._refresh_index(force=True)
        return summary

    # ---- searching -------------------------------------------------------------------------------
    def search(self, text: str | None = None, image: str | None = None, k: int = 10,
               threshold: float | None = None, *, add: Sequence = (), subtract: Sequence = (),
               where: Filter | None = None, relevant: bool = False,
               limits: ImageLimits = DEFAULT_LIMITS, **filters) -> list[SearchResult]:
        """The k images most similar to the query, best first, among those that pass `where`.

        The query is `text` or the image file `image`, plus `add` and minus `subtract` (terms: text,
        an image path, `image:ID`, each optionally `W:VALUE`; or `query.Term`s): the normalised
        weighted sum of their unit vectors. `relevant=True` keeps only the results that stand out
        from the query's scores over the gallery (`SearchResult.relevance`); `threshold` keeps those
        with cosine >= threshold. `limits` apply to the image files read.

        Filters: `where=Filter.parse(...)`, or the same as keywords: `folders` (one folder or a list),
        `after`, `before` (YYYY[-MM[-DD]]), `orientation`, `min_size` ("1920x1080"), `ext` ("jpg,png")."""
        if filters:
            if where is not None:
                raise UsageError("give the filter as where=Filter(...) or as keywords, not both")
            where = filter_from_keywords(filters)
        terms = query_terms(text, image, add, subtract)
        if k < 1:
            raise UsageError("k (--top-k) must be at least 1")
        _check_threshold(threshold)  # before the model encodes anything
        self.store  # noqa: B018  - opens the DB (and fails clearly) before loading a model
        return self.search_vector(self.query_vector(terms, limits=limits), k, threshold, where=where,
                                  relevant=relevant)

    def query_vector(self, terms: Sequence[Term], known: dict | None = None,
                     first: np.ndarray | None = None, limits: ImageLimits = DEFAULT_LIMITS) -> np.ndarray:
        """The unit query vector of `terms` (texts already encoded may be given in `known`, text ->
        vector), after `first`, an already encoded query of weight 1, if given."""
        terms = list(terms)
        vecs = term_vectors(self.encoder, self.store, terms, known, limits) if terms \
            else np.zeros((0, 0), np.float32)
        weights = [t.weight for t in terms]
        if first is not None:
            first = np.asarray(first, np.float32).reshape(1, -1)
            vecs, weights = (np.concatenate([first, vecs]) if len(vecs) else first), [1.0] + weights
        return combine(weights, vecs)

    def search_vector(self, query: np.ndarray, k: int = 10, threshold: float | None = None, *,
                      where: Filter | None = None, relevant: bool = False) -> list[SearchResult]:
        """Top-k by cosine for a unit query vector among the rows that pass `where`; scores are
        recomputed exactly from the store, and each result gets its relevance."""
        _check_threshold(threshold)
        index = self._refresh_index()
        if index.state.count == 0:
            return []
        q = np.asarray(query, dtype=np.float32).reshape(-1)
        allowed = self._allowed(where) if where else None
        if allowed is not None and not len(allowed):
            return []
        scored = self._ranked_all(index, q, max(k, TOP_N), where, allowed)
        top = [t[0] for t in (scored if allowed is None else self._ranked_all(index, q, TOP_N, None, None))[:TOP_N]]
        computed = relevance(np.array([t[0] for t in scored[:k]]), self._background() @ q, top)
        rel: list = [None] * len(scored) if computed is None else list(computed)
        if computed is None:  # undefined here: nothing can be told apart, so `relevant` keeps every result
            relevant = False
        out = [SearchResult(r.id, r.path, s, r.width, r.height, None if v is None else float(v),
                            v is not None and bool(v >= RELEVANT_AT), "video" if m else "photo",
                            m[0][0] if m else None, tuple(m)) for (s, r, m), v in zip(scored[:k], rel)]
        return [r for r in out if (threshold is None or r.score >= threshold) and (r.relevant or not relevant)]

    def _ranked_all(self, index: VectorIndex, q: np.ndarray, k: int, where: Filter | None,
                    allowed: np.ndarray | None) -> list:
        """[(score, FileRow, moments)]: photos and videos together once the gallery has videos
        (gallery.search.moments); else the files alone, with no moments."""
        if self.store.has_videos():
            return ranked_media(self, index, q, k, where)
        return [(s, r, []) for s, r in self._ranked(index, q, k, allowed)]

    def _ranked(self, index: VectorIndex, q: np.ndarray, k: int, allowed: np.ndarray | None) -> list:
        """[(exact cosine, FileRow)] of the k best (of the allowed rows), best first."""
        # approximate index: fetch extra candidates, re-rank them by exact cosine (lifts recall);
        # the index leaves deleted rows out itself
        extra = max(k, RERANK_MIN) if index.state.kind != "flat" else 0
        _, ids = index.search(q[None, :], k + extra, allowed=allowed)
        rows = self.store.get_rows_with_vectors([int(i) for i in ids[0] if i >= 0])
        return sorted(((float(vec @ q), row) for row, vec in rows.values()), key=lambda t: (-t[0], t[1].id))[:k]

    def _background(self) -> np.ndarray:
        """Vectors of a uniform sample of the gallery (SAMPLE rows, seed 0; all of a smaller one),
        drawn again when rows were added or deleted."""
        index = self._index
        assert index is not None, "the vector index is opened before a search samples it"
        key = (index.state.max_id, index.state.count, index.state.deleted)
        if self._sample is None or self._sample[0] != key:
            ids = np.concatenate(index.ids) if index.ids else np.zeros(0, np.int64)
            ids = np.sort(ids[ids >= 0])
            if len(ids) > SAMPLE:
                ids = np.sort(np.random.default_rng(0).choice(ids, SAMPLE, replace=False))
            rows = self.store.get_rows_with_vectors(ids.tolist())
            vecs = np.stack([v for _, v in rows.values()]) if rows else np.zeros((0, 0), np.float32)
            self._sample = (key, vecs)
        return self._sample[1]

    def count(self, where: Filter | None = None) -> int:
        """Images in the gallery that pass `where` (all of them without one)."""
        return len(self._allowed(where)) if where else self.store.count()

    def _allowed(self, where: Filter) -> np.ndarray:
        """Ids (ascending) of the rows that pass `where`, from the filter columns held in memory: read
        again once the database changed (another connection's commit moves `data_version`, one of this
        connection's moves `total_changes`)."""
        return self.facets().allowed(where)

    def facets(self) -> Facets:
        """The filter columns of every row (gallery.search.facets), read again once the database changed."""
        store = self.store
        key = (store.conn.execute("PRAGMA data_version").fetchone()[0], store.conn.total_changes)
        if self._facets is None or self._facets[0] != key:
            self._facets = (key, Facets.load(store))
        return self._facets[1]

    def _refresh_index(self, force: bool = False) -> VectorIndex:
        store = self.store
        version = store.conn.execute("PRAGMA data_version").fetchone()[0]
        if self._index is None or force or version != self._data_version:
            lock = nullcontext(False) if store.readonly else short_lock(store.path + ".faiss.lock")
            with lock as locked:  # one saver at a time; a read-only gallery: in memory only
                if self._index is None and locked:
                    self._index = VectorIndex.for_store(store, threshold=self.approx_threshold)
                elif self._index is None:  # a folder we cannot write: use the cache, never save it
                    self._index = VectorIndex.load(store.path + ".faiss") or \
                        VectorIndex.rebuild(store, self.approx_threshold)
                    self._index.sync(store, self.approx_threshold)
                elif self._index.sync(store, self.approx_threshold) and locked:
                    self._index.save_cache(store.path + ".faiss")
        self._data_version = version
        return self._index

    def stats(self) -> dict:
        store = self.store
        return {"db": store.path, "images": store.count(), "skipped": len(store.skipped()),
                **store.model_info()}


def _check_threshold(threshold: float | None) -> None:
    if threshold is not None:
        check_number(threshold, "threshold (--threshold)", -1, 1)
