"""Databases made by earlier releases (schema 1, and schema 2: the current release before this
change; tests/gallery/data/make_old_gallery.py) are migrated in place when opened, and the next
`index` run fills the capture times without re-embedding anything."""

import os
import shutil
import sqlite3
from datetime import datetime

import pytest

import clipseek
from clipseek.gallery.query import PENDING, Filter
from clipseek.gallery.search.facets import Facets
from clipseek.gallery.store import SCHEMA_VERSION, Store, StoreError
from helpers import FakeEncoder

DATA = os.path.join(os.path.dirname(__file__), "data")
OLD_ROOT = "/tmp/clipseek-v1/photos"
MTIME_NS = 1_577_880_000 * 10 ** 9


class NoEncoding(FakeEncoder):
    """The fake encoder's identity, but encoding anything fails the test."""

    def encode_pixels(self, pixels):
        raise AssertionError("re-embedded an image")

    def encode_texts(self, texts, batch_size=256):
        raise AssertionError("encoded text")


@pytest.fixture(params=["v1", "v2"])
def old_gallery(tmp_path, request):
    """An old release's database and its photos under tmp_path, rows pointing at the copies."""
    data = os.path.join(DATA, request.param)
    shutil.copytree(os.path.join(data, "photos"), tmp_path / "photos")
    for dirpath, _, names in os.walk(tmp_path / "photos"):
        for n in names:  # git keeps no mtimes: give the copies the ones the database recorded
            os.utime(os.path.join(dirpath, n), ns=(MTIME_NS, MTIME_NS))
    db = str(tmp_path / "gallery.db")
    shutil.copy(os.path.join(data, "gallery.db"), db)
    conn = sqlite3.connect(db)  # data only: the schema stays the one the old release wrote
    conn.execute("UPDATE files SET path = ? || substr(path, ?)", (str(tmp_path / "photos"), len(OLD_ROOT) + 1))
    conn.commit()
    assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (request.param[1],)
    before = conn.execute("SELECT id, path, hash, vector FROM files ORDER BY id").fetchall()
    conn.close()
    return db, tmp_path / "photos", before


def test_open_migrates_in_place_then_index_fills_capture_times(old_gallery):
    db, photos, before = old_gallery
    with Store.open(db, create=False) as s:
        assert s.meta("schema_version") == str(SCHEMA_VERSION) == "4"
        rows = s.conn.execute("SELECT id, path, hash, vector, taken_ns FROM files ORDER BY id").fetchall()
        assert [r[:4] for r in rows] == before  # same rows, ids and vectors
        assert {r[4] for r in rows} == {PENDING}  # not read yet
        indexes = {r[0] for r in s.conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert "files_facets" in indexes
    with Store.open(db, create=False) as s:  # a second open finds it migrated
        assert s.meta("schema_version") == "4"

    with clipseek.Gallery(db, NoEncoding()) as g:
        summary = g.index([str(photos)])
    assert (summary.unchanged, summary.added, summary.updated, summary.dated) == (3, 0, 0, 3)
    with Store.open(db, create=False) as s:
        rows = s.conn.execute("SELECT id, path, hash, vector, taken_ns FROM files ORDER BY id").fetchall()
        assert [r[:4] for r in rows] == before  # nothing re-embedded
        taken = {os.path.basename(r[1]): r[4] for r in rows}
        assert taken == {"beach.jpg": round(datetime(2019, 7, 14, 9, 30).timestamp()) * 10 ** 9,
                         "tower.jpg": None, "tile.png": None}
        # a date filter now reads the EXIF time of beach.jpg and the mtime (2020-01-01) of the others
        facets = Facets.load(s)
        in_2019 = Filter.parse(after="2019-01-01", before="2019-12-31")
        assert [taken_name(s, i) for i in facets.allowed(in_2019)] == ["beach.jpg"]
        later = Filter.parse(after="2019-12-31")
        assert sorted(taken_name(s, i) for i in facets.allowed(later)) == ["tile.png", "tower.jpg"]
    with clipseek.Gallery(db, NoEncoding()) as g:  # nothing left to fill
        assert g.index([str(photos)]).dated == 0


def taken_name(store, row_id):
    return os.path.basename(store.get_rows([int(row_id)])[int(row_id)].path)


def test_a_read_only_old_database_says_it_needs_the_upgrade(old_gallery, monkeypatch):
    """An old database that cannot be written gets one clear error, not a half-upgraded file. The
    write fails as SQLite fails on a read-only file (as root a chmod would not stop it)."""
    db, _, _ = old_gallery
    before = open(db, "rb").read()

    def read_only(self, rows):
        raise sqlite3.OperationalError("attempt to write a readonly database")
    monkeypatch.setattr(Store, "_set_meta_rows", read_only)
    with pytest.raises(StoreError, match="needs a schema upgrade .* cannot be written .*readonly"):
        Store.open(db, create=False)
    assert open(db, "rb").read() == before  # the migration's statements were rolled back
