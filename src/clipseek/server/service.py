"""What `clipseek serve` does, as a library: search, classify, images and thumbnails of one gallery,
with every request limit checked here, so the HTTP layer (server/) only maps requests to calls.

Threading: SQLite connections belong to the thread that opened them, the fast tokenizer must not be
used by two threads at once, and two forward passes on a 2-core CPU only slow each other down. So
all model and index work runs on one worker thread owned by the service; callers (any thread) block
on it. Looking up an image by id uses a small read-only connection per calling thread, so serving
thumbnails never waits behind a model forward.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Callable, Sequence, TypeVar

from clipseek.core.files import DEFAULT_MAX_PIXELS
from clipseek.core.prompts import (
    BUILTIN_TEMPLATE_SETS,
    DEFAULT_TEMPLATE,
    builtin_templates,
    check_template,
    clean_labels,
    split_labels,
)
from clipseek.core.scores import scoring, top_k
from clipseek.errors import ClipseekError, ImageError, UsageError
from clipseek.gallery.facade import Gallery, SearchResult
from clipseek.gallery.query import Filter, Term, parse_term
from clipseek.gallery.store import Store
from clipseek.gallery.thumbs import (
    THUMB_SIZE,
    as_jpeg,
    ensure_thumbnail,
    web_media_type,
)
from clipseek.model.fingerprint import Fingerprint
from clipseek.server.fair import Classifiers

if TYPE_CHECKING:
    from clipseek.model.base import Encoder

T = TypeVar("T")
TEXT_BATCH = 64  # text queries encoded together at most


class NotFound(ClipseekError):
    """No image with that id in the gallery (or its file is gone from disk)."""


@dataclass(frozen=True)
class SearchOptions:
    """What a search asks for besides its query: terms to add and subtract, a filter, relevant-only."""

    add: tuple[Term, ...] = ()
    subtract: tuple[Term, ...] = ()
    where: Filter = Filter()
    relevant: bool = False

    def terms(self, q: str) -> list[Term]:
        return ([Term(1.0, text=q.strip())] if q.strip() else []) + list(self.add) + list(self.subtract)


class TooLarge(UsageError):
    """An upload or an image over the size or pixel limit."""


@dataclass(frozen=True)
class Limits:
    max_upload_bytes: int = 20 * 1024 * 1024
    max_pixels: int = DEFAULT_MAX_PIXELS  # decoded uploads (the CLI's limit): 64 MP x 3 bytes, ~190 MB
    max_k: int = 200
    max_query_chars: int = 500
    max_labels: int = 1000
    max_label_chars: int = 200
    max_templates: int = 100
    max_prompts: int = 20_000           # labels x templates texts to encode for one classify call
    max_dupe_groups: int = 5_000
    max_terms: int = 16                 # add + subtract terms of one search
    max_folders: int = 16               # `in` folders of one search

    def to_dict(self) -> dict:
        return asdict(self)


class GalleryService:
    """One gallery and its model, safe to call from many threads. Close with `.close()`."""

    def __init__(self, gallery: Gallery | str, encoder: Encoder | None = None, *, model: str | None = None,
                 device: str = "auto", limits: Limits = Limits(), thumb_dir: str | None = None,
                 int8_text: bool = False, backend: str = "torch"):
        if isinstance(gallery, Gallery):
            gallery.close()  # reopened below on the worker thread, which owns its SQLite connection
            if encoder is not None:
                gallery = Gallery(gallery.db_path, encoder, approx_threshold=gallery.approx_threshold)
        else:
            gallery = Gallery(gallery, encoder, model=model, device=device, int8_text=int8_text, backend=backend)
        self.gallery, self.limits = gallery, limits
        self.db_path = gallery.db_path
        self.thumb_dir = thumb_dir or self.db_path + ".thumbs"
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="clipseek-model")
        self._local = threading.local()
        self._pending: list[tuple[str, int, SearchOptions, Future]] = []  # text queries waiting for the model
        self._pending_lock, self._draining = threading.Lock(), False
        self.encoder = self._run(self._load)  # the model is loaded once, now; a bad DB fails here
        self._classifiers = Classifiers(self._run, self.encoder.encode_texts)

    def _load(self) -> Encoder:
        self.gallery.store  # noqa: B018 - opens the DB (clear error if missing) before the model
        enc = self.gallery.encoder
        self.gallery.search_vector(enc.encode_texts(["warm up"])[0], 1)  # builds the index now
        return enc

    def _submit_text(self, q: str, k: int, opts: SearchOptions) -> Future:
        """Queue a text query. Queries that arrive while the model is busy are encoded together in
        one batch when it is free (one forward for 16 queries costs far less than 16 forwards)."""
        fut: Future = Future()
        with self._pending_lock:
            self._pending.append((q, k, opts, fut))
            idle = not self._draining
            self._draining = True
        if idle:
            try:
                self._worker.submit(self._drain_texts)
            except RuntimeError:  # closed
                with self._pending_lock:
                    self._pending.remove((q, k, opts, fut))
                    self._draining = False
                raise ClipseekError("the gallery service is closed") from None
        return fut

    def _drain_texts(self) -> None:
        with self._pending_lock:
            batch, self._pending = self._pending[:TEXT_BATCH], self._pending[TEXT_BATCH:]
        try:  # a request given up meanwhile (client gone) has a cancelled future: skip it
            batch = [b for b in batch if b[3].set_running_or_notify_cancel()]
            texts = sorted({t.text for q, _, o, _ in batch for t in o.terms(q) if t.text is not None})
            known = dict(zip(texts, self.gallery.encoder.encode_texts(texts))) if texts else {}
            for q, k, opts, fut in batch:
                try:
                    fut.set_result(self._search(opts.terms(q), k, opts, known, {"query": q}))
                except Exception as e:
                    fut.set_exception(e)
        except Exception as e:  # the batch's forward failed: every query in it gets the error
            for _, _, _, fut in batch:
                if not fut.done():
                    fut.set_exception(e)
        finally:
            with self._pending_lock:
                self._draining = bool(self._pending)
                if self._draining:
                    self._worker.submit(self._drain_texts)

    def _run(self, fn: Callable[..., T], *args) -> T:
        return self._worker.submit(fn, *args).result()

    def close(self) -> None:
        self.stop_watching()
        self._run(self.gallery.close)
        self._worker.shutdown()

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
                          ignore=[self.thumb_dir])
        stop = threading.Event()

        def run():
            try:
                own.append(Gallery(self.db_path, self.encoder))  # this thread owns its connection
                with own[0].writing():  # the gallery's one writer while the server watches
                    watcher.run(stop)
            except Exception as e:  # reported once (BusyError: another writer); serving goes on
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

    def stop_watching(self, timeout: float = 30.0) -> None:
        watching = getattr(self, "_watching", None)
        if watching:
            _, stop, thread = watching
            stop.set()
            thread.join(timeout)
            self._watching = None

    # ---- checks ----------------------------------------------------------------------------------
    def _check_k(self, k: int) -> int:
        if not 1 <= k <= self.limits.max_k:
            raise UsageError(f"k must be between 1 and {self.limits.max_k}, got {k}")
        return k

    def _decode_upload(self, data: bytes, name: str):
        from clipseek.core.images import open_image_bytes

        if len(data) > self.limits.max_upload_bytes:
            raise TooLarge(f"upload too large: over the limit of {self.limits.max_upload_bytes:,} bytes")
        try:
            return open_image_bytes(data, name=name or "upload", max_pixels=self.limits.max_pixels)
        except ImageError as e:
            cls = TooLarge if "too many pixels" in e.reason else UsageError
            raise cls(f"upload {name or ''} is not a usable image: {e.reason}".replace("  ", " ")) from None

    def _check_labels(self, labels: Sequence[str]) -> list[str]:
        lim = self.limits
        items = split_labels(labels)
        if len(items) > lim.max_labels:
            raise UsageError(f"too many labels: {len(items)} (the limit is {lim.max_labels})")
        long = [l for l in items if len(l) > lim.max_label_chars]
        if long:
            raise UsageError(f"label too long: {len(long[0])} characters "
                             f"(the limit is {lim.max_label_chars})")
        return clean_labels(items)

    def _check_templates(self, templates: Sequence[str] | None, n_labels: int) -> list[str]:
        """A built-in set by name, or template strings; never a file on the server."""
        lim = self.limits
        items = [t for t in (templates or []) if t.strip()]
        if len(items) == 1 and items[0].strip() in BUILTIN_TEMPLATE_SETS:
            items = builtin_templates(items[0].strip())
        else:
            if len(items) > lim.max_templates:
                raise UsageError(f"too many templates: {len(items)} (the limit is {lim.max_templates})")
            if any(len(t) > lim.max_query_chars for t in items):
                raise UsageError(f"template too long (the limit is {lim.max_query_chars} characters)")
            items = [check_template(t.strip()) for t in items] or [DEFAULT_TEMPLATE]
        if n_labels * len(items) > lim.max_prompts:
            raise UsageError(f"{n_labels} labels x {len(items)} templates = {n_labels * len(items):,} "
                             f"prompts; the limit is {lim.max_prompts:,}")
        return items

    # ---- search and classify ---------------------------------------------------------------------
    def search_text(self, q: str, k: int = 20, opts: SearchOptions | None = None) -> dict:
        return self.submit_search_text(q, k, opts).result()

    def submit_search_text(self, q: str, k: int = 20, opts: SearchOptions | None = None) -> Future:
        """Check the query now (raises UsageError); a Future of the result dict (for asyncio callers
        to await with asyncio.wrap_future, so no thread waits on the model for them)."""
        opts = opts or SearchOptions()
        if len(q) > self.limits.max_query_chars:
            raise UsageError(f"query too long: {len(q)} characters (the limit is "
                             f"{self.limits.max_query_chars})")
        if not q.strip() and not opts.add:
            raise UsageError("empty query: give some words to search for (or a term to add)")
        return self._submit_text(q, self._check_k(k), opts)

    def options(self, add: Sequence[str] = (), subtract: Sequence[str] = (), folders: Sequence[str] = (),
                after: str | None = None, before: str | None = None, orientation: str | None = None,
                min_size: str | None = None, ext: str | None = None, relevant: bool = False) -> SearchOptions:
        """Search options from request parameters, within the limits; raises UsageError. Terms are
        text or `image:ID`, never a path on the server; folders are relative to the gallery's root."""
        lim = self.limits
        add, subtract, folders = list(add or ()), list(subtract or ()), list(folders or ())
        if len(add) + len(subtract) > lim.max_terms:
            raise UsageError(f"too many add/subtract terms: {len(add) + len(subtract)} (the limit is "
                             f"{lim.max_terms})")
        if len(folders) > lim.max_folders:
            raise UsageError(f"too many folders: {len(folders)} (the limit is {lim.max_folders})")
        if any(len(x) > lim.max_query_chars for x in add + subtract + folders + [ext or "", min_size or ""]):
            raise UsageError(f"parameter too long (the limit is {lim.max_query_chars} characters)")
        root = self._thread_store().common_root() or os.sep
        return SearchOptions(tuple(parse_term(a, 1.0, allow_paths=False) for a in add),
                             tuple(parse_term(a, -1.0, allow_paths=False) for a in subtract),
                             Filter.parse(folders, after, before, orientation, min_size, ext, root=root), relevant)

    def search_image(self, data: bytes, k: int = 20, name: str = "", opts: SearchOptions | None = None) -> dict:
        self._check_k(k)
        img = self._decode_upload(data, name)  # decoded here, not on the model thread
        return self._run(self._search_image, img, k, opts or SearchOptions())

    def _search_image(self, img, k: int, opts: SearchOptions) -> dict:
        first = self.gallery.encoder.encode_images([img])[0]
        return self._search(opts.terms(""), k, opts, {}, {}, first)

    def _search(self, terms: list[Term], k: int, opts: SearchOptions, known: dict, doc: dict,
                first=None) -> dict:
        """On the model thread: the query's vector, the search within the filter, the response."""
        g = self.gallery
        results = g.search_vector(g.query_vector(terms, known, first), k, where=opts.where,
                                  relevant=opts.relevant)
        doc = {**doc, "k": k, "add": [t.describe() for t in opts.add],
               "subtract": [t.describe() for t in opts.subtract],
               "filter": opts.where.describe() if opts.where else None, "relevant": opts.relevant,
               "results": self._relative(results)}
        if not results and opts.where and g.count(opts.where) == 0:
            doc["message"] = f"no image passes the filter ({opts.where.describe()})"
        return doc

    def _relative(self, results: list[SearchResult]) -> list[dict]:
        root = self.gallery.store.common_root() or os.sep
        return [{**r.to_dict(), "path": os.path.relpath(r.path, root)} for r in results]

    def classify(self, data: bytes, labels: Sequence[str], templates: Sequence[str] | None = None,
                 name: str = "") -> dict:
        labels = self._check_labels(labels)
        templates = self._check_templates(templates, len(labels))
        img = self._decode_upload(data, name)
        weights = self._classifiers.get(labels, templates)  # in slices: searches run in between
        probs = self._run(self._classify, img, weights)
        ranked = top_k(probs[None, :], labels, len(labels))[0]
        return {"labels": labels, "templates": len(templates), "scoring": scoring(self.encoder.logit_bias),
                "predictions": [{"label": l, "score": round(p, 6)} for l, p in ranked]}

    def _classify(self, img, weights):
        from clipseek.core.scores import probabilities

        enc = self.encoder
        return probabilities(enc.encode_images([img]), weights, enc.logit_scale, enc.logit_bias)[0]

    # ---- images by id ----------------------------------------------------------------------------
    def _thread_store(self) -> Store:
        """A connection of the calling thread's own (never the model thread's)."""
        store = getattr(self._local, "store", None)
        if store is None:
            store = self._local.store = Store.open(self.db_path, create=False)
        return store

    def _row(self, image_id: int):
        """The catalogue row of an indexed image whose file is still on disk, else NotFound."""
        store = self._thread_store()
        row = store.get_rows([image_id]).get(image_id) if 0 < image_id < 2 ** 63 else None
        if row is None:
            raise NotFound(f"no image with id {image_id}")
        try:
            st = os.stat(row.path)
        except OSError:
            st = None
        if st is None or not os.path.isfile(row.path):
            raise NotFound(f"image {image_id} is in the index but its file is gone; re-run clipseek index")
        if (st.st_size, st.st_mtime_ns) != (row.size, row.mtime_ns):  # serve only what was indexed
            raise NotFound(f"image {image_id} changed on disk since it was indexed; re-run clipseek index")
        return row

    def image(self, image_id: int) -> tuple[str | None, bytes | None, str]:
        """(path, None, media type) for a browser-ready file, else (None, JPEG bytes, 'image/jpeg')."""
        row = self._row(image_id)
        media = web_media_type(row.path)
        if media:
            return row.path, None, media
        try:
            return None, as_jpeg(row.path), "image/jpeg"
        except ImageError as e:
            raise NotFound(f"image {image_id} cannot be read now: {e.reason}") from None

    def thumbnail(self, image_id: int, size: int = THUMB_SIZE) -> str:
        row = self._row(image_id)
        try:
            return ensure_thumbnail(row.path, self.thumb_dir, row.hash, size)
        except ImageError as e:
            raise NotFound(f"image {image_id} cannot be read now: {e.reason}") from None

    # ---- duplicates ------------------------------------------------------------------------------
    def dupes(self, similar: bool = False, threshold: float = 0.95, limit: int = 500) -> dict:
        """Duplicate groups (gallery.dupes) with paths relative to the gallery's root; at most `limit`
        groups, the largest first. Computed on the model thread, which owns the gallery's database."""
        from clipseek.gallery.dupes import check_settings

        check_settings(threshold, 0)
        if not 1 <= limit <= self.limits.max_dupe_groups:
            raise UsageError(f"limit must be between 1 and {self.limits.max_dupe_groups}, got {limit}")
        return self._run(self._dupes, similar, threshold, limit)

    def _dupes(self, similar: bool, threshold: float, limit: int) -> dict:
        from clipseek.gallery.dupes import find_duplicates

        store = self.gallery.store
        groups = find_duplicates(store, similar=similar, threshold=threshold)
        root = store.common_root() or os.sep
        rel = (lambda p: os.path.relpath(p, root) if p else p)
        shown = sorted(groups, key=lambda g: -len(g.members))[:limit]
        return {"similar": similar, "threshold": threshold, "total_groups": len(groups),
                "extras": sum(len(g.extras) for g in groups),
                "groups": [{"keep": rel(g.keep.path), "members": [
                    {**m.to_dict(), "path": rel(m.path), "link": rel(m.link)} for m in g.members]}
                    for g in shown]}

    def stats(self) -> dict:
        """The gallery's counts, model and limits. No absolute path of the server's disk: the
        database and a local model are named relative to the gallery's root folder."""
        def read():
            return self.gallery.stats(), self.gallery.store.common_root()

        s, root = self._run(read)
        s = {**s, "db": _relative_to(s["db"], root)}
        if "model" in s:
            s["model"] = _relative_to(s["model"], root)
        if s.get("fingerprint"):
            fp = Fingerprint.parse(s["fingerprint"])
            s["fingerprint"] = str(replace(fp, name=_relative_to(fp.name, root)))
        return {**s, "default_template": DEFAULT_TEMPLATE, "limits": self.limits.to_dict()}


def _relative_to(path: str, root: str | None) -> str:
    """An absolute `path` relative to the gallery root (just its name when the gallery is empty)."""
    if not os.path.isabs(path):
        return path  # a hub id
    return os.path.relpath(path, root) if root else os.path.basename(path)
