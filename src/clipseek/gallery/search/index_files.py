"""Keeping a `VectorIndex` beside its store: the persisted state, the files, and the sync rules.

`StoreBacked` is the part of `VectorIndex` that knows the store and the disk (the class itself builds,
extends and searches). Files: `<db>.faiss` (`.faiss.1`... for more parts), `<db>.faiss.ids.npy`,
`<db>.faiss.json` (the `IndexState`). One of another format (before 4: the exhaustive "pq-sq8"
default) or of a kind this version does not build is not loaded: it is rebuilt from the store.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field

import numpy as np

from clipseek._io import atomic_write, atomic_write_json
from clipseek.gallery.search import kinds
from clipseek.gallery.search.kinds import APPROX_THRESHOLD, KINDS, choose_kind

log = logging.getLogger(__name__)

REBUILD_FRACTION = 0.1
DELETED = -1               # the id of a position whose row left the store
FORMAT = 4                 # 4: inverted file ("ivf-pq-sq8") and its probe count / drift figures


@dataclass
class IndexState:
    db_id: str
    fingerprint: str  # str(Fingerprint) of the store's model, "" before one is bound
    kind: str        # one of KINDS
    max_id: int      # highest store row id in the index
    count: int       # vectors in the index
    deleted: int = 0  # of those, rows no longer in the store (id DELETED, skipped by queries)
    parts: list[int] = field(default_factory=list)  # vectors per part
    nlist: int = 0   # inverted file: lists (0 until trained)
    nprobe: int = 0  # inverted file: lists probed per query, measured at training
    trained: int = 0  # inverted file: vectors in it when it was trained
    base_distance: float = 0.0   # mean squared distance to their centroid of vectors k-means did not see
    added_distance: float = 0.0  # the sum of that distance over the vectors added since training
    format: int = FORMAT


class StoreBacked:
    """Persistence and store sync of `VectorIndex` (parts, ids, state; `rebuild` and `add` are its own)."""

    # ---- persistence -------------------------------------------------------------------------------
    @staticmethod
    def _part_path(path: str, p: int) -> str:
        return path if p == 0 else f"{path}.{p}"

    def save(self, path: str) -> None:
        """Write each file atomically; the state (written last) names what is valid."""
        f = kinds.faiss()
        for p, part in enumerate(self.parts):
            atomic_write(self._part_path(path, p), lambda tmp, part=part: _write_index(f, part, tmp))

        def write_ids(tmp: str) -> None:
            with open(tmp, "wb") as f:
                np.save(f, np.concatenate(self.ids))
        atomic_write(path + ".ids.npy", write_ids)
        atomic_write_json(path + ".json", asdict(self.state), indent=None)
        p = len(self.parts)
        while os.path.exists(self._part_path(path, p)):  # parts of an earlier, larger index
            os.remove(self._part_path(path, p))
            p += 1

    def save_cache(self, path: str) -> bool:
        """`save`, as a cache: on a full disk (or any failure to write) the index stays in memory only,
        and the next process rebuilds or extends it. True when saved."""
        try:
            self.save(path)
            return True
        except (OSError, RuntimeError) as e:  # faiss raises RuntimeError when its write fails
            log.info("not saving the vector index %s: %s", path, e)
            return False

    @classmethod
    def load(cls, path: str):
        """The saved index, or None if missing, unreadable, inconsistent, of another format or of a
        kind this version does not build (it is only a cache)."""
        try:
            with open(path + ".json") as f:
                state = IndexState(**json.load(f))
            if state.format != FORMAT or state.kind not in KINDS:
                return None
            parts = [_read_index(kinds.faiss(), cls._part_path(path, p)) for p in range(len(state.parts))]
            ids = np.load(path + ".ids.npy")
        except Exception:
            return None
        if not parts or [int(p.ntotal) for p in parts] != state.parts or sum(state.parts) != state.count \
                or len(ids) != state.count or int(np.count_nonzero(ids == DELETED)) != state.deleted:
            return None
        return cls(parts, state, np.split(ids, np.cumsum(state.parts)[:-1]))

    # ---- keeping it in step with the store ---------------------------------------------------------
    @classmethod
    def for_store(cls, store, path: str | None = None, threshold: int = APPROX_THRESHOLD):
        """Load the index persisted beside the store, extend or rebuild it if stale, save if changed."""
        path = path or store.path + ".faiss"
        vi = cls.load(path)
        if vi is not None and vi.sync(store, threshold):
            vi.save_cache(path)
        elif vi is None:
            vi = cls.rebuild(store, threshold)
            vi.save_cache(path)
        return vi

    def sync(self, store, threshold: int = APPROX_THRESHOLD) -> bool:
        """Bring this index up to date with the store: extend it with new rows and mark deleted ones,
        or rebuild it when it belongs to another DB/model, too many rows were deleted, it outgrew the
        exact index, was empty, or (after adding the new rows) it drifted or outgrew its training
        (`kinds.drifted`). Returns True if anything changed (so the caller saves it)."""
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
        why = kinds.drifted(self.state)
        if why:
            log.info("retraining the vector index of %s: %s", store.path, why)
            self._replace(self.rebuild(store, threshold))
        return changed or bool(why)

    def _replace(self, other) -> None:
        self.parts, self.state, self.ids = other.parts, other.state, other.ids
        self._selectors, self._sorted = {}, {}


def _utf8(path: str) -> bool:
    try:
        path.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def _write_index(faiss, index, path: str) -> None:
    """faiss takes a path as UTF-8; a folder's name need not be: then write through a Python file."""
    if _utf8(path):
        faiss.write_index(index, path)
        return
    with open(path, "wb") as f:
        faiss.write_index(index, faiss.PyCallbackIOWriter(f.write))


def _read_index(faiss, path: str):
    if _utf8(path):
        return faiss.read_index(path)
    with open(path, "rb") as f:
        return faiss.read_index(faiss.PyCallbackIOReader(f.read))
