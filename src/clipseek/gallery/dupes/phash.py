"""Perceptual hashes of the gallery's images, and the pairs of hashes a few bits apart.

A pHash (`imagehash.phash`: the signs of the lowest 8x8 DCT frequencies of a 32x32 grey thumbnail) stays
the same, or within a few bits, when a picture is re-encoded, resized or lightly cropped, and differs
in about half its 64 bits between unrelated pictures. It is computed once per file content and kept in
the store (`files.phash`, 16 hex digits; '' when the file could not be read or is nearly uniform), so an index run
fills it
for new files and an old database gets it on its next run, without re-embedding anything.

A picture that is nearly uniform as the model sees it (a translucent PNG composited on white, a blank
frame) carries no pHash evidence: its 64 bits are the signs of rounding noise, and two such pictures
"match" at any distance. `phash_of` marks it not comparable (''), so a flat hash never joins another.

Pairs within a Hamming distance come from a FAISS binary index range search (a popcount scan in C,
~3 s for 100k hashes on 2 cores), never from a Python loop over pairs.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np

from clipseek.core.images import DEFAULT_MAX_PIXELS, open_image
from clipseek.errors import ImageError

PHASH_BITS = 64
DRAFT_SIZE = 128    # JPEGs are decoded at reduced scale (>= 128 px): the hash only sees 32x32
BATCH = 256         # hashes written per transaction


FLAT_STD = 3.0      # grey levels (of 255): a 32x32 thumbnail flatter than this has no pHash evidence


def phash_of(img) -> str:
    """The 64-bit pHash of a PIL image as 16 hex digits, or '' (not comparable) when the picture is
    nearly uniform: the standard deviation of its 32x32 grey thumbnail (the one the hash is taken from)
    is under FLAT_STD grey levels."""
    import imagehash
    from PIL import Image

    grey = np.asarray(img.convert("L").resize((32, 32), Image.Resampling.LANCZOS), np.float64)
    if float(grey.std()) < FLAT_STD:
        return ""
    return str(imagehash.phash(img))


def phash_hex(path: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> str:
    """The pHash of the image file at `path` (`phash_of`: '' when nearly uniform); raises ImageError."""
    return phash_of(open_image(path, max_pixels=max_pixels, draft_size=DRAFT_SIZE))


def _phash_or_blank(path: str) -> str:
    try:
        return phash_hex(path)
    except (ImageError, OSError, ValueError):
        return ""  # unreadable now: recorded as '' (a changed file gets a new row, hashed again)


def fill_phashes(store, workers: int | None = None,
                 on_progress: Callable[[int], None] | None = None) -> int:
    """Compute the pHash of every row that lacks one; one transaction per batch. Returns how many."""
    workers = workers or min(4, os.cpu_count() or 1)
    done, last = 0, 0
    with ThreadPoolExecutor(max_workers=workers) as pool:
        while rows := store.rows_without_phash(BATCH, after_id=last):
            hashes = list(pool.map(_phash_or_blank, [p for _, p in rows]))
            with store.transaction():
                store.set_phashes([(i, h) for (i, _), h in zip(rows, hashes)])
            last = rows[-1][0]
            done += len(rows)
            if on_progress:
                on_progress(len(rows))
    return done


def all_phashes(store, fill: bool = True, workers: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(ids, uint64 pHashes) of every row that has one, in id order. `fill` first computes the missing
    ones: stored (`fill_phashes`), or, for a store opened read-only or on a full disk, kept for this
    call only."""
    from clipseek.gallery.dbfile import StoreError

    in_memory = fill and store.readonly
    if fill and not store.readonly:
        try:
            fill_phashes(store, workers)
        except StoreError:  # cannot be written (a full disk): the rest for this call only
            in_memory = True
    ids, codes = store.phashes()
    if not in_memory:
        return ids, codes
    extra: list[tuple[int, int]] = []
    last = 0
    with ThreadPoolExecutor(max_workers=workers or min(4, os.cpu_count() or 1)) as pool:
        while rows := store.rows_without_phash(BATCH, after_id=last):
            hashes = pool.map(_phash_or_blank, [p for _, p in rows])
            extra += [(i, int(h, 16)) for (i, _), h in zip(rows, hashes) if h]
            last = rows[-1][0]
    if not extra:
        return ids, codes
    ids = np.concatenate([ids, np.array([i for i, _ in extra], np.int64)])
    codes = np.concatenate([codes, np.array([c for _, c in extra], np.uint64)])
    order = np.argsort(ids, kind="stable")
    return ids[order], codes[order]


def hamming(a: int, b: int) -> int:
    return bin(int(a) ^ int(b)).count("1")


def hamming_pairs(codes: np.ndarray, max_distance: int, chunk: int = 20_000
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every pair (i < j) of `codes` (uint64) within `max_distance` bits: (i, j, distance) arrays."""
    import faiss

    n = len(codes)
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int32))
    if n < 2:
        return empty
    as_bytes = np.ascontiguousarray(codes.astype(">u8")).view(np.uint8).reshape(n, 8)
    index = faiss.IndexBinaryFlat(PHASH_BITS)
    index.add(as_bytes)
    out_i, out_j, out_d = [], [], []
    for start in range(0, n, chunk):
        q = as_bytes[start:start + chunk]
        lims, dist, ids = index.range_search(q, max_distance + 1)  # strictly below the radius
        rows = np.repeat(np.arange(start, start + len(q), dtype=np.int64), np.diff(lims).astype(np.int64))
        keep = ids > rows
        out_i.append(rows[keep])
        out_j.append(ids[keep].astype(np.int64))
        out_d.append(dist[keep].astype(np.int32))
    if not out_i:
        return empty
    return np.concatenate(out_i), np.concatenate(out_j), np.concatenate(out_d)
