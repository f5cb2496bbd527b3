"""Everything index time takes from a file's pixels, from one read and one decode: the model input,
the perceptual hash and the two thumbnails.

The read stage of `gallery.sync` calls `decode_derived` in its worker task with the bytes it read
and hashed. The image is decoded once, at the size the largest output needs: a JPEG is decoded at
reduced scale (draft mode) only as far as keeps the short side >= the model input and, when
thumbnails are made, the long side >= the viewer size (`thumbs.VIEW_SIZE`); the model input, the
thumbnails (view size from it, grid size from the view) and the pHash (`imagehash.phash` of the
grid-size image: the same 32x32 grey picture `dupes.phash` hashes) are all derived from that one
decoded image, each from the next larger one (the model input from the view size when that is
enough). The pHash goes into the row in the same transaction (`Store.insert_files`); the thumbnails
into the gallery's thumbnail store, content-addressed (`thumbs.thumbnail_path`), before the row is
committed.

A database made by an older release lacks pHashes and thumbnails: `fill_derived` (the end of every
`index` run) reads and decodes, once each, the rows that miss either, checking each file is still
the content its row names, with a progress of its own. Which rows have their thumbnails is kept as
the highest row id checked (meta `thumbs_checked`), so an unchanged re-index checks none.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from clipseek.core.images import DEFAULT_LIMITS, ImageLimits, full_size, open_image
from clipseek.embed.stages import Blob, batched, ordered_map, read_blob
from clipseek.errors import ImageError, Skipped
from clipseek.gallery.dupes.phash import DRAFT_SIZE
from clipseek.gallery.thumbs import (
    GRID_SIZE,
    THUMB_SIZES,
    VIEW_SIZE,
    has_thumbnail,
    keep_thumbnails,
    shrink,
    thumbnail_places,
    thumbnail_set,
)

if TYPE_CHECKING:
    from clipseek.model.base import Encoder

THUMBS_CHECKED = "thumbs_checked"  # meta: every row up to this id has its thumbnails (or cannot)
Phase = Callable[[str, int | None], Callable[[int], None] | None]  # on_phase(label, total) -> advance(n)


@dataclass(frozen=True)
class Derive:
    """What to derive besides the model input: the pHash, and thumbnails into `thumb_dir` (None: none)."""

    thumb_dir: str | None = None
    phash: bool = True


def _phash(grid) -> str:
    """The pHash of the grid-size image (`dupes.phash.phash_of`: '' for a nearly uniform picture; its
    32x32 grey input is the same picture, 200x cheaper than from a 12-MP decode)."""
    from clipseek.gallery.dupes.phash import phash_of

    return phash_of(grid)


def _sized(img, thumbs: bool) -> dict:
    """{size: image}: both thumbnail sizes (each from the next larger), or the grid size alone."""
    return thumbnail_set(img) if thumbs else {GRID_SIZE: shrink(img, GRID_SIZE)}


def _decode(blob: Blob, limits: ImageLimits, short: int, thumbs: bool):
    return open_image(blob.path, max_pixels=limits.max_pixels, data=blob.data, draft_size=short,
                      draft_long=VIEW_SIZE if thumbs else None)


def decode_derived(encoder: Encoder, blob: Blob, limits: ImageLimits = DEFAULT_LIMITS,
                   derive: Derive = Derive()) -> tuple[tuple | Skipped, str | None]:
    """Decode stage of the indexer: ((pixels, (w, h)) or a Skipped record, the pHash or None)."""
    need = encoder.preprocess_cfg.input_size
    thumb_dir = derive.thumb_dir
    thumbs = thumb_dir is not None
    try:
        img = _decode(blob, limits, max(need, DRAFT_SIZE), thumbs)
        sized = _sized(img, thumbs)
        view = sized.get(VIEW_SIZE, img)  # the model input from the smaller image when it is enough
        decoded = encoder.preprocess(view if min(view.size) >= need else img), full_size(img)
    except ImageError as e:
        return Skipped(e.path, e.reason), None
    except Exception as e:
        return Skipped(blob.path, f"cannot preprocess ({type(e).__name__}: {e})"), None
    phash = _phash(sized[GRID_SIZE]) if derive.phash else None
    if thumb_dir is not None:
        try:
            keep_thumbnails(sized, thumb_dir, blob.hash)
        except Exception:  # a thumbnail that cannot be made: the server makes it when asked
            pass
    return decoded, phash


def _missing_thumbs(store, thumb_dir: str, after_id: int) -> dict[int, tuple[str, str]]:
    """{id: (path, hash)} of the rows after `after_id` whose thumbnails are not all in the store."""
    return {i: (p, h) for i, p, h in store.hashes_after(after_id)
            if not all(has_thumbnail(thumbnail_places(thumb_dir, h, s)) for s in THUMB_SIZES.values())}


def _fill_one(item, thumb_dir: str | None, limits: ImageLimits) -> str | None:
    """Read and decode one row's file once: its pHash ('' when unreadable or no longer the content
    of its row) when asked, its thumbnails when `thumb_dir`."""
    (_, path, h), want_phash, want_thumbs = item
    blob = read_blob(path, limits)
    if isinstance(blob, Skipped) or blob.hash != h:
        return ""
    try:
        sized = _sized(_decode(blob, limits, DRAFT_SIZE, want_thumbs), want_thumbs)
        if want_thumbs and thumb_dir is not None:
            keep_thumbnails(sized, thumb_dir, h)
        return _phash(sized[GRID_SIZE]) if want_phash else None
    except (ImageError, OSError, ValueError):
        return ""


def fill_derived(store, thumb_dir: str | None, workers: int, limits: ImageLimits = DEFAULT_LIMITS,
                 on_phase: Phase | None = None, window: int = 256) -> tuple[int, int]:
    """Compute the pHashes and make the thumbnails (into `thumb_dir`; None: none) that rows lack,
    reading and decoding each such file once; pHashes committed `window` rows at a time.
    Returns (pHashes computed, rows given thumbnails)."""
    mark = store.meta(THUMBS_CHECKED)
    checked = int(mark) if mark and mark.isdigit() else 0
    top = store.max_id()
    thumbs = _missing_thumbs(store, thumb_dir, checked) if thumb_dir is not None else {}
    rows = {i: (i, p, h) for i, p, h in store.without_phash()}
    phashes = set(rows)
    rows.update((i, (i, p, h)) for i, (p, h) in thumbs.items() if i not in rows)
    todo = [(rows[i], i in phashes, i in thumbs) for i in sorted(rows)]
    advance = on_phase(_label(len(phashes), len(thumbs)), len(todo)) if todo and on_phase else None
    done = ordered_map(lambda item: _fill_one(item, thumb_dir, limits), todo, workers, ahead=2 * workers)
    for part in batched(done, window):
        got = [(item[0][0], ph) for item, ph in part if item[1]]
        if got:
            with store.transaction():
                store.set_phashes(got)
        if advance:
            advance(len(part))
    if thumb_dir is not None and str(top) != mark:
        store.set_meta({THUMBS_CHECKED: str(top)})
    return len(phashes), len(thumbs)


def _label(phashes: int, thumbs: int) -> str:
    if phashes and thumbs:
        return "computing perceptual hashes and making thumbnails"
    return "computing perceptual hashes" if phashes else "making thumbnails"
