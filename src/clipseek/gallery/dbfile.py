"""The gallery database as a file: how it is opened, what a failure to write it means, and whether the
file a connection uses is still the one at its path.

Opening. A writer opens it read-write (WAL). A reader opens it read-write too where it can, so it sees
a writer's commits; in a folder it cannot write (a read-only mount, another user's folder) or on a
full disk, where SQLite cannot make the `-shm` file that WAL reading needs, it opens it read-only
(`mode=ro`), and `immutable=1` when no write-ahead log is there to read (SQLite cannot open a WAL
database read-only otherwise). Such a reader writes nothing at all: no lock, no cache.

Failures. A write that fails because the disk is full or the folder is read-only (SQLite's "database
or disk is full", "disk I/O error", "attempt to write a readonly database"; an OSError's ENOSPC,
EDQUOT, EROFS, EACCES) becomes a `StoreError` of one line that names the file and its folder; what
was committed before stays (SQLite rolls back the failed transaction only).

Identity. A database deleted or replaced while a process has it open is not noticed by SQLite: the
process goes on writing into the unlinked file, lost when it closes. `FileIdentity` remembers the
(device, inode) of the database and of its write-ahead log when opened, and `check` tells when the
path now names another file or none.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import urllib.parse

from clipseek.errors import ClipseekError

FULL, READ_ONLY, DENIED = "full", "read-only", "denied"
_SQLITE = {"database or disk is full": FULL, "attempt to write a readonly database": READ_ONLY,
           "disk i/o error": None, "unable to open database file": None}
_ERRNO = {errno.ENOSPC: FULL, errno.EDQUOT: FULL, errno.EROFS: READ_ONLY, errno.EACCES: DENIED,
          errno.EPERM: DENIED}
LOW_SPACE = 256 * 1024  # bytes free below which a vague write error is taken for a full disk


class StoreError(ClipseekError):
    """The database cannot be used: not a clipseek DB, wrong schema, another model, cannot be written."""


class DatabaseGone(StoreError):
    """The database file was deleted or replaced while this process had it open."""


def folder_of(path: str) -> str:
    return os.path.dirname(os.path.abspath(path)) or os.sep


def can_write_folder(path: str) -> bool:
    """Whether files can be made beside `path` (access() also says no on a read-only mount, for root)."""
    return os.access(folder_of(path), os.W_OK)


def connect(path: str, readonly: bool = False) -> sqlite3.Connection:
    if not readonly:
        return sqlite3.connect(path, timeout=30, isolation_level=None)  # we manage transactions
    try:
        wal = os.path.getsize(path + "-wal") > 0
    except OSError:
        wal = False
    uri = "file:" + urllib.parse.quote(os.fsencode(path)) + "?mode=ro" + ("" if wal else "&immutable=1")
    return sqlite3.connect(uri, uri=True, timeout=30, isolation_level=None)


def _disk_state(folder: str) -> str | None:
    """FULL or READ_ONLY when the file system holding `folder` says so, else None."""
    try:
        st = os.statvfs(folder)
    except OSError:
        return None
    if st.f_flag & getattr(os, "ST_RDONLY", 1):
        return READ_ONLY
    if st.f_bavail * st.f_frsize < LOW_SPACE:
        return FULL
    return None


def write_problem(e: BaseException, folder: str) -> str | None:
    """FULL, READ_ONLY, DENIED, or "io" (another disk error) when `e` is a failure to write a file in
    `folder`; None when it is something else (a locked database, a bad statement)."""
    if isinstance(e, OSError):
        kind = _ERRNO.get(e.errno)
        return kind or (_disk_state(folder) if e.errno == errno.EIO else None)
    if not isinstance(e, sqlite3.OperationalError):
        return None
    text = str(e).lower()
    match = next((k for k in _SQLITE if text.startswith(k)), None)
    if match is None:
        return None
    return _SQLITE[match] or _disk_state(folder) or ("io" if match == "disk i/o error" else None)


def write_error(path: str, e: BaseException, doing: str = "writing") -> StoreError | None:
    """The one-line StoreError for a failure to write the database `path`, or None (not a disk error)."""
    folder = folder_of(path)
    kind = write_problem(e, folder)
    if kind is None:
        return None
    if kind == FULL:
        return StoreError(f"no space left on device {doing} {path}: the file system holding {folder} is "
                          "full; what was committed before is kept. Free some space and run again")
    if kind in (READ_ONLY, DENIED):
        why = "is on a read-only file system" if kind == READ_ONLY else "is not writable (permission denied)"
        return StoreError(f"cannot write the gallery {path}: its folder {folder} {why}; readers "
                          "(search, dupes, serve) work there, index needs a folder it can write (--db)")
    return StoreError(f"disk error {doing} {path} (in {folder}): {e}; what was committed before is kept")


def identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


class FileIdentity:
    """The (device, inode) of a database and its `-wal` as they were when opened."""

    def __init__(self, path: str):
        self.path = path
        self.db = identity(path)
        self.wal = identity(path + "-wal")

    def check(self) -> None:
        """Raise DatabaseGone when the path names another file (or none) than the one opened."""
        now = identity(self.path)
        if now != self.db:
            what = "deleted" if now is None else "replaced by another file"
            raise DatabaseGone(f"the database {self.path} was {what} while clipseek had it open; "
                               "stopped (nothing more is written to it)")
        wal = identity(self.path + "-wal")
        if self.wal is None:
            self.wal = wal  # made since (the first write), kept while a connection is open
        elif wal != self.wal:
            raise DatabaseGone(f"the write-ahead log {self.path}-wal was deleted or replaced while "
                               "clipseek had the database open; stopped (nothing more is written to it)")
