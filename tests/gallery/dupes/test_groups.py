"""Duplicate groups: pHash column migration, pair searches against brute force, grouping, keepers."""

import os
import shutil
import sqlite3

import numpy as np
import pytest
from PIL import Image

from clipseek.gallery.dupes.groups import find_duplicates
from clipseek.gallery.dupes.phash import fill_phashes, hamming_pairs, phash_hex
from clipseek.gallery.dupes.similar import cosine_pairs
from clipseek.gallery.store import SCHEMA_VERSION, Store
from clipseek.gallery.sync import index_folders
from dupes_images import copies_of, photo
from helpers import FakeEncoder


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "photos"
    (d / "copies").mkdir(parents=True)
    for i in range(6):
        photo(i).save(d / f"p{i}.png")
    copies_of(d / "p0.png", d / "copies", "p0")
    return d


def test_hamming_pairs_match_brute_force():
    rng = np.random.default_rng(1)
    base = rng.integers(0, 2 ** 63, 300, dtype=np.int64).astype(np.uint64) | np.uint64(1 << 63)
    flips = np.uint64(1) << rng.integers(0, 64, (300, 3)).astype(np.uint64)
    codes = np.concatenate([base, base ^ flips[:, 0], base ^ flips[:, 0] ^ flips[:, 1] ^ flips[:, 2]])
    dist = np.bitwise_count(codes[:, None] ^ codes[None, :])
    for d in (0, 1, 3, 12):
        i, j, got = hamming_pairs(codes, d, chunk=128)
        want = {(a, b) for a, b in zip(*np.nonzero(np.triu(dist <= d, 1)))}
        assert set(zip(i.tolist(), j.tolist())) == want and len(i) == len(want)
        assert np.array_equal(got, dist[i, j])


@pytest.mark.parametrize("exact", [True, False])
def test_cosine_pairs_match_brute_force(exact):
    rng = np.random.default_rng(2)
    v = rng.standard_normal((600, 16)).astype(np.float32)
    v[300:] = v[:300] + 0.15 * rng.standard_normal((300, 16)).astype(np.float32)  # near-copies
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    sims = v @ v.T
    i, j, s = cosine_pairs(v, 0.97, exact=exact)
    want = set(zip(*np.nonzero(np.triu(sims >= 0.97, 1))))
    got = set(zip(i.tolist(), j.tolist()))
    assert len(got) == len(i) and all(a < b for a, b in got)  # each pair once, i < j
    assert np.allclose(s, sims[i, j], atol=1e-5)
    if exact:
        assert got == want
    else:  # the inverted-file search may miss a pair, never invents one
        assert got <= want and len(got) >= 0.95 * len(want)


def test_copies_grouped_distinct_not(tmp_path, folder, encoder):
    with Store.open(str(tmp_path / "g.db")) as s:
        index_folders(s, encoder, [str(folder)])
        assert fill_phashes(s) == 0  # the index run stored each pHash with its row, from the same decode
        groups = find_duplicates(s)
    assert len(groups) == 1, [g.to_dict() for g in groups]
    g = groups[0]
    assert g.keep.path == str(folder / "p0.png")  # largest, then oldest (the copy is newer)
    why = {os.path.basename(m.path): m.reason for m in g.extras}
    assert why == {"p0-bytes.png": "identical", "p0-q60.jpg": "phash", "p0-half.png": "phash",
                   "p0-crop.png": "phash"}
    assert all(0.8 <= m.score <= 1.0 for m in g.extras)
    doc = g.to_dict()
    assert doc["keep"] == g.keep.path and doc["members"][0]["reason"] == "keep"
    assert set(doc["members"][1]) >= {"path", "reason", "score", "link", "size", "width", "height"}
    assert {m.link for m in g.extras} == {g.keep.path}


def test_similar_only_when_asked(tmp_path, encoder):
    d = tmp_path / "burst"
    d.mkdir()
    for i in range(3):
        photo(10 + i).save(d / f"b{i}.png")
    with Store.open(str(tmp_path / "g.db")) as s:
        index_folders(s, encoder, [str(d)])
        assert find_duplicates(s) == []
        ids, vecs = s.all_vectors()
        cos = float(vecs[0] @ vecs[1])
        assert cos < 0.99999
        groups = find_duplicates(s, similar=True, threshold=min(cos, float(vecs[0] @ vecs[2]),
                                                                float(vecs[1] @ vecs[2])) - 1e-4)
        assert len(groups) == 1 and len(groups[0].members) == 3
        assert {m.reason for m in groups[0].extras} == {"similar"}
        assert find_duplicates(s, similar=True, threshold=1.0) == []


def test_keeper_is_largest_then_oldest_and_links_are_transitive(tmp_path):
    """Hand-made rows: A~B by pHash, B~C by pHash, D same bytes as A; E alone."""
    with Store.open(str(tmp_path / "g.db")) as s:
        s.bind_model(FakeEncoder(dim=2).fingerprint, 2)
        v = np.array([1.0, 0.0], np.float32)
        rows = [("/a.png", 100, 5, "h1", 10, 10, v), ("/b.png", 300, 3, "h2", 20, 10, v),
                ("/c.png", 300, 1, "h3", 20, 10, v), ("/d.png", 100, 9, "h1", 10, 10, v),
                ("/e.png", 100, 9, "h4", 10, 10, v)]
        with s.transaction():
            s.insert_files(rows)
            ids = {p: i for i, p in s.conn.execute("SELECT id, path FROM files")}
            s.set_phashes([(ids["/a.png"], "0000000000000000"), (ids["/b.png"], "00000000000000ff"),
                           (ids["/c.png"], "000000000000ffff"), (ids["/d.png"], "0000000000000000"),
                           (ids["/e.png"], "ffffffffffffffff")])
        (g,) = find_duplicates(s, phash_distance=8, fill=False)
        # b and c tie on pixels and bytes: the older file (smaller mtime) is kept
        assert g.keep.path == "/c.png" and [m.path for m in g.members][0] == "/c.png"
        why = {m.path: (m.reason, round(m.score, 4), m.link) for m in g.extras}
        assert why == {"/b.png": ("phash", 1 - 8 / 64, "/c.png"),    # linked to the keeper directly
                       "/a.png": ("identical", 1.0, "/d.png"),       # its strongest link: same bytes as d
                       "/d.png": ("identical", 1.0, "/a.png")}
        assert find_duplicates(s, phash_distance=7, fill=False)[0].keep.path == "/a.png"  # only a~d


V1_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE files (id INTEGER PRIMARY KEY AUTOINCREMENT, path TEXT NOT NULL UNIQUE,
    size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, hash TEXT NOT NULL, width INTEGER NOT NULL,
    height INTEGER NOT NULL, vector BLOB NOT NULL);
CREATE INDEX files_hash ON files(hash);
CREATE TABLE skipped (path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    reason TEXT NOT NULL);
"""


def test_version_1_database_is_upgraded_in_place_without_re_embedding(tmp_path, folder, encoder):
    """A database as clipseek wrote it before pHashes (schema 1): it opens, gains the column, and the
    next index run fills it without embedding anything again."""
    db = tmp_path / "old.db"
    with Store.open(str(db)) as s:  # index with today's code, then turn the file back into version 1
        index_folders(s, encoder, [str(folder)])
        rows = s.conn.execute("SELECT path, size, mtime_ns, hash, width, height, vector FROM files").fetchall()
        meta = s.conn.execute("SELECT key, value FROM meta").fetchall()
    os.remove(db)
    c = sqlite3.connect(db)
    c.executescript(V1_SCHEMA)
    c.executemany("INSERT INTO meta VALUES (?, ?)", [(k, "1" if k == "schema_version" else v) for k, v in meta])
    c.executemany("INSERT INTO files(path, size, mtime_ns, hash, width, height, vector) VALUES (?,?,?,?,?,?,?)",
                  rows)
    c.commit()
    c.close()

    class Counting:
        def __init__(self, enc):
            self._enc, self.embedded = enc, 0

        def encode_pixels(self, pixels):
            self.embedded += len(pixels)
            return self._enc.encode_pixels(pixels)

        def __getattr__(self, name):
            return getattr(self._enc, name)

    counting = Counting(encoder)
    from clipseek.gallery.gallery import Gallery

    with Gallery(str(db), counting) as g:
        summary = g.index([str(folder)])
        assert (summary.unchanged, summary.added, counting.embedded) == (10, 0, 0)
        s = g.store
        assert s.meta("schema_version") == str(SCHEMA_VERSION) == "4"
        assert s.conn.execute("SELECT count(*) FROM files WHERE phash IS NULL").fetchone()[0] == 0
        assert dict(s.conn.execute("SELECT path, phash FROM files"))[str(folder / "p1.png")] == \
            phash_hex(str(folder / "p1.png"))
        assert len(find_duplicates(s)) == 1
    with Store.open(str(db)) as s:  # opening again changes nothing
        assert s.meta("schema_version") == "4"


def test_newer_schema_is_refused(tmp_path):
    from clipseek.gallery.store import StoreError

    with Store.open(str(tmp_path / "g.db")) as s:
        s.conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(StoreError, match="schema version 99"):
        Store.open(str(tmp_path / "g.db"))


def test_unreadable_file_gets_blank_phash_and_copies_keep_theirs(tmp_path, folder, encoder):
    with Store.open(str(tmp_path / "g.db")) as s:
        index_folders(s, encoder, [str(folder)])
        s.conn.execute("UPDATE files SET phash = NULL")  # as an older release left them
        (folder / "p3.png").write_bytes(b"gone bad")  # content changed after indexing, before hashing
        assert fill_phashes(s) == 10
        got = dict(s.conn.execute("SELECT path, phash FROM files"))
        assert got[str(folder / "p3.png")] == "" and len(got[str(folder / "p2.png")]) == 16
        shutil.copyfile(folder / "p2.png", folder / "copy.png")
        index_folders(s, encoder, [str(folder)])  # a copy reuses the row's vector and pHash
        assert s.conn.execute("SELECT phash FROM files WHERE path = ?",
                              (str(folder / "copy.png"),)).fetchone()[0] == got[str(folder / "p2.png")]


def test_keeper_uses_the_files_own_size_not_the_draft_decoded_one(tmp_path, encoder):
    """JPEGs are decoded at reduced scale for the model; the store records the file's own size, and
    the big JPEG original wins over its half-size PNG copy (also for databases made before that fix,
    whose rows may still hold the draft size: dupes reads each member's header)."""
    d = tmp_path / "photos"
    d.mkdir()
    photo(3, (640, 480)).save(d / "big.jpg", quality=95)
    Image.open(d / "big.jpg").resize((320, 240), Image.LANCZOS).save(d / "half.png")
    with Store.open(str(tmp_path / "g.db")) as s:
        index_folders(s, encoder, [str(d)])
        stored = dict(s.conn.execute("SELECT path, width FROM files"))
        assert stored[str(d / "big.jpg")] == 640  # the file's own width, not the draft-decoded one
        s.conn.execute("UPDATE files SET width = 160, height = 120 WHERE path = ?", (str(d / "big.jpg"),))
        (g,) = find_duplicates(s)
    assert g.keep.path == str(d / "big.jpg") and (g.keep.width, g.keep.height) == (640, 480)
