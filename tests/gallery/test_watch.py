"""The watcher: add / modify / move / delete picked up in batches, bursts as one batch, a deleted
folder stops it (polling mode with short intervals; one test with the OS's file events)."""

import os
import queue
import shutil
import sys
import threading

import pytest

from clipseek.gallery import watch as watch_mod
from clipseek.gallery.gallery import Gallery
from clipseek.gallery.watch import Watcher, WatchStopped, filesystem_type
from helpers import image_folder, make_image


class Running:
    """A Watcher on its own thread (its Gallery opened there); batches arrive on a queue."""

    def __init__(self, db, encoder, root, poll=True, **kw):
        self.batches: queue.Queue = queue.Queue()
        self.own = []
        self.error = None

        def apply():
            if not self.own:
                self.own.append(Gallery(str(db), encoder))
            return self.own[0].index([str(root)])

        self.watcher = Watcher([str(root)], apply, self.batches.put, poll=poll,
                               **{"interval": 0.1, "quiet": 0.4, **kw})
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        self.first = self.next()

    def _run(self):
        try:
            self.watcher.run(self.stop)
        except BaseException as e:
            self.error = e
        finally:
            for g in self.own:
                g.close()

    def next(self, timeout=15):
        return self.batches.get(timeout=timeout)

    def close(self):
        self.stop.set()
        self.thread.join(10)
        assert not self.thread.is_alive()


@pytest.fixture
def root(tmp_path):
    d = image_folder(tmp_path / "photos", 3)
    (d / "sub").mkdir()
    return d


def test_add_modify_move_delete(tmp_path, encoder, root):
    w = Running(tmp_path / "g.db", encoder, root)
    try:
        assert (w.first.added, w.first.total, w.watcher.mode) == (3, 3, "polling")
        make_image(10).save(root / "new.png")
        (root / "notes.txt").write_text("not an image: no batch for this")
        b = w.next()
        assert (b.added, b.total) == (1, 4)
        make_image(11).save(root / "p0.png")             # modified content
        b = w.next()
        assert (b.updated, b.total) == (1, 4)
        os.rename(root / "p1.png", root / "sub" / "p1.png")  # moved: recognised, not re-embedded
        b = w.next()
        assert (b.moved, b.added, b.removed, b.total) == (1, 0, 0, 4)
        os.remove(root / "p2.png")
        b = w.next()
        assert (b.removed, b.total) == (1, 3)
        with pytest.raises(queue.Empty):
            w.next(timeout=1.0)                           # nothing changed: no batch
    finally:
        w.close()
    assert w.error is None
    with Gallery(str(tmp_path / "g.db")) as g:
        assert sorted(os.path.relpath(p, root) for (p,) in g.store.conn.execute("SELECT path FROM files")) == \
            ["new.png", "p0.png", os.path.join("sub", "p1.png")]


def test_a_burst_is_one_batch(tmp_path, encoder, root):
    import io

    blobs = []
    for i in range(200):
        buf = io.BytesIO()
        make_image(100 + i, (24, 24)).save(buf, "PNG")
        blobs.append(buf.getvalue())
    w = Running(tmp_path / "g.db", encoder, root, quiet=1.0)
    try:
        (root / "import").mkdir()
        for i, data in enumerate(blobs):  # a camera import: 200 files in a few tenths of a second
            (root / "import" / f"IMG_{i:04d}.png").write_bytes(data)
        b = w.next()
        assert (b.added, b.total) == (200, 203)
        with pytest.raises(queue.Empty):
            w.next(timeout=1.5)
    finally:
        w.close()
    assert w.watcher.batches == 2  # the first pass and the import


def test_deleted_folder_stops_the_watcher_and_keeps_the_index(tmp_path, encoder, root):
    w = Running(tmp_path / "g.db", encoder, root)
    shutil.rmtree(root)
    w.thread.join(10)
    assert not w.thread.is_alive()
    assert isinstance(w.error, WatchStopped) and str(w.error) == \
        f"watched folder {root} was deleted; stopped watching"
    with Gallery(str(tmp_path / "g.db")) as g:
        assert g.store.count() == 3  # not mistaken for an empty folder


def test_replaced_folder_counts_as_unmounted(tmp_path, encoder, root):
    w = Running(tmp_path / "g.db", encoder, root)
    os.rename(root, tmp_path / "elsewhere")
    root.mkdir()  # same path, another folder (what an unmount leaves behind)
    w.thread.join(10)
    assert isinstance(w.error, WatchStopped) and "unmounted or replaced" in str(w.error)


def test_file_events_mode(tmp_path, encoder, root):
    w = Running(tmp_path / "g.db", encoder, root, poll=False)
    try:
        if sys.platform.startswith("linux"):  # inotify: events must be used, not the fallback
            assert w.watcher.mode == "events", w.watcher.why_polling
        else:  # elsewhere a fallback to polling must say why
            assert w.watcher.mode == "events" or w.watcher.why_polling
        make_image(20).save(root / "sub" / "evented.png")
        assert w.next().added == 1
    finally:
        w.close()


def test_network_filesystems_are_polled(tmp_path, monkeypatch, root):
    mounts = tmp_path / "mounts"
    mounts.write_text(f"server:/export {root} nfs4 rw 0 0\n/dev/sda1 / ext4 rw 0 0\n")
    assert filesystem_type(str(root / "sub"), str(mounts)) == "nfs4"
    assert filesystem_type("/usr", str(mounts)) == "ext4"
    monkeypatch.setattr(watch_mod, "filesystem_type", lambda p: filesystem_type(p, str(mounts)))
    w = Watcher([str(root)], lambda: None)
    assert w.mode == "polling" and "network filesystem (nfs4)" in w.why_polling
