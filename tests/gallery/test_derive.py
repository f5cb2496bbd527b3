"""One read and one decode per file at index time: the model input, the pHash and both thumbnails."""

import builtins
import os
import shutil
from collections import Counter

import imagehash
import pytest
from PIL import Image

import clipseek
from clipseek.core import images
from clipseek.core.images import open_image
from clipseek.data.synthetic import photo_like
from clipseek.gallery.derive import THUMBS_CHECKED
from clipseek.gallery.dupes.phash import DRAFT_SIZE
from clipseek.gallery.thumbs import GRID_SIZE, VIEW_SIZE, thumbnail_path
from conftest import make_image

INDEX_PHASES = ("loading the model", "scanning", "embedding", "saving the index")  # sync names these


@pytest.fixture
def counted(monkeypatch, tmp_path):
    """(opens, decodes): per file under tmp_path/imgs, every open()/os.open() (Pillow and clipseek's
    reader) and every decode (each goes through `core.images._decode`)."""
    opens, decodes = Counter(), Counter()
    folder = str(tmp_path / "imgs")

    def counting(real):
        def counting_open(file, *a, **k):
            if isinstance(file, (str, os.PathLike)) and os.fspath(file).startswith(folder):
                opens[os.fspath(file)] += 1
            return real(file, *a, **k)
        return counting_open
    monkeypatch.setattr(builtins, "open", counting(builtins.open))
    monkeypatch.setattr(os, "open", counting(os.open))
    real = images._decode
    monkeypatch.setattr(images, "_decode", lambda src, p, *a: decodes.update([p]) or real(src, p, *a))
    return opens, decodes


def make_folder(d):
    d.mkdir()
    for i in range(5):
        make_image(i, (60 + i, 40)).save(d / f"p{i}.png")
    photo_like(7, (2600, 1700)).save(d / "big.jpg", quality=90)  # decoded at half scale (draft)
    photo_like(8, (900, 700)).save(d / "small.jpg", quality=90)
    return sorted(str(p) for p in d.iterdir())


def old_phash(path: str) -> str:
    """The pHash as clipseek computed it before, in a second pass (`phash_hex`)."""
    return str(imagehash.phash(open_image(path, draft_size=DRAFT_SIZE)))


def stored(g):
    return {p: (ph, h) for p, ph, h in g.store.conn.execute("SELECT path, phash, hash FROM files")}


def test_index_reads_and_decodes_each_file_once_pHash_and_thumbnails_included(tmp_path, encoder, counted):
    opens, decodes = counted
    files = make_folder(tmp_path / "imgs")
    opens.clear()
    db = str(tmp_path / "g.db")
    phases = []
    with clipseek.Gallery(db, encoder) as g:
        assert g.index([str(tmp_path / "imgs")], on_phase=lambda *a: phases.append(a)).added == 7
        rows = stored(g)
    assert dict(opens) == {f: 1 for f in files} and dict(decodes) == {f: 1 for f in files}
    assert [p for p in phases if p[0] not in INDEX_PHASES] == []  # nothing left for a second pass
    for f in files:
        phash, h = rows[f]
        new, old = imagehash.hex_to_hash(phash), imagehash.hex_to_hash(old_phash(f))
        # the same values as before for pictures up to the grid size; within 2 bits for larger ones (the
        # old pass hashed a 1/2-1/8-scale JPEG decode, the new one the 256-px LANCZOS thumbnail)
        assert new == old if max(open_image(f).size) <= GRID_SIZE else new - old <= 2, f
        for size in (GRID_SIZE, VIEW_SIZE):
            with Image.open(thumbnail_path(db + ".thumbs", h, size)) as t:
                w, hh = open_image(f).size
                assert max(t.size) == min(size, max(w, hh)) and t.format == "JPEG"


def test_unchanged_index_decodes_nothing(tmp_path, encoder, counted):
    opens, decodes = counted
    make_folder(tmp_path / "imgs")
    with clipseek.Gallery(str(tmp_path / "g.db"), encoder) as g:
        g.index([str(tmp_path / "imgs")])
        opens.clear()
        decodes.clear()
        phases = []
        assert g.index([str(tmp_path / "imgs")], on_phase=lambda *a: phases.append(a)).unchanged == 7
    assert (dict(opens), dict(decodes), [p for p in phases if p[0] not in INDEX_PHASES]) == ({}, {}, [])


def test_older_database_gets_pHashes_and_thumbnails_in_one_pass_with_its_own_phase(tmp_path, encoder, counted):
    opens, decodes = counted
    files = make_folder(tmp_path / "imgs")
    db = str(tmp_path / "g.db")
    with clipseek.Gallery(db, encoder) as g:
        g.index([str(tmp_path / "imgs")])
        before = stored(g)
        with g.store.transaction():  # as an older release left it: no pHash, no thumbnail
            g.store.conn.execute("UPDATE files SET phash = NULL")
            g.store.conn.execute("DELETE FROM meta WHERE key = ?", (THUMBS_CHECKED,))
    shutil.rmtree(db + ".thumbs")
    opens.clear()
    decodes.clear()
    phases, done = [], Counter()

    def on_phase(label, total):
        if label in INDEX_PHASES:  # the run's own phases (named, no bar of their own)
            return None
        phases.append((label, total))
        return lambda n: done.update({label: n})

    with clipseek.Gallery(db, encoder) as g:
        assert g.index([str(tmp_path / "imgs")], on_phase=on_phase).unchanged == 7
        assert stored(g) == before
    label = "computing perceptual hashes and making thumbnails"
    assert phases == [(label, 7)] and done == {label: 7}
    assert dict(decodes) == {f: 1 for f in files} and dict(opens) == {f: 1 for f in files}
    assert all(os.path.exists(thumbnail_path(db + ".thumbs", h, s)) for _, h in before.values()
               for s in (GRID_SIZE, VIEW_SIZE))

    os.remove(thumbnail_path(db + ".thumbs", before[files[1]][1], VIEW_SIZE))  # checked once: not again
    phases.clear()
    with clipseek.Gallery(db, encoder) as g:
        g.index([str(tmp_path / "imgs")], on_phase=on_phase)
    assert phases == []


def test_thumbnails_off(tmp_path, encoder):
    make_folder(tmp_path / "imgs")
    db = str(tmp_path / "g.db")
    with clipseek.Gallery(db, encoder) as g:
        g.index([str(tmp_path / "imgs")], thumbnails=False)
        assert g.store.count_without_phash() == 0
    assert not os.path.exists(db + ".thumbs")
