"""The gallery in browse order (newest capture first), paged by a cursor, and its folder and month
counts: what the web page shows before any query. Built once per `Facets` (the filter columns held in
memory; an argsort of the capture times: ~0.1 s at a million rows) and kept on it, so a page is a
bisection plus a gather of at most a few windows of the order: well under 10 ms at a million rows
(benchmarks/browse_bench.py), a filter included (its mask costs 1-7 ms, `Facets.mask`).

The order: capture time descending, then id descending (a newer row of the same instant first). A
cursor names the last row shown as "TIME_NS.ID"; the next page starts after it, so rows added
meanwhile never shift a page (an older one's position is found again by bisection).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from clipseek.errors import UsageError

_WINDOW = 4096  # rows of the order gathered at a time while looking for rows that pass a filter


@dataclass(frozen=True)
class Page:
    ids: np.ndarray       # int64, browse order
    when_ns: np.ndarray   # their capture times
    total: int            # rows that pass the filter, over all pages
    cursor: str | None    # where the next page starts; None: this was the last


class Timeline:
    """The rows of one `Facets`, newest first."""

    def __init__(self, facets):
        self.facets = facets
        self.order = np.lexsort((-facets.ids, -facets.when_ns))  # the last key sorts first
        self.neg_when = -facets.when_ns[self.order]             # ascending
        self.neg_ids = -facets.ids[self.order]

    def start(self, cursor: str | None) -> int:
        """The position in the order just after the row the cursor names (0 without one)."""
        if not cursor:
            return 0
        when, rid = parse_cursor(cursor)
        lo = int(np.searchsorted(self.neg_when, -when, "left"))
        hi = int(np.searchsorted(self.neg_when, -when, "right"))
        return lo + int(np.searchsorted(self.neg_ids[lo:hi], -rid, "right"))

    def page(self, mask: np.ndarray | None, cursor: str | None, limit: int) -> Page:
        """Up to `limit` rows passing `mask` (a boolean per row in id order; None: all) after `cursor`."""
        pos, n = self.start(cursor), len(self.order)
        if mask is None:
            picked, total = self.order[pos:pos + limit], n
            end = pos + len(picked)
        else:
            total, found, end, window = int(mask.sum()), [], pos, _WINDOW
            got = 0
            while end < n and got < limit:
                rows = self.order[end:end + window]
                hits = np.flatnonzero(mask[rows])[:limit - got]
                found.append(rows[hits])
                got += len(hits)
                end = end + int(hits[-1]) + 1 if got >= limit else end + len(rows)
                window *= 2
            picked = np.concatenate(found) if found else np.zeros(0, np.int64)
        ids = self.facets.ids[picked]
        when = self.facets.when_ns[picked]
        more = len(ids) == limit and end < n  # the next page may turn out empty under a filter
        return Page(ids, when, total, f"{int(when[-1])}.{int(ids[-1])}" if more and len(ids) else None)

    def months(self, mask: np.ndarray | None) -> list[tuple[str, int]]:
        """(YYYY-MM, rows) of the rows passing `mask`, newest month first (UTC)."""
        when = self.facets.when_ns if mask is None else self.facets.when_ns[mask]
        months = when.astype("datetime64[ns]").astype("datetime64[M]")
        values, counts = np.unique(months, return_counts=True)
        return [(str(v), int(c)) for v, c in zip(values[::-1], counts[::-1])]

    def folders(self, mask: np.ndarray | None) -> list[tuple[str | bytes, int]]:
        """(folder as stored, with its separator: str, or bytes for a name that is not UTF-8, rows
        directly in it) of every folder holding a row that passes `mask`, in SQLite's order."""
        f = self.facets
        text, blob = f.dirs
        counts = np.bincount(f.folder if mask is None else f.folder[mask], minlength=len(text) + len(blob))
        names = [d.decode() for d in text] + list(blob)
        return [(names[i], int(c)) for i, c in enumerate(counts) if c]


def parse_cursor(cursor: str) -> tuple[int, int]:
    try:
        when, rid = cursor.split(".")
        out = int(when), int(rid)
    except ValueError:
        raise UsageError(f"not a cursor from this server: {cursor[:40]!r}") from None
    if not (-2 ** 63 <= out[0] < 2 ** 63 and 0 < out[1] < 2 ** 63):
        raise UsageError(f"not a cursor from this server: {cursor[:40]!r}")
    return out


def timeline_of(facets) -> Timeline:
    """The Timeline of `facets`, made once and kept on it."""
    tl = getattr(facets, "_timeline", None)
    if tl is None:
        tl = facets._timeline = Timeline(facets)
    return tl


def folder_text(folder: str | bytes) -> str:
    """A stored folder as text (a name that is not UTF-8 keeps its bytes as surrogate escapes)."""
    return folder if isinstance(folder, str) else os.fsdecode(folder)
