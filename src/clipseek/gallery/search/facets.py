"""The filter columns of every row of a gallery as arrays in memory: a Filter becomes the ids of the
rows that pass it in 1-7 ms at a million rows, where a WHERE clause over the covering index
`files_facets` took SQLite 0.3-1.2 s (handing each id to Python). They are read once through that index
(no vector; ~2 s per million rows) and kept by the Gallery until the database changes. Per row: id and
capture time (int64; taken_ns unless NULL or PENDING, else mtime_ns), width, height and folder number
(int32), suffix number (uint8 while there are few), kind (uint8) and duration (float32, NaN for a photo):
34 bytes, no string per row.

The semantics are those of SQL over the stored path (`core.paths.db_value`: TEXT for a UTF-8
name, else a BLOB). Folders: a path lies under a folder 'a/b/' when its own folder (up to its last
separator) begins with 'a/b/'; folders are numbered in SQLite's order (TEXT before BLOB, each by its
bytes), so the bounds `core.paths.prefix_ranges` gives are ranges of folder numbers, found by bisection
(the TEXT range only for a folder that is UTF-8 itself). Extensions (`Filter.exts`, as `Filter.parse`
gives them): the path ends with one, ASCII case ignored, as `path LIKE '%.jpg'` says, BLOB paths too
(SQLite built with LIKE_DOESNT_MATCH_BLOBS never matched those): the suffix from the name's last dot.
"""

from __future__ import annotations

import os
from bisect import bisect_left
from itertools import islice
from typing import Iterable

import numpy as np

from clipseek.core.paths import prefix_ranges
from clipseek.gallery.query import Filter

_CHUNK = 16_384
_DTYPES = (np.int64, np.int64, np.int32, np.int32, np.int32, np.int32)  # id, time, w, h, folder, suffix
_SHAPES = {"landscape": lambda w, h: w > h, "portrait": lambda w, h: h > w, "square": lambda w, h: w == h}


class Facets:
    """The filter columns of every row, in id order. `Facets.load(store)`, then `allowed(filter)`."""

    def __init__(self, ids: np.ndarray, when_ns: np.ndarray, width: np.ndarray, height: np.ndarray,
                 folder: np.ndarray, dirs: tuple[list[bytes], list[bytes]], ext: np.ndarray,
                 exts: list[bytes], kind: np.ndarray | None = None, duration: np.ndarray | None = None):
        self.ids, self.when_ns, self.width, self.height = ids, when_ns, width, height
        self.folder, self.dirs = folder, dirs  # dirs: (TEXT, BLOB) folders, each sorted, with the separator
        self.ext, self.exts = ext, exts        # exts: the suffixes, ASCII lower case, as bytes
        self.kind = np.zeros(len(ids), np.uint8) if kind is None else kind  # 0 photo, 1 video
        self.duration = np.full(len(ids), np.nan, np.float32) if duration is None else duration  # NaN: photo

    @classmethod
    def load(cls, store) -> "Facets":
        """Read `store.facet_rows()`: (id, path as stored, width, height, capture time ns)."""
        return cls.from_rows(store.facet_rows())

    @classmethod
    def from_rows(cls, rows: Iterable[tuple]) -> "Facets":
        dirs: tuple[dict, dict] = ({}, {})  # TEXT folder (str), BLOB folder (bytes) -> number as met
        exts: dict = {}                     # the name's suffix from its last dot, as stored -> number
        cols: list[list[np.ndarray]] = [[], [], [], [], [], []]
        rows = iter(rows)
        media: list[list[np.ndarray]] = [[], []]  # kind, duration (NaN: none)
        while chunk := list(islice(rows, _CHUNK)):
            ids, paths, width, height, when, *more = zip(*chunk)
            folder, ext = _split_paths(paths, dirs, exts)
            for col, values, dtype in zip(cols, (ids, when, width, height, folder, ext), _DTYPES):
                col.append(np.array(values, dtype))
            kind, duration = more if more else ((0,) * len(ids), (None,) * len(ids))
            media[0].append(np.array(kind, np.uint8))
            media[1].append(np.array([np.nan if d is None else d for d in duration], np.float32))
        ids = _column(cols[0], np.int64)
        order = np.argsort(ids, kind="stable")  # the covering index is read in path order
        ids = ids[order]
        when, width, height, folder, ext = (_column(c, t)[order] for c, t in zip(cols[1:], _DTYPES[1:]))
        kind, duration = _column(media[0], np.uint8)[order], _column(media[1], np.float32)[order]
        sorted_dirs, folder = _number_folders(dirs, folder)
        suffixes = [os.fsencode(s).lower() for s in exts]  # LIKE ignores ASCII case only; bytes.lower too
        ext = ext.astype(np.min_scalar_type(max(len(suffixes) - 1, 0)))
        return cls(ids, when, width, height, folder, sorted_dirs, ext, suffixes, kind, duration)

    def __len__(self) -> int:
        return len(self.ids)

    def nbytes(self) -> int:
        """Memory held by the per-row arrays (the folder and suffix tables aside)."""
        return sum(a.nbytes for a in (self.ids, self.when_ns, self.width, self.height, self.folder, self.ext,
                                      self.kind, self.duration))

    def mask(self, f: Filter) -> np.ndarray:
        """Which rows pass `f` (a boolean per row, id order)."""
        keep = np.ones(len(self.ids), bool)
        if f.folders:
            table = self._folder_table(f.folders)
            edges = np.flatnonzero(np.diff(table, prepend=False))  # where runs of True begin and end
            if len(edges) == 2:  # one run (one folder given, or neighbours): cheaper than a look-up per row
                keep &= (self.folder >= edges[0]) & (self.folder < edges[1])
            else:
                keep &= table[self.folder]
        if f.exts:
            want = tuple(os.fsencode(e).lower() for e in f.exts)
            keep &= np.array([s.endswith(want) for s in self.exts] or [False], bool)[self.ext]
        if f.after_ns is not None:
            keep &= self.when_ns >= f.after_ns
        if f.before_ns is not None:
            keep &= self.when_ns < f.before_ns
        if f.orientation:
            keep &= _SHAPES[f.orientation](self.width, self.height)
        if f.min_width or f.min_height:
            keep &= (self.width >= f.min_width) & (self.height >= f.min_height)
        if f.media:
            keep &= self.kind == (1 if f.media == "video" else 0)
        if f.min_duration_s is not None:  # a duration filter passes videos only (NaN compares False)
            keep &= self.duration >= f.min_duration_s
        if f.max_duration_s is not None:
            keep &= self.duration <= f.max_duration_s
        return keep

    def allowed(self, f: Filter) -> np.ndarray:
        """Ids (ascending int64) of the rows that pass `f`."""
        return self.ids[self.mask(f)]

    def _folder_table(self, folders: Iterable[str]) -> np.ndarray:
        """Per folder number: does the folder lie under one of `folders` (each with or without a
        trailing separator)? The same bounds as `core.paths.prefix_ranges`, over the sorted folders."""
        text, blob = self.dirs
        table = np.zeros(len(text) + len(blob) + 1, bool)  # one more: a bool gather needs a table
        for folder in folders:
            text_lo, text_hi, lo, hi = prefix_ranges(folder)  # 'a/b/' <= p < 'a/b0': p begins with 'a/b/'
            if isinstance(text_lo, str):  # else the folder is not UTF-8: no TEXT path lies under it
                table[bisect_left(text, text_lo.encode()):bisect_left(text, text_hi.encode())] = True
            table[len(text) + bisect_left(blob, lo):len(text) + bisect_left(blob, hi)] = True
        return table


def _column(chunks: list[np.ndarray], dtype) -> np.ndarray:
    """The chunks as one array; the chunks are let go (one column at a time is copied)."""
    out = np.concatenate(chunks) if chunks else np.zeros(0, dtype)
    chunks.clear()
    return out


def _split_paths(paths, dirs: tuple[dict, dict], exts: dict) -> tuple[list[int], list[int]]:
    """Each path's folder number (TEXT folders 0, 1, ... and BLOB ones -1, -2, ... as met) and suffix
    number, numbering what is new in `dirs` and `exts`."""
    sep, bsep = os.sep, os.fsencode(os.sep)
    text_dirs, blob_dirs = dirs
    folder, ext = [], []
    for p in paths:
        if isinstance(p, str):
            i = p.rfind(sep) + 1
            folder.append(text_dirs.setdefault(p[:i], len(text_dirs)))
            dot = p.rfind(".", i)
        else:
            p = bytes(p)
            i = p.rfind(bsep) + 1
            folder.append(~blob_dirs.setdefault(p[:i], len(blob_dirs)))
            dot = p.rfind(b".", i)
        ext.append(exts.setdefault(p[dot:] if dot >= 0 else b"", len(exts)))
    return folder, ext


def _number_folders(dirs: tuple[dict, dict], folder: np.ndarray) -> tuple[tuple[list, list], np.ndarray]:
    """Renumber the folders met (TEXT ones >= 0, BLOB ones -1, -2, ... as met) in SQLite's order: TEXT
    folders by their UTF-8 bytes, then BLOB folders by theirs."""
    text = sorted((d.encode(), n) for d, n in dirs[0].items())
    blob = sorted((bytes(d), n) for d, n in dirs[1].items())
    rank = np.empty(len(text) + len(blob), np.int32)
    rank[[n for _, n in text]] = np.arange(len(text))
    rank[[len(text) + n for _, n in blob]] = np.arange(len(text), len(text) + len(blob))
    index = np.where(folder >= 0, folder, len(text) - 1 - folder).astype(np.intp)
    return ([d for d, _ in text], [d for d, _ in blob]), rank[index]
