"""Filesystem helpers shared by every floor: the cache folder, atomic writes and writer locks.

Every file clipseek writes for keeps (reports, shards, indexes, checkpoints, thumbnails, manifests)
goes through here: written under a temp name unique to this process and call, flushed, then renamed
into place, so a reader sees the old file or the new one, never half of one, and two processes
writing the same target never share a temp file.

One writer at a time (`writer_lock`): a gallery database or an embedding folder is written by one
process; a second one exits at once with one line naming the holder. The lock is an `flock` on a
small file beside the target, so the kernel drops it when its holder dies (kill -9 included): a lock
is never stale, whatever the lock file still says.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import socket
import sys
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no locking
    fcntl = None


def default_cache_dir() -> Path:
    if os.environ.get("CLIPSEEK_CACHE"):
        return Path(os.environ["CLIPSEEK_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "clipseek"


def temp_name(path: str | os.PathLike, hidden: bool = False) -> str:
    """A sibling of `path` no other process or call will pick: `<path>.tmp-<pid>-<random>`."""
    p = os.fspath(path)
    head, tail = os.path.split(p)
    if hidden:
        tail = "." + tail
    return os.path.join(head, f"{tail}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def fsync_dir(folder: str) -> None:
    """Make a rename or unlink in `folder` durable (best effort: some filesystems refuse)."""
    try:
        fd = os.open(folder or ".", os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, write: Callable[[str], None], durable: bool = False) -> None:
    """Call `write(tmp_path)` to produce the file, then rename it onto `path`. On any failure the temp
    file is removed and `path` is untouched. `durable` also fsyncs the file and its folder."""
    target = os.fspath(path)
    tmp = temp_name(target)
    try:
        write(tmp)
        if durable:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, target)
        if durable:
            fsync_dir(os.path.dirname(os.path.abspath(target)))
    except BaseException:
        try:
            os.remove(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes, durable: bool = False) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)
    atomic_write(path, write, durable)


def atomic_write_text(path: str | os.PathLike, text: str, durable: bool = False) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), durable)


def atomic_write_json(path: str | os.PathLike, doc, indent: int | None = 1, durable: bool = False) -> None:
    atomic_write_text(path, json.dumps(doc, indent=indent) + "\n", durable)


@contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Build a folder under a temp name (yielded), then swap it in for `path` in one rename.

    An existing `path` is renamed aside first and deleted only after the new one is in place, so at
    every moment `path` or its `.old-*` sibling holds a complete folder (`recover_dir` finds it)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(temp_name(out, hidden=True))
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def recover_dir(path: str | os.PathLike) -> Path | None:
    """After a kill between `atomic_dir`'s two renames, put the complete folder back at `path`.

    Returns the folder now at `path`, or None when there is none."""
    out = Path(path)
    if out.exists():
        return out
    olds = sorted(out.parent.glob(f".{out.name}.old-*"), key=lambda p: p.stat().st_mtime, reverse=True)
    if olds:
        os.replace(olds[0], out)
        return out
    return None


def _holder(fd: int) -> str:
    """What the lock file says about the process holding it."""
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode("utf-8", "replace") or "{}")
    except (OSError, ValueError):
        info = {}
    if not info.get("pid"):
        return "a clipseek process"
    return (f"pid {info['pid']} on {info.get('host', '?')}, started {info.get('since', '?')}: "
            f"{info.get('command', '?')}")


@contextmanager
def writer_lock(lock_path: str | os.PathLike, target: str,
                error: Callable[[str], Exception] = BlockingIOError) -> Iterator[None]:
    """Hold the one-writer lock of `target` (its lock file is `lock_path`) for the block, or raise
    `error(message)` at once (clipseek.errors.BusyError from the callers), naming the holder. The lock
    file exists only while it is held: the holder removes it before it lets go, so a run that fails
    (a model that does not load) leaves nothing behind; a process that locked a file the holder had
    just removed sees that its path now names another file (or none) and tries again."""
    if fcntl is None:  # pragma: no cover
        yield
        return
    path = os.fspath(lock_path)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise error(f"{target} is being written by another process ({holder}); wait for it "
                        "to finish, or stop it, then run again") from None
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)  # locked a file its holder removed on the way out: lock the one there now
    try:
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "since": datetime.datetime.now().isoformat(timespec="seconds"),
                "command": " ".join(["clipseek", *sys.argv[1:]])[:300]}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info, ensure_ascii=True).encode(), 0)
        yield
    finally:
        try:
            os.unlink(path)  # still held: no other process holds this file
        except OSError:
            os.ftruncate(fd, 0)  # a folder we may not write in: at least no stale holder
        os.close(fd)  # releases the lock


@contextmanager
def short_lock(lock_path: str | os.PathLike) -> Iterator[bool]:
    """A lock held for a short write (a cache file two processes may both save): waits for it.
    Yields False, taking no lock, when the lock file cannot be created (a read-only folder)."""
    try:
        fd = os.open(os.fspath(lock_path), os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
    except OSError:
        yield False
        return
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield True
    finally:
        os.close(fd)
