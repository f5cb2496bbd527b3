"""Keep a gallery in step with its folders: after a first pass, file events trigger batched re-syncs.

Events come from `watchdog`: the operating system's notifications (inotify, FSEvents, ...) or, with
`poll=True`, on network filesystems (NFS, SMB, sshfs: their changes made elsewhere raise no local
events) and wherever notifications cannot be set up, a polling observer that compares directory
snapshots every `interval` seconds. Events only mark the folders dirty; a batch runs once no event has
come for `quiet` seconds (or `max_wait` after the first one, for an endless stream), and a batch is one
ordinary sync of the folders (`apply`: scan, plan by size/mtime/content hash, commit per transaction),
so new, changed, moved and deleted files are all handled by the same tested code, and a camera import
of 500 files is one batch. A watched folder that disappears or is unmounted (its device/inode changes)
stops the watcher with `WatchStopped` before any sync could mistake it for an empty folder; `check`
(the gallery's `check_database`) runs at the same moments, so a database deleted or replaced meanwhile
stops it too (`dbfile.DatabaseGone`) instead of committing into a file that is no longer there.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Callable, Generic, Sequence, TypeVar

from clipseek.core.images import IMAGE_EXTENSIONS
from clipseek.core.video.names import VIDEO_EXTENSIONS
from clipseek.errors import ClipseekError

T = TypeVar("T")
QUIET = 1.0          # seconds without events before a batch runs
MAX_WAIT = 10.0      # a batch at least this often while events keep coming
POLL_INTERVAL = 2.0  # seconds between snapshots in polling mode
TICK = 0.2           # how often the loop checks the folders and the clock
NETWORK_FS = {"nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "afs", "ceph", "glusterfs", "davfs",
              "fuse.sshfs", "fuse.rclone", "fuse.s3fs", "fuse.gcsfuse", "lustre", "beegfs"}
IGNORED_EVENTS = {"opened", "closed_no_write"}


class WatchStopped(ClipseekError):
    """A watched folder was deleted or unmounted."""


def filesystem_type(path: str, mounts: str = "/proc/mounts") -> str | None:
    """The type of the filesystem holding `path` (Linux /proc/mounts), or None when unknown."""
    try:
        with open(mounts, encoding="utf-8") as f:
            entries = [line.split()[1:3] for line in f if len(line.split()) >= 3]
    except OSError:
        return None
    real = os.path.realpath(path)
    best, kind = "", None
    for mount, fstype in entries:
        mount = mount.replace("\\040", " ")
        if (real == mount or real.startswith(mount.rstrip("/") + "/")) and len(mount) >= len(best):
            best, kind = mount, fstype
    return kind


class _Changes:
    """watchdog event handler: remembers when the last relevant event came, and the first since the
    last batch. Hidden files (temp copies), files neither images nor videos and ignored folders are
    not relevant."""

    def __init__(self, ignore: Sequence[str]):
        self.ignore = tuple(p.rstrip(os.sep) + os.sep for p in ignore)
        self.lock = threading.Lock()
        self.first: float | None = None
        self.last = 0.0
        self.count = 0

    def relevant(self, path: str, is_dir: bool) -> bool:
        if not path or path.startswith(self.ignore) or (path + os.sep).startswith(self.ignore):
            return False
        if any(part.startswith(".") for part in path.split(os.sep)[1:]):
            return False
        return is_dir or os.path.splitext(path)[1].lower() in IMAGE_EXTENSIONS | VIDEO_EXTENSIONS

    def dispatch(self, event) -> None:
        if event.event_type in IGNORED_EVENTS or (event.is_directory and event.event_type == "modified"):
            return
        paths = [os.fsdecode(event.src_path), os.fsdecode(getattr(event, "dest_path", "") or "")]
        if not any(self.relevant(p, event.is_directory) for p in paths):
            return
        with self.lock:
            now = time.monotonic()
            self.first = self.first if self.first is not None else now
            self.last = now
            self.count += 1

    def due(self, quiet: float, max_wait: float) -> bool:
        """True (and reset) when a batch should run now."""
        with self.lock:
            now = time.monotonic()
            if self.first is None or (now - self.last < quiet and now - self.first < max_wait):
                return False
            self.first = None
            return True


class Watcher(Generic[T]):
    """Run `apply()` once, then again after each burst of changes under `roots`, until stopped."""

    def __init__(self, roots: Sequence[str], apply: Callable[[], T],
                 on_batch: Callable[[T], None] | None = None, poll: bool = False,
                 interval: float = POLL_INTERVAL, quiet: float = QUIET, max_wait: float = MAX_WAIT,
                 ignore: Sequence[str] = (), check: Callable[[], None] | None = None):
        self.roots = [os.path.abspath(r) for r in roots]
        self.apply, self.on_batch, self.check = apply, on_batch, check
        self.interval, self.quiet, self.max_wait = interval, quiet, max_wait
        self.changes = _Changes(ignore)
        self.identity = {r: self._identity(r) for r in self.roots}
        self.why_polling = "asked for (--poll)" if poll else self._network_root()
        self.observer = None
        self.batches = 0

    @staticmethod
    def _identity(root: str) -> tuple[int, int] | None:
        try:
            st = os.stat(root)
        except OSError:
            return None
        return (st.st_dev, st.st_ino) if os.path.isdir(root) else None

    def _network_root(self) -> str | None:
        for r in self.roots:
            kind = filesystem_type(r)
            if kind in NETWORK_FS:
                return f"{r} is on a network filesystem ({kind})"
        return None

    @property
    def mode(self) -> str:
        return "polling" if self.why_polling else "events"

    def check_roots(self) -> None:
        for r in self.roots:
            now = self._identity(r)
            if now is None or now != self.identity[r]:
                what = "deleted" if now is None else "unmounted or replaced"
                raise WatchStopped(f"watched folder {r} was {what}; stopped watching")
        if self.check is not None:
            self.check()

    def start(self) -> None:
        """Start receiving events (before the first pass, so nothing between the two is missed)."""
        from watchdog.observers import Observer
        from watchdog.observers.polling import PollingObserver

        self.check_roots()
        if not self.why_polling:
            try:
                self.observer = self._schedule(Observer())
                return
            except OSError as e:  # e.g. the inotify watch or instance limit is reached
                self.why_polling = f"file events are not available here ({e.strerror or e})"
        self.observer = self._schedule(PollingObserver(timeout=self.interval))

    def _schedule(self, observer):
        for r in self.roots:
            observer.schedule(self.changes, r, recursive=True)
        try:
            observer.start()
        except BaseException:
            observer.unschedule_all()
            raise
        return observer

    def stop(self) -> None:
        if self.observer is not None:
            self.observer.stop()
            self.observer.join(timeout=5)
            self.observer = None

    def run(self, stop: threading.Event | None = None, first_pass: bool = True) -> None:
        """First pass, then batches until `stop` is set; KeyboardInterrupt and WatchStopped propagate
        after the observer is stopped. Every batch is committed by `apply` before the next starts."""
        stop = stop or threading.Event()
        if self.observer is None:
            self.start()
        try:
            if first_pass:
                self._batch()
            while not stop.wait(TICK):
                self.check_roots()
                if self.changes.due(self.quiet, self.max_wait):
                    self._batch()
        finally:
            self.stop()

    def _batch(self) -> None:
        self.check_roots()
        try:
            result = self.apply()
        except Exception:
            self.check_roots()  # a folder deleted during the batch: say that (WatchStopped), not its error
            raise
        self.batches += 1
        if self.on_batch:
            self.on_batch(result)
