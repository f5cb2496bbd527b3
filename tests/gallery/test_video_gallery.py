"""Videos in a gallery: `index` samples and embeds their moments (schema 4), a rename or a copy reuses
them (no encoder call), a changed video is embedded again, search ranks a video by its best moment and
says when it is (the bundled model finds the red star of the shapes clip inside 2-4 s), `media` and
duration filters, bad videos skipped with their reasons, and an older gallery upgraded in place."""

import os
import shutil
import sqlite3

import pytest

from clipseek.data.synthetic_video import H264, Segment, segment_picture, shapes_clip
from clipseek.gallery.gallery import Gallery
from clipseek.gallery.query import Filter
from clipseek.gallery.store import Store
from video_clips import clip, hostile


class Counting:
    """An encoder that counts the pictures it is asked to encode (moments and photos)."""

    def __init__(self, inner):
        self.inner, self.images, self.pixels = inner, 0, 0

    def encode_images(self, images, *a, **kw):
        self.images += len(images)
        return self.inner.encode_images(images, *a, **kw)

    def encode_pixels(self, pixels, *a, **kw):
        self.pixels += len(pixels)
        return self.inner.encode_pixels(pixels, *a, **kw)

    def __getattr__(self, name):
        return getattr(self.inner, name)


@pytest.fixture(scope="module")
def demo():
    from clipseek.model.loader import load_model

    return load_model("clipseek-demo", backend="torch")


@pytest.fixture
def shapes(tmp_path):
    folder = tmp_path / "media"
    folder.mkdir()
    return folder, clip(str(folder))  # plain 0-2 s, red star 2-4 s, blue circle 4-6 s


def moments(db):
    with Store.open(db, create=False) as s:
        return s.conn.execute("SELECT m.id, f.path, m.time_s FROM moments m JOIN files f ON f.id = m.file_id "
                              "ORDER BY m.id").fetchall()


def test_index_adds_the_video_with_moments_and_search_says_when(tmp_path, shapes, demo):
    folder, video = shapes
    db = str(tmp_path / "g.db")
    with Gallery(db, Counting(demo)) as g:
        summary = g.index(str(folder))
        assert (summary.added, summary.skipped, summary.total) == (1, [], 1)
        assert summary.moments == g._encoder.images >= 3
        (red,) = g.search("a red star", k=3)
        assert red.path == video and red.kind == "video" and 2.0 <= red.time_s < 4.0
        assert red.moments[0] == (red.time_s, red.score) and len(red.moments) >= 3
        assert [s for _, s in red.moments] == sorted((s for _, s in red.moments), reverse=True)
        (blue,) = g.search("a blue circle", k=3)
        assert 4.0 <= blue.time_s <= 6.0
        d = red.to_dict()
        assert d["kind"] == "video" and d["time_s"] == round(red.time_s, 3) and len(d["moments"]) == len(red.moments)
    rows = moments(db)
    assert len(rows) == summary.moments and {p for _, p, _ in rows} == {video}
    with Store.open(db, create=False) as s:
        assert s.conn.execute("SELECT kind, duration_s, width, height FROM files").fetchone() == (1, 6.0, 128, 128)
        # a video is never read as an image for a pHash (it was, and got '' for "unreadable")
        assert s.conn.execute("SELECT phash FROM files").fetchone() == (None,) and s.rows_without_phash() == []


def test_a_rename_keeps_the_moments_and_a_copy_reuses_them(tmp_path, shapes, demo):
    folder, video = shapes
    db = str(tmp_path / "g.db")
    with Gallery(db, demo) as g:
        g.index(str(folder))
    before = moments(db)
    os.rename(video, folder / "renamed.mp4")
    shutil.copy(folder / "renamed.mp4", folder / "copy.mp4")
    counting = Counting(demo)
    with Gallery(db, counting) as g:
        summary = g.index(str(folder))
        assert (summary.moved, summary.added, summary.moments) == (1, 1, 0)
        assert counting.images == counting.pixels == 0  # nothing embedded again
        found = {r.path: r.time_s for r in g.search("a red star", k=5)}
        assert set(found) == {str(folder / "renamed.mp4"), str(folder / "copy.mp4")}
        assert all(2.0 <= t < 4.0 for t in found.values())
        assert [len(grp) for grp in g.store.same_content_ids()] == [2]  # byte-identical: dupes sees them
    after = moments(db)
    # the first name in order took the move (the same moment rows, ids kept), the other got copies
    kept = {p for i, p, _ in after if i in {i for i, _, _ in before}}
    assert len(kept) == 1 and kept <= {str(folder / "renamed.mp4"), str(folder / "copy.mp4")}
    for name in ("renamed.mp4", "copy.mp4"):
        assert [t for _, p, t in after if p == str(folder / name)] == [t for _, _, t in before]


def test_a_changed_video_is_embedded_again(tmp_path, shapes, demo):
    folder, video = shapes
    db = str(tmp_path / "g.db")
    with Gallery(db, demo) as g:
        g.index(str(folder))
    old = moments(db)
    shapes_clip(video, H264, segments=(Segment(3.0, "blue circle"), Segment(3.0, "red star")))
    counting = Counting(demo)
    with Gallery(db, counting) as g:
        summary = g.index(str(folder))
        assert summary.updated == 1 and counting.images == summary.moments > 0
        (red,) = g.search("a red star", k=2)
        assert 3.0 <= red.time_s <= 6.0
    new = moments(db)
    assert min(i for i, _, _ in new) > max(i for i, _, _ in old)  # the old moments went with the old row


def test_photos_and_videos_together_and_the_media_and_duration_filters(tmp_path, shapes, demo):
    folder, video = shapes
    photo = str(folder / "star.png")
    segment_picture("red star", 128, seed=5).save(photo)
    db = str(tmp_path / "g.db")
    with Gallery(db, demo) as g:
        g.index(str(folder))
        both = g.search("a red star", k=5)
        assert {r.path for r in both} == {video, photo}
        assert {r.path: r.kind for r in both} == {video: "video", photo: "photo"}
        assert next(r for r in both if r.kind == "photo").time_s is None
        assert [r.path for r in g.search("a red star", media="video")] == [video]
        assert [r.path for r in g.search("a red star", media="photo")] == [photo]
        assert [r.path for r in g.search("a red star", min_duration=5)] == [video]  # no photo has a duration
        assert g.search("a red star", max_duration=5) == []
        assert [r.path for r in g.search("a red star", folders=str(tmp_path / "elsewhere"))] == []
        assert g.count(Filter.parse(media="video")) == g.count(Filter.parse(media="photo")) == 1


def test_bad_videos_are_skipped_with_their_reasons_and_the_run_goes_on(tmp_path, demo):
    folder = tmp_path / "bad"
    folder.mkdir()
    bad = hostile(str(folder))
    db = str(tmp_path / "g.db")
    with Gallery(db, demo) as g:
        summary = g.index(str(folder))
    reasons = {s.path: s.reason for s in summary.skipped}
    for name, (path, word) in bad.items():
        assert word in reasons.get(path, ""), (name, reasons.get(path))
    good = set(map(str, folder.iterdir())) - {p for p, _ in bad.values()}  # the clips hostile() made from
    assert summary.total == len(good) == 3 and not good & set(reasons)
    with Gallery(db, Counting(demo)) as g:  # unchanged bad files are not tried again
        again = g.index(str(folder))
        assert again.skipped == [] and g._encoder.images == 0


def test_an_older_gallery_is_upgraded_in_place(tmp_path, shapes, demo):
    folder, video = shapes
    photos = tmp_path / "photos"
    photos.mkdir()
    segment_picture("red star", 128).save(photos / "star.png")
    db = str(tmp_path / "g.db")
    with Gallery(db, demo) as g:
        g.index(str(photos))
    downgrade_to_3(db)  # the schema of the release before videos, its rows as they were
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("3",)
    old = conn.execute("SELECT id, path, hash, vector FROM files").fetchall()
    conn.close()
    counting = Counting(demo)
    with Gallery(db, counting) as g:
        summary = g.index([str(photos), str(folder)])
        assert (summary.added, summary.unchanged, counting.pixels) == (1, 1, 0)  # the photo kept as it was
        assert g.store.meta("schema_version") == "4"
        assert g.store.conn.execute("SELECT id, path, hash, vector FROM files WHERE kind = 0").fetchall() == old
        assert {r.kind for r in g.search("a red star", k=2)} == {"video", "photo"}


def downgrade_to_3(db):
    """Schema 3 exactly (`store._MIGRATIONS` up to 3): no moments, no kind or duration columns."""
    if sqlite3.sqlite_version_info < (3, 35):
        pytest.skip("SQLite before 3.35 cannot drop a column")
    conn = sqlite3.connect(db)
    for stmt in ("DROP TRIGGER files_moments_gone", "DROP TABLE moments", "DROP INDEX files_facets",
                 "ALTER TABLE files DROP COLUMN kind", "ALTER TABLE files DROP COLUMN duration_s",
                 "CREATE INDEX files_facets ON files(path, width, height, mtime_ns, taken_ns)",
                 "UPDATE meta SET value = '3' WHERE key = 'schema_version'"):
        conn.execute(stmt)
    conn.commit()
    conn.close()


def test_the_watcher_follows_video_names():
    from clipseek.gallery.watch import _Changes

    changes = _Changes([])
    assert changes.relevant("/p/clip.MP4", False) and changes.relevant("/p/a.webm", False)
    assert changes.relevant("/p/a.jpg", False) and not changes.relevant("/p/a.txt", False)
    assert not changes.relevant("/p/.clip.mp4", False)  # a hidden temp copy
