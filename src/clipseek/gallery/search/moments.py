"""Search over the moments of a gallery's videos, beside the search over its files.

The moments have their own `VectorIndex` (`<db>.moments.faiss`, kept in step with the `moments` table
through `store_moments.MomentsView`, by the same rules as the files' index): a second index rather
than ids offset in the first, so that neither index's id rules change and a gallery without videos
costs nothing. A search asks it for `fetch` moments (over-fetch: several moments of one video crowd
the top), among the moments of the files a filter passes (the moment -> file map, 16 bytes a moment,
held until the database changes), re-scores them exactly from the stored vectors, groups them by
video and keeps each video's best `KEEP` moments: the video's score is its best moment's.
"""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np

from clipseek._io import short_lock
from clipseek.gallery.search.ids import member
from clipseek.gallery.search.vector_index import APPROX_THRESHOLD, VectorIndex
from clipseek.gallery.store_moments import MomentsView

KEEP = 5         # moments kept per video result (its best, by score)
OVERFETCH = 4    # moments asked for per video wanted


class MomentSearch:
    """The moments' index and moment -> file map of one store, refreshed when the database changes."""

    def __init__(self, threshold: int = APPROX_THRESHOLD):
        self.threshold = threshold
        self.index: VectorIndex | None = None
        self._key = None
        self._map: tuple[np.ndarray, np.ndarray] | None = None  # (moment ids ascending, file ids)

    def refresh(self, store) -> VectorIndex:
        key = (store.conn.execute("PRAGMA data_version").fetchone()[0], store.conn.total_changes)
        if self.index is not None and key == self._key:
            return self.index
        view, path = MomentsView(store), store.path + ".moments.faiss"
        lock = nullcontext(False) if store.readonly else short_lock(path + ".lock")
        with lock as locked:
            if self.index is None and locked:
                self.index = VectorIndex.for_store(view, path, self.threshold)
            elif self.index is None:
                self.index = VectorIndex.load(path) or VectorIndex.rebuild(view, self.threshold)
                self.index.sync(view, self.threshold)
            elif self.index.sync(view, self.threshold) and locked:
                self.index.save_cache(path)
        self._map = store.moment_files()
        self._key = key
        return self.index

    def search(self, store, q: np.ndarray, videos: int, files: np.ndarray | None
               ) -> list[tuple[float, int, list[tuple[float, float]]]]:
        """[(best score, file id, [(time_s, score)] best first, at most KEEP)] of up to `videos` videos,
        best first, among the moments of `files` (file ids, sorted; None: every video)."""
        index = self.refresh(store)
        if index.state.count == 0:
            return []
        allowed = None
        if files is not None:
            moment_ids, file_ids = self._map
            allowed = moment_ids[member(file_ids, files)] if len(files) else moment_ids[:0]
            if not len(allowed):
                return []
        fetch = max(videos * OVERFETCH, 32)
        _, ids = index.search(q[None, :], fetch, allowed=allowed)
        found = store.get_moments_with_vectors([int(i) for i in ids[0] if i >= 0])
        by_file: dict[int, list[tuple[float, float]]] = {}
        for _, (file_id, time_s, vec) in found.items():
            by_file.setdefault(file_id, []).append((float(vec @ q), time_s))
        out = []
        for file_id, scored in by_file.items():
            scored.sort(key=lambda st: (-st[0], st[1]))
            out.append((scored[0][0], file_id, [(t, s) for s, t in scored[:KEEP]]))
        out.sort(key=lambda r: (-r[0], r[1]))
        return out[:videos]

    def close(self) -> None:
        if self.index is not None:
            self.index.close()


def ranked_media(gallery, index: VectorIndex, q: np.ndarray, k: int, where) -> list[tuple]:
    """[(score, FileRow, [(time_s, score)...])] of the k best photos and videos together (a video by
    its best moment; a photo with no moments), among those `where` passes, best first. Photos come
    from the files' index (the videos' rows, whose vector is their moments' mean, left out), videos
    from the moments' index."""
    from dataclasses import replace

    from clipseek.gallery.query import Filter

    where = where or Filter()
    photos = [] if where.media == "video" else \
        [(s, r, []) for s, r in gallery._ranked(index, q, k, gallery._allowed(replace(where, media="photo")))]
    videos = []
    if where.media != "photo":
        files = gallery._allowed(replace(where, media="video")) if replace(where, media=None) else None
        found = gallery._moments.search(gallery.store, q, k, files)
        rows = gallery.store.get_rows([f for _, f, _ in found])
        videos = [(s, rows[f], moments) for s, f, moments in found if f in rows]
    return sorted(photos + videos, key=lambda t: (-t[0], t[1].id))[:k]
