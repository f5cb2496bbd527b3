"""What `clipseek serve` does, as a library: search, classify, images and thumbnails of one gallery,
with every request limit checked (server.checks), so the HTTP layer (server.app) only maps requests
to calls.

Threading: all model and index work runs on the service's one model thread (server.worker), where
the gallery's SQLite connection lives; callers (any thread) block on it. Looking up an image by id
uses a small read-only connection per calling thread, so serving thumbnails never waits behind a
model forward. The JSON bodies are shaped in server.results.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from clipseek.errors import UsageError
from clipseek.gallery.dbfile import DatabaseGone
from clipseek.gallery.gallery import Gallery
from clipseek.gallery.store import Store
from clipseek.gallery.thumbs import (
    THUMB_SIZE,
    as_jpeg,
    cached_thumbnail,
    media_type,
    default_thumb_dir,
    save_thumbnail,
    thumbnail_path,
    thumbnail_places,
)
from clipseek.model.spec import ModelSpec
from clipseek.server.checks import (
    Limits,
    NotFound,
    SearchOptions,
    Unavailable,
    check_k,
    check_labels,
    check_query,
    check_templates,
    decode_upload,
    parse_options,
)
from clipseek.server.fair import Classifiers
from clipseek.server.files import Opened, Refused, image_format, open_indexed
from clipseek.server.results import (
    browse_doc,
    classification_doc,
    dupes_doc,
    folders_doc,
    iso_time,
    relative_to,
    search_doc,
    stats_doc,
)
from clipseek.server.worker import ModelThread

if TYPE_CHECKING:
    from clipseek.model.base import Encoder


class GalleryService:
    """One gallery and its model, safe to call from many threads. Close with `.close()`."""

    def __init__(self, gallery: Gallery | str, encoder: Encoder | None = None, *, spec: ModelSpec | None = None,
                 limits: Limits = Limits(), thumb_dir: str | None = None):
        """`gallery`: a Gallery or a database path; the model: `encoder`, else `spec` (default: the
        model the database records)."""
        if isinstance(gallery, Gallery):
            gallery.close()  # reopened below on the worker thread, which owns its SQLite connection
            if encoder is not None:
                gallery = Gallery(gallery.db_path, encoder, approx_threshold=gallery.approx_threshold)
        else:
            gallery = Gallery(gallery, encoder, spec=spec)
        self.gallery, self.limits = gallery, limits
        self.db_path = gallery.db_path
        self.thumb_dir = thumb_dir or default_thumb_dir(self.db_path)
        self._local = threading.local()
        self.unavailable: str | None = None  # why the gallery cannot be served (its DB deleted): 503
        self._model = ModelThread(lambda texts: self.gallery.encoder.encode_texts(texts))
        self._run = self._model.run
        self.encoder = self._run(self._load)  # the model is loaded once, now; a bad DB fails here
        self._classifiers = Classifiers(self._run, self.encoder.encode_texts)

    def _load(self) -> Encoder:
        self.gallery.store  # noqa: B018 - opens the DB (clear error if missing) before the model
        enc = self.gallery.encoder
        self.gallery.search_vector(enc.encode_texts(["warm up"])[0], 1)  # builds the index now
        return enc

    def close(self) -> None:
        self.stop_watching()
        self._run(self.gallery.close)
        self._model.shutdown()

    # ---- following folders (serve --watch) -------------------------------------------------------
    def watch(self, dirs: Sequence[str], poll: bool = False, interval: float | None = None,
              quiet: float | None = None, on_batch: Callable | None = None,
              on_stop: Callable[[BaseException], None] | None = None):
        """Index `dirs` now and whenever they change, on a thread of its own with its own database
        connection (searches see each committed batch without a restart). Returns the Watcher;
        `on_stop(error)` is called if it stops by itself (a watched folder deleted, ...)."""
        from clipseek.gallery.sync import check_roots
        from clipseek.gallery.watch import MAX_WAIT, POLL_INTERVAL, QUIET, Watcher

        roots = check_roots(dirs)
        own: list[Gallery] = []

        def apply():
            if not own:  # opened on the watcher's thread, which then owns its SQLite connection
                own.append(Gallery(self.db_path, self.encoder))
            return own[0].index(roots, refresh_index=False)

        watcher = Watcher(roots, apply, on_batch, poll=poll, interval=interval or POLL_INTERVAL,
                          quiet=QUIET if quiet is None else quiet, max_wait=MAX_WAIT,
                          ignore=[self.thumb_dir], check=self.gallery.check_database)
        stop = threading.Event()

        def run():
            try:
                own.append(Gallery(self.db_path, self.encoder))  # this thread owns its connection
                with own[0].writing():  # the gallery's one writer while the server watches
                    watcher.run(stop)  # checks the file served (`check`) before each batch
            except Exception as e:  # reported once (BusyError: another writer); serving goes on
                if isinstance(e, DatabaseGone):  # ... unless the database went: then 503
                    self.unavailable = str(e)
                if on_stop:
                    on_stop(e)
            finally:
                for g in own:
                    g.close()

        watcher.start()  # fails here, in the caller, if a folder cannot be watched
        thread = threading.Thread(target=run, name="clipseek-watch", daemon=True)
        self._watching = (watcher, stop, thread)
        thread.start()
        return watcher

    def check_available(self) -> None:
        """Unavailable (HTTP 503) once the gallery's database is gone (`serve --watch` noticed)."""
        if self.unavailable:
            raise Unavailable(self.unavailable)

    def stop_watching(self, timeout: float = 30.0) -> None:
        watching = getattr(self, "_watching", None)
        if watching:
            _, stop, thread = watching
            stop.set()
            thread.join(timeout)
            self._watching = None

    # ---- search and classify ---------------------------------------------------------------------
    def search_text(self, q: str, k: int = 20, opts: SearchOptions | None = None) -> dict:
        return self.submit_search_text(q, k, opts).result()

    def submit_search_text(self, q: str, k: int = 20, opts: SearchOptions | None = None,
                           cursor: str | None = None) -> Future:
        """Check the query now (raises UsageError); a Future of the result dict (for asyncio callers
        to await with asyncio.wrap_future, so no thread waits on the model for them). Queries that
        arrive while the model is busy are encoded together, in one batch."""
        self.check_available()
        opts = opts or SearchOptions()
        check_query(self.limits, q, opts)
        check_k(self.limits, k)
        offset = self._offset(cursor, k)
        terms = opts.terms(q)
        texts = [t.text for t in terms if t.text is not None]
        return self._model.submit_texts(
            texts, lambda known: search_doc(self.gallery, terms, k, opts, known, {"query": q}, None,
                                            offset, self.limits.max_k))

    def _offset(self, cursor: str | None, k: int) -> int:
        """Where a page of a search starts: its `cursor` (the previous page's) is the offset."""
        if not cursor:
            return 0
        if not cursor.isdigit() or len(cursor) > 9:
            raise UsageError(f"not a search cursor from this server: {cursor[:40]!r}")
        offset = int(cursor)
        if offset + k > self.limits.max_k:
            raise UsageError(f"a search gives at most {self.limits.max_k} results: cursor {offset} + "
                             f"k {k} goes past them")
        return offset

    def options(self, add: Sequence[str] = (), subtract: Sequence[str] = (), folders: Sequence[str] = (),
                after: str | None = None, before: str | None = None, orientation: str | None = None,
                min_size: str | None = None, ext: str | None = None, relevant: bool = False) -> SearchOptions:
        """Search options from request parameters, within the limits; raises UsageError. Terms are
        text or `image:ID`, never a path on the server; folders are relative to the gallery's root."""
        root = self._thread_store().common_root() or os.sep
        return parse_options(self.limits, root, add, subtract, folders, after, before, orientation,
                             min_size, ext, relevant)

    def search_image(self, data: bytes, k: int = 20, name: str = "", opts: SearchOptions | None = None) -> dict:
        self.check_available()
        check_k(self.limits, k)
        img = decode_upload(self.limits, data, name)  # decoded here, not on the model thread
        return self._run(self._search_image, img, k, opts or SearchOptions())

    def _search_image(self, img, k: int, opts: SearchOptions) -> dict:
        first = self.gallery.encoder.encode_images([img])[0]
        return search_doc(self.gallery, opts.terms(""), k, opts, {}, {}, first)  # no cursor: one page

    def classify(self, data: bytes, labels: Sequence[str], templates: Sequence[str] | None = None,
                 name: str = "") -> dict:
        labels = check_labels(self.limits, labels)
        templates = check_templates(self.limits, templates, len(labels))
        img = decode_upload(self.limits, data, name)
        weights = self._classifiers.get(labels, templates)  # in slices: searches run in between
        probs = self._run(self._classify, img, weights)
        return classification_doc(labels, templates, probs, self.encoder.logit_bias)

    def _classify(self, img, weights):
        from clipseek.core.scores import probabilities

        enc = self.encoder
        return probabilities(enc.encode_images([img]), weights, enc.logit_scale, enc.logit_bias)[0]

    # ---- images by id ----------------------------------------------------------------------------
    def _thread_store(self) -> Store:
        """A connection of the calling thread's own (never the model thread's)."""
        self.check_available()
        store = getattr(self._local, "store", None)
        if store is None:
            store = self._local.store = Store.open(self.db_path, create=False)
        return store

    def _row(self, image_id: int):
        """The catalogue row of an indexed image, else NotFound."""
        store = self._thread_store()
        row = store.get_rows([image_id]).get(image_id) if 0 < image_id < 2 ** 63 else None
        if row is None:
            raise NotFound(f"no image with id {image_id}")
        return row

    def _open(self, image_id: int, row) -> Opened:
        """The file of `row`, opened as server.files says (inside the gallery's folders, no link
        followed, as indexed); NotFound else. The caller closes it."""
        from clipseek.gallery.roots import gallery_roots

        try:
            return open_indexed(row.path, gallery_roots(self._thread_store()), row.size, row.mtime_ns)
        except Refused as e:
            if e.gone:
                raise NotFound(f"image {image_id} is in the index but its file is gone; re-run "
                               "clipseek index") from None
            if e.changed:
                raise NotFound(f"image {image_id} changed on disk since it was indexed; re-run "
                               "clipseek index") from None
            raise NotFound(f"image {image_id} is not served: {e.reason}") from None

    def _decode(self, image_id: int, opened: Opened, long_side: int | None = None):
        """(bytes, Pillow format, decoded image) of an opened file, which must still be an image."""
        try:
            data = opened.read()
            return data, *image_format(data, self.limits.max_pixels, long_side)
        except Refused as e:
            raise NotFound(f"image {image_id} is not served: {e.reason}") from None
        finally:
            os.close(opened.fd)

    def info(self, image_id: int) -> dict:
        """An image's details from the catalogue (the file is not read): path and folder relative to
        the gallery's root, dimensions, file size, capture time."""
        from clipseek.gallery.query import PENDING

        row, store = self._row(image_id), self._thread_store()
        (when,) = store.conn.execute(f"SELECT coalesce(nullif(taken_ns, {PENDING}), mtime_ns) FROM files "
                                     "WHERE id = ?", (image_id,)).fetchone()
        rel = os.path.relpath(row.path, store.common_root() or os.sep)
        return {"id": image_id, "path": rel, "folder": os.path.dirname(rel), "width": row.width,
                "height": row.height, "size": row.size, "taken": iso_time(when)}

    def image(self, image_id: int) -> tuple[bytes, str, str]:
        """(the file's bytes, its media type, its name) for a format browsers show (by content),
        else (a JPEG copy, 'image/jpeg', its name)."""
        row = self._row(image_id)
        data, fmt, img = self._decode(image_id, self._open(image_id, row))
        media = media_type(fmt)
        name = os.path.basename(row.path)
        return (data, media, name) if media else (as_jpeg(img), "image/jpeg", name)

    def thumbnail(self, image_id: int, size: int = THUMB_SIZE) -> bytes:
        """The JPEG thumbnail's bytes (`size`: one of `thumbs.THUMB_SIZES`' values)."""
        return self.thumbnail_of(image_id, size)[0]

    def thumbnail_of(self, image_id: int, size: int = THUMB_SIZE) -> tuple[bytes, str]:
        """(the JPEG thumbnail's bytes, the content hash it is of): made at index time (the gallery's
        `DB.thumbs/`), else made now from the bytes of the checked file and kept (a gallery made by an
        older release). The file is checked either way (it must still be the one indexed, inside the
        gallery)."""
        row = self._row(image_id)
        try:
            places = thumbnail_places(self.thumb_dir, row.hash, size)
            made = [thumbnail_path(default_thumb_dir(self.db_path), row.hash, size)]  # by `index`
        except ValueError:
            raise NotFound(f"image {image_id} is not served: its content hash in the index is not "
                           "valid") from None
        opened = self._open(image_id, row)
        cached = cached_thumbnail(places + [p for p in made if p not in places])
        if cached is not None:
            os.close(opened.fd)
            return cached, row.hash
        _, _, img = self._decode(image_id, opened, size)
        return save_thumbnail(img, places, size), row.hash

    # ---- browsing (no query) ---------------------------------------------------------------------
    def browse(self, opts: SearchOptions, cursor: str | None = None, limit: int = 100) -> dict:
        """One page of the images passing `opts.where`, newest capture first (gallery.search.browse),
        after `cursor` (the `cursor` of the page before)."""
        from clipseek.gallery.search.browse import parse_cursor

        self.check_available()
        if not 1 <= limit <= self.limits.max_browse:
            raise UsageError(f"limit must be between 1 and {self.limits.max_browse}, got {limit}")
        if cursor:
            parse_cursor(cursor)  # UsageError here, not on the model thread
        return self._run(self._browse, opts.where, cursor, limit)

    def _browse(self, where, cursor, limit) -> dict:
        from clipseek.gallery.search.browse import timeline_of

        facets = self.gallery.facets()
        page = timeline_of(facets).page(facets.mask(where) if where else None, cursor, limit)
        store = self.gallery.store
        return browse_doc(page, store.get_rows(page.ids.tolist()), store.common_root())

    def folders(self, opts: SearchOptions | None = None) -> dict:
        """Every folder with its count of images, and the images per month (within `opts.where`)."""
        self.check_available()
        where = opts.where if opts else None

        def read():
            from clipseek.gallery.search.browse import timeline_of

            facets = self.gallery.facets()
            tl, mask = timeline_of(facets), facets.mask(where) if where else None
            return folders_doc(tl.folders(mask), tl.months(mask), self.gallery.store.common_root())

        return self._run(read)

    # ---- duplicates and stats --------------------------------------------------------------------
    def dupes(self, similar: bool = False, threshold: float = 0.95, limit: int = 500) -> dict:
        """Duplicate groups (gallery.dupes.groups) with paths relative to the gallery's root; at most `limit`
        groups, the largest first. Computed on the model thread, which owns the gallery's database."""
        from clipseek.gallery.dupes.groups import check_settings

        self.check_available()
        check_settings(threshold, 0)
        if not 1 <= limit <= self.limits.max_dupe_groups:
            raise UsageError(f"limit must be between 1 and {self.limits.max_dupe_groups}, got {limit}")
        return self._run(self._dupes, similar, threshold, limit)

    def _dupes(self, similar: bool, threshold: float, limit: int) -> dict:
        from clipseek.gallery.dupes.groups import find_duplicates

        store = self.gallery.store
        groups = find_duplicates(store, similar=similar, threshold=threshold)
        facets = self.gallery.facets()

        def taken(rid: int) -> int | None:
            i = int(np.searchsorted(facets.ids, rid))
            return int(facets.when_ns[i]) if i < len(facets.ids) and facets.ids[i] == rid else None

        return dupes_doc(groups, store.common_root(), similar, threshold, limit, taken,
                         relative_to(self.db_path, store.common_root()))

    def stats(self) -> dict:
        """The gallery's counts, model and limits. No absolute path of the server's disk: the
        database and a local model are named relative to the gallery's root folder."""
        self.check_available()
        def read():
            return self.gallery.stats(), self.gallery.store.common_root()

        s, root = self._run(read)
        return stats_doc(s, root, self.limits)
