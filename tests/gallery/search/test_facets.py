"""gallery.search.facets: filters applied to the filter columns held in memory give exactly the rows the SQL
WHERE clause used before gives (kept here as the reference; an extension now matches a name that is not
UTF-8 too) and a plain Python predicate over the rows gives:
names that are not UTF-8 (BLOB rows), nested folders and a folder that is a string prefix of another,
trailing separators, several folders, capture times (NULL, PENDING), sizes and extensions."""

import os
from datetime import datetime

import numpy as np
import pytest

from clipseek.core.paths import db_value, prefix_ranges
from clipseek.gallery.query import PENDING, Filter
from clipseek.gallery.search.facets import Facets
from clipseek.gallery.store import Store


def ns(*args) -> int:
    return round(datetime(*args).timestamp() * 1e6) * 1000


def old_filter_sql(f: Filter) -> tuple[str, list]:
    """The WHERE clause filters used before gallery.search.facets (query.filter_sql as it was, but for the
    extensions of BLOB paths)."""
    where, params = [], []
    if f.folders:
        where.append("(" + " OR ".join(["(path >= ? AND path < ?)"] * 2 * len(f.folders)) + ")")
        for d in f.folders:
            params += prefix_ranges(d)
    when = f"coalesce(nullif(taken_ns, {PENDING}), mtime_ns)"
    if f.after_ns is not None:
        where.append(f"{when} >= ?")
        params.append(f.after_ns)
    if f.before_ns is not None:
        where.append(f"{when} < ?")
        params.append(f.before_ns)
    if f.orientation:
        where.append({"landscape": "width > height", "portrait": "height > width",
                      "square": "width = height"}[f.orientation])
    if f.min_width or f.min_height:
        where.append("width >= ? AND height >= ?")
        params += [f.min_width, f.min_height]
    if f.exts:  # main said `path LIKE ?`, which never matches a BLOB path where SQLite is built with
        # SQLITE_LIKE_DOESNT_MATCH_BLOBS (as here): --ext jpg left out 'x\xff.jpg'. The facets match it.
        where.append("(" + " OR ".join(["CAST(path AS TEXT) LIKE ?"] * len(f.exts)) + ")")
        params += ["%" + e for e in f.exts]
    return " AND ".join(where) or "1", params


def passes(path: str, w: int, h: int, mtime: int, taken, f: Filter) -> bool:
    """The filter by hand, on the name's bytes. A TEXT row (a UTF-8 name) is under a folder only when
    the folder as given is UTF-8 too, as SQL's comparison of TEXT with TEXT and BLOB with BLOB has it."""
    raw = os.fsencode(path)
    text_row = isinstance(db_value(path), str)

    def under(d: str) -> bool:
        prefix = d.rstrip(os.sep) + os.sep
        return raw.startswith(os.fsencode(prefix)) and (not text_row or isinstance(db_value(prefix), str))
    when = mtime if taken in (None, PENDING) else taken
    shape = {None: True, "landscape": w > h, "portrait": h > w, "square": w == h}[f.orientation]
    return (not f.folders or any(under(d) for d in f.folders)) and \
        (f.after_ns is None or when >= f.after_ns) and (f.before_ns is None or when < f.before_ns) and \
        shape and w >= f.min_width and h >= f.min_height and \
        (not f.exts or raw.lower().endswith(tuple(e.encode() for e in f.exts)))


FOLDERS = ["/g/a/b", "/g/a/bc", "/g/a/b/c", "/g/a/b/c/deep", "/g/a/b.c", "/g/a/b-x", "/g/a", "/g/é",
           os.fsdecode(b"/g/\xff"), os.fsdecode(b"/g/a/b/\xfe\xfd"), os.fsdecode(b"/g/\xff/sub"), "/h", "/g/a.jpg"]
NAMES = ["p.jpg", "Q.JPG", "r.jpeg", "s.Png", "t.webp", "u.tif", "v.TIFF", ".jpg", "noext", "x.jpg.png",
         "İMG.JPG", "é.png", os.fsdecode(b"\xff\xfe.jpg"), os.fsdecode(b"bad\xe9.PNG"), "y.gif", "z.jpgx"]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """~400 rows: every folder x name above (some pairs left out), random sizes and times."""
    rng = np.random.default_rng(7)
    rows = []
    for d in FOLDERS:
        for name in NAMES:
            if rng.random() < 0.15:
                continue
            w, h = (int(v) for v in rng.choice([100, 600, 800, 1920], 2))
            mtime = ns(2020 + int(rng.integers(0, 6)), 1 + int(rng.integers(0, 12)), 1)
            taken = [None, PENDING, ns(2018 + int(rng.integers(0, 8)), 6, 1)][int(rng.integers(0, 3))]
            rows.append((os.path.join(d, name), 1, mtime, "h", w, h, np.zeros(4, np.float32), taken))
    rng.shuffle(rows)  # ids in no relation to path order
    s = Store.open(str(tmp_path_factory.mktemp("facets") / "g.db"))
    with s.transaction():
        s.insert_files(rows)
    kinds = dict(s.conn.execute("SELECT typeof(path), count(*) FROM files GROUP BY 1").fetchall())
    assert kinds["text"] > 100 and kinds["blob"] > 50
    yield s
    s.close()


FILTERS = [
    {}, {"folders": ["/g/a/b"]}, {"folders": ["/g/a/b/"]}, {"folders": ["/g/a/bc"]}, {"folders": ["/g/a"]},
    {"folders": ["/g/a/b", "/g/a/bc"]}, {"folders": ["/g/a/b/c", "/g/é", "/h/"]}, {"folders": ["/"]},
    {"folders": [os.fsdecode(b"/g/\xff")]}, {"folders": [os.fsdecode(b"/g/\xff/")]},
    {"folders": [os.fsdecode(b"/g/a/b/\xfe\xfd")]}, {"folders": ["/g/a/b/c/deep", os.fsdecode(b"/g/\xff/sub")]},
    {"folders": ["/g/\udcc3\udca9"]},  # the bytes of /g/é, given as surrogate escapes: BLOB rows only
    {"folders": ["/nowhere"]}, {"folders": ["/g/a.jpg"]}, {"folders": ["/g/a/b."]},
    {"after": "2021-01-01"}, {"before": "2022-06-01"}, {"after": "2019-01-01", "before": "2023-01-01"},
    {"orientation": "landscape"}, {"orientation": "portrait"}, {"orientation": "square"},
    {"min_size": "600x600"}, {"min_size": "1920x100"}, {"ext": "jpg"}, {"ext": "png,webp"}, {"ext": "tiff"},
    {"ext": "gif,heic"}, {"folders": ["/g/a/b", os.fsdecode(b"/g/\xff")], "ext": "jpg", "after": "2020-03-01"},
    {"folders": ["/g/a"], "orientation": "portrait", "min_size": "600x600", "before": "2024-01-01"},
]


@pytest.mark.parametrize("kwargs", FILTERS)
def test_facets_equal_the_old_sql_and_the_predicate(store, kwargs):
    facets = Facets.load(store)
    f = Filter.parse(root="/", **kwargs)
    clause, params = old_filter_sql(f)
    sql = [r[0] for r in store.conn.execute(f"SELECT id FROM files WHERE {clause} ORDER BY id", params)]
    rows = store.conn.execute("SELECT id, path, width, height, mtime_ns, taken_ns FROM files ORDER BY id")
    by_hand = [i for i, p, w, h, m, t in rows if passes(os.fsdecode(p) if isinstance(p, bytes) else p, w, h, m, t, f)]
    got = facets.allowed(f)
    assert got.dtype == np.int64 and got.tolist() == sql == by_hand
    if kwargs:
        assert 0 <= len(got) < len(facets) or kwargs == {"folders": ["/"]}
    assert len(got) or kwargs.get("folders") in (["/nowhere"], ["/g/a/b."]) or kwargs.get("ext") == "gif,heic"


def test_random_combinations_equal_the_old_sql(store):
    facets = Facets.load(store)
    rng = np.random.default_rng(1)
    for _ in range(200):
        picks = [FILTERS[int(i)] for i in rng.choice(len(FILTERS), 3)]
        kwargs = {k: v for p in picks for k, v in p.items() if k not in ("after", "before")}
        kwargs.update({k: v for k, v in picks[0].items() if k in ("after", "before")})
        f = Filter.parse(root="/", **kwargs)
        clause, params = old_filter_sql(f)
        sql = [r[0] for r in store.conn.execute(f"SELECT id FROM files WHERE {clause} ORDER BY id", params)]
        assert facets.allowed(f).tolist() == sql, kwargs


def test_an_empty_store_and_the_memory_per_row(tmp_path, store):
    with Store.open(str(tmp_path / "e.db")) as empty:
        facets = Facets.load(empty)
        assert len(facets) == 0 and facets.allowed(Filter.parse(["/g"], ext="jpg")).tolist() == []
    facets = Facets.load(store)
    # no per-row string (kind and duration: 5 bytes more than before videos)
    assert facets.nbytes() == len(facets) * (8 + 8 + 4 + 4 + 4 + 1 + 1 + 4)
    utf8 = [d for d in FOLDERS if isinstance(db_value(d), str)]  # their UTF-8 names: TEXT rows, the others BLOB
    assert facets.dirs == (sorted(os.fsencode(d + "/") for d in utf8), sorted(os.fsencode(d + "/") for d in FOLDERS))
