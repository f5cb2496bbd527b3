"""The SQLite catalog and the indexer that keeps it in step with folders on disk."""

import os
import sqlite3

import numpy as np
import pytest

from clipseek.errors import ClipseekError, ModelMismatchError, UsageError
from clipseek.gallery.store import Store
from clipseek.gallery.sync import index_folders
from helpers import FakeEncoder, make_image


class Counting(FakeEncoder):
    """A fake encoder that counts how many images it embeds."""

    embedded = 0

    def encode_pixels(self, pixels):
        self.embedded += len(pixels)
        return super().encode_pixels(pixels)


@pytest.fixture
def counting():
    return Counting()


def paths_in(store):
    return sorted(r[0] for r in store.conn.execute("SELECT path FROM files"))


def test_fresh_db_schema_wal_and_meta(tmp_path):
    with Store.open(str(tmp_path / "g.db")) as s:
        assert s.meta("schema_version") == "4" and len(s.db_id) == 32
        assert s.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert s.count() == 0 and s.fingerprint is None
        fp = FakeEncoder(name="m").fingerprint
        s.bind_model(fp, 4)
    with Store.open(str(tmp_path / "g.db"), create=False) as s:
        assert s.fingerprint == fp
        assert s.model_info() == {"fingerprint": "m@v1 backend=fake dtype=float32 pre=center-32-crop32x32",
                                  "dim": "4", "model": "m", "dtype": "float32", "framing": "center"}
        other = FakeEncoder(name="other").fingerprint
        with pytest.raises(ModelMismatchError, match=r"\[m@v1 .*\[other@v1 "):
            s.bind_model(other, 4)


def test_not_a_clipseek_db(tmp_path):
    txt = tmp_path / "notes.db"
    txt.write_text("hello, I am a text file" * 100)
    with pytest.raises(UsageError, match="not a clipseek database"):
        Store.open(str(txt))
    other = tmp_path / "other.sqlite"
    c = sqlite3.connect(other)
    c.execute("CREATE TABLE t (x)")
    c.commit()
    c.close()
    with pytest.raises(UsageError, match="not a clipseek database"):
        Store.open(str(other))
    c = sqlite3.connect(other)  # untouched: still the other app's table, not switched to WAL
    assert c.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert [r[0] for r in c.execute("SELECT name FROM sqlite_master")] == ["t"]
    with pytest.raises(UsageError, match="no clipseek database"):
        Store.open(str(tmp_path / "missing.db"), create=False)


def test_ids_never_reused_and_vectors_roundtrip(tmp_path):
    with Store.open(str(tmp_path / "g.db")) as s:
        s.bind_model(FakeEncoder().fingerprint, 3)
        v = np.array([[1, 0, 0], [0, 1, 0]], np.float32)
        with s.transaction():
            s.insert_files([("/a.png", 1, 1, "h1", 4, 5, v[0]), ("/b.png", 1, 1, "h2", 4, 5, v[1])])
        with s.transaction():
            s.insert_files([("/b.png", 2, 2, "h3", 4, 5, v[0])])  # changed content: new id
        ids, vecs = s.all_vectors()
        assert ids.tolist() == [1, 3] and np.array_equal(vecs, [v[0], v[0]])
        with pytest.raises(RuntimeError):
            with s.transaction():
                s.remove_paths(["/a.png"])
                raise RuntimeError("boom")  # rolled back
        assert s.count() == 2 and s.max_id() == 3


def test_reindex_embeds_only_what_changed(tmp_path, counting):
    d = tmp_path / "imgs"
    (d / "sub").mkdir(parents=True)
    for i in range(6):
        make_image(i, (40 + i, 36)).save(d / f"i{i}.png")
    (d / "zero.jpg").write_bytes(b"")
    (d / "bad.png").write_text("not a png")
    s = Store.open(str(tmp_path / "g.db"))
    r = index_folders(s, counting, [str(d)], batch_size=4)
    assert (r.added, r.updated, r.moved, r.removed, r.total) == (6, 0, 0, 0, 6)
    assert {os.path.basename(x.path) for x in r.skipped} == {"zero.jpg", "bad.png"}
    assert counting.embedded == 6

    r = index_folders(s, counting, [str(d)])  # nothing changed: nothing embedded, skips not retried
    assert (r.added, r.unchanged, r.still_skipped, r.skipped) == (0, 6, 2, []) and counting.embedded == 6

    old_ids = {p: i for i, p in s.conn.execute("SELECT id, path FROM files")}
    os.rename(d / "i0.png", d / "sub" / "renamed.png")           # moved: same id, no embedding
    os.remove(d / "i1.png")                                       # deleted: pruned
    make_image(100, (50, 50)).save(d / "i2.png")                  # changed: re-embedded, new id
    os.utime(d / "i3.png", (1, 1))                                # touched only: not re-embedded
    make_image(4, (44, 36)).save(d / "copy_of_i4.png")            # duplicate content: vector copied
    make_image(7).save(d / "bad.png")                             # a skipped file fixed: retried
    r = index_folders(s, counting, [str(d)])
    assert (r.added, r.updated, r.moved, r.removed) == (2, 1, 1, 1), r
    assert r.still_skipped == 1 and counting.embedded == 6 + 2     # i2 and bad.png only
    new_ids = {p: i for i, p in s.conn.execute("SELECT id, path FROM files")}
    assert new_ids[str(d / "sub" / "renamed.png")] == old_ids[str(d / "i0.png")]
    assert new_ids[str(d / "i2.png")] > max(old_ids.values())
    assert str(d / "i1.png") not in new_ids and s.count() == 7
    assert np.array_equal(s.vector(new_ids[str(d / "copy_of_i4.png")]), s.vector(new_ids[str(d / "i4.png")]))
    assert [p for p, _ in s.skipped()] == [str(d / "zero.jpg")]

    (d / "i5.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")   # good file turned bad: dropped, skipped
    os.remove(d / "zero.jpg")                                     # a skipped file deleted: forgotten
    r = index_folders(s, counting, [str(d)])
    assert [os.path.basename(x.path) for x in r.skipped] == ["i5.png"] and r.removed == 0  # a skip record is no image
    assert str(d / "i5.png") not in paths_in(s) and [p for p, _ in s.skipped()] == [str(d / "i5.png")]
    assert len(paths_in(s)) == len(set(paths_in(s))) == s.count() == 6
    s.close()


def test_other_folders_are_left_alone_and_model_is_checked(tmp_path, counting):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    make_image(1).save(a / "x.png")
    make_image(2).save(b / "y.png")
    with Store.open(str(tmp_path / "g.db")) as s:
        index_folders(s, counting, [str(a)])
        index_folders(s, counting, [str(b)])
        assert [os.path.basename(p) for p in paths_in(s)] == ["x.png", "y.png"]
        os.rename(a / "x.png", b / "x.png")  # moved across folders: recognised when indexing b
        r = index_folders(s, counting, [str(b)])
        assert r.moved == 1 and counting.embedded == 2
        other = FakeEncoder(name="someone-else").fingerprint
        s.conn.execute("UPDATE meta SET value = ? WHERE key = 'fingerprint'", (str(other),))
        with pytest.raises(ModelMismatchError, match=r"\[someone-else@v1 .*\[" + counting.fingerprint.name + "@"):
            index_folders(s, counting, [str(b)])
    with pytest.raises(ClipseekError, match="folder not found"):
        index_folders(Store.open(str(tmp_path / "h.db")), counting, [str(tmp_path / "nope")])


def test_names_that_are_not_utf8_are_stored_as_their_bytes_and_found_again(tmp_path, counting):
    root = os.fsencode(tmp_path / "imgs")
    os.makedirs(os.path.join(root, b"sub\xe9"))
    names = [b"ok.png", b"bad\xff\xfe.png", b"new\nline.png", os.path.join(b"sub\xe9", b"deep.png")]
    for i, n in enumerate(names):
        with open(os.path.join(root, n), "wb") as f:
            make_image(i).save(f, "PNG")
    with open(os.path.join(root, b"broken\xff.png"), "wb") as f:
        f.write(b"not a png")
    with Store.open(str(tmp_path / "g.db")) as s:
        r = index_folders(s, counting, [root])
        assert (r.added, [os.fsencode(k.path) for k in r.skipped]) == (4, [os.path.join(root, b"broken\xff.png")])
        kinds = dict(s.conn.execute("SELECT typeof(path), count(*) FROM files GROUP BY 1").fetchall())
        assert kinds == {"text": 2, "blob": 2}  # UTF-8 names stay TEXT, as in databases made before
        stored = sorted(os.fsencode(p) for p in s.rows_under([os.fsdecode(root)]))
        assert stored == sorted(os.path.join(root, n) for n in names)
        assert [os.fsencode(p) for p, _ in s.skipped()] == [os.path.join(root, b"broken\xff.png")]
        assert os.fsencode(s.common_root()) == root
        assert s.rows_under([os.path.join(os.fsdecode(root), os.fsdecode(b"sub\xe9"))]) != {}
        again = index_folders(s, counting, [root])  # nothing changed: nothing read again
        assert (again.added, again.unchanged, again.still_skipped, counting.embedded) == (0, 4, 1, 4)
        os.rename(os.path.join(root, b"bad\xff\xfe.png"), os.path.join(root, b"moved\xfe.png"))
        moved = index_folders(s, counting, [root])
        assert (moved.moved, moved.removed, counting.embedded) == (1, 0, 4)
        assert os.path.join(root, b"moved\xfe.png") in {os.fsencode(p) for p in s.rows_under([os.fsdecode(root)])}


def test_a_new_database_appears_whole_with_its_model_or_not_at_all(tmp_path, monkeypatch):
    fp = FakeEncoder(name="m").fingerprint
    db = tmp_path / "g.db"
    real = Store._init_or_check

    def killed(self, fresh, model=None):
        real(self, fresh, model)
        raise KeyboardInterrupt  # a kill after the schema, before the file is in place
    monkeypatch.setattr(Store, "_init_or_check", killed)
    with pytest.raises(KeyboardInterrupt):
        Store.open(str(db), model=(fp, 32))
    assert os.listdir(tmp_path) == []  # no half-made database, no temp file
    monkeypatch.setattr(Store, "_init_or_check", real)
    with Store.open(str(db), model=(fp, 32)) as s:
        assert s.fingerprint == fp and s.meta("dim") == "32" and s.count() == 0
