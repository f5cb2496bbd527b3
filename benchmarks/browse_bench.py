"""Browsing a big gallery without a query (`GET /api/browse`, gallery.search.browse): time per page.

A synthetic gallery of `--n` rows (default 1,000,000) in 2,000 folders, capture times spread over
20 years, goes through `Facets.from_rows` (the filter columns the Gallery holds in memory); then
pages of `--limit` rows are walked with their cursors: unfiltered from the newest, from a cursor deep
in the order, inside one folder, and inside one month. Each page also fetches its rows' details by id
from an SQLite table shaped like the catalogue's (`Store.get_rows`' query). Reported: the one-off
cost of the order and p50/p95 per page.

    python benchmarks/browse_bench.py              # 1M rows, ~20 s on 2 cores
    python benchmarks/browse_bench.py --n 100000
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import tempfile
import time

import numpy as np

from _common import Timer  # noqa: F401 - also puts src/ on the path
from clipseek.gallery.query import Filter
from clipseek.gallery.search.browse import timeline_of
from clipseek.gallery.search.facets import Facets

YEAR_NS = 365 * 86_400 * 10 ** 9
START_NS = 1_420_070_400 * 10 ** 9  # 2015-01-01


def rows(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    folder = rng.integers(0, 2000, n)
    when = START_NS + rng.integers(0, 20 * YEAR_NS, n)
    for i in range(n):
        yield i + 1, f"/photos/f{folder[i]:04d}/img{i:07d}.jpg", 4000, 3000, int(when[i])


def catalogue(n: int, path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE files(id INTEGER PRIMARY KEY, path TEXT, size INT, mtime_ns INT, "
                 "hash TEXT, width INT, height INT)")
    conn.executemany("INSERT INTO files VALUES (?,?,?,?,?,?,?)",
                     ((i, f"/photos/img{i:07d}.jpg", 2_000_000, 0, "0" * 64, 4000, 3000)
                      for i in range(1, n + 1)))
    conn.commit()
    return conn


def walk(conn, tl, mask, limit: int, pages: int, cursor=None) -> np.ndarray:
    times = []
    for _ in range(pages):
        t = time.perf_counter()
        page = tl.page(mask, cursor, limit)
        ids = page.ids.tolist()
        marks = ",".join("?" * len(ids))
        conn.execute(f"SELECT id, path, size, mtime_ns, hash, width, height FROM files WHERE id IN ({marks})",
                     ids).fetchall()
        times.append((time.perf_counter() - t) * 1000)
        cursor = page.cursor
        if not cursor:
            break
    return np.array(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--limit", type=int, default=100)
    ap.add_argument("--pages", type=int, default=50)
    a = ap.parse_args()
    t = time.perf_counter()
    facets = Facets.from_rows(rows(a.n))
    print(f"{a.n:,} rows: filter columns in {time.perf_counter() - t:.1f} s", flush=True)
    with tempfile.TemporaryDirectory() as d:
        conn = catalogue(a.n, os.path.join(d, "c.db"))
        t = time.perf_counter()
        tl = timeline_of(facets)
        print(f"browse order (once per database change): {(time.perf_counter() - t) * 1000:.0f} ms")
        deep = tl.page(None, None, a.n // 2).cursor
        month = Filter(after_ns=START_NS + 10 * YEAR_NS, before_ns=START_NS + 10 * YEAR_NS + YEAR_NS // 12)
        cases = [("newest first", None, None), ("from half-way", None, deep),
                 ("in one folder", Filter(folders=("/photos/f0042",)), None), ("in one month", month, None)]
        for name, f, cursor in cases:
            def mask(f=f):
                return facets.mask(f) if f else None
            t0 = time.perf_counter()
            m = mask()
            mask_ms = (time.perf_counter() - t0) * 1000
            lat = walk(conn, tl, m, a.limit, a.pages, cursor)
            print(f"{name:15s} {len(lat):3d} pages of {a.limit}: p50 {np.percentile(lat, 50):.2f} ms, "
                  f"p95 {np.percentile(lat, 95):.2f} ms (+ the filter's mask {mask_ms:.1f} ms per request)")


if __name__ == "__main__":
    main()
