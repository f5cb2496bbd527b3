"""Filesystem helpers shared by every floor: the cache folder, atomic writes and writer locks.

Every file clipseek writes for keeps (reports, shards, indexes, checkpoints, thumbnails, manifests)
goes through here: written under a temp name unique to this process and call, flushed, then renamed
into place, so a reader sees the old file or the new one, never half of one, and two processes
writing the same target never share a temp file.

One writer at a time (`writer_lock`): a gallery database or an embedding folder is written by one
process; a second one exits at once with one line naming the holder. The lock is an `flock` on a
small file beside the target, so the kernel drops it when its holder dies (kill -9 included): a lock
is never stale, whatever the lock file still says.

Litter after a kill. A temp name carries its owner's pid (`temp_name`: `NAME.tmp-<pid>-<random>`,
hidden ones `.NAME.tmp-...`). `remove_stale_temps` removes the temps whose owner is gone: no process
with that pid runs on this machine, or the one that does started after the temp was last changed (the
pid was reused). `atomic_dir` calls it for its own target (`remove_stale_dirs`), so the next export,
report or checkpoint cleans what a killed one left, and so does every use of the ONNX cache for its
entry; `dupes --move-extras-to` and `--sort-into` call it on their destination folder. A temp of a
running process is never touched.
"""

from __future__ import annotations

import datetime
import json
import os
import re
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


_TEMP = re.compile(r"\.(tmp|old)-(\d+)-[0-9a-f]{8}$")


def _boot_time() -> float | None:
    try:
        with open("/proc/stat") as f:
            return next(float(line.split()[1]) for line in f if line.startswith("btime "))
    except (OSError, StopIteration, ValueError, IndexError):
        return None


def process_start(pid: int) -> float | None:
    """When process `pid` started (seconds since the epoch; Linux /proc), None when unknown."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        boot = _boot_time()
        return None if boot is None else boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def owner_alive(pid: int, since: float) -> bool:
    """Whether process `pid`, running here, could have made a file last changed at `since`
    (a ctime: it cannot be set back): it runs, and (where /proc tells) it started before that."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process: alive
    except (OSError, OverflowError):
        return False
    started = process_start(pid)
    return started is None or started <= since + 2.0  # slack: /proc's boot time is whole seconds


def remove_stale_temps(folder: str | os.PathLike, target: str | None = None, recursive: bool = False,
                       old: bool = True) -> list[str]:
    """Remove the temp files and folders (`[.]NAME.tmp-<pid>-<hex8>`, and `atomic_dir`'s
    `.NAME.old-...` unless `old` is false) in `folder` (and below it, `recursive`) whose owner process
    is gone (`owner_alive`); only those of the name `target` when given. Returns what was removed.
    Errors (a folder that vanished, no permission) are ignored: it is a clean-up."""
    removed = []
    folder = os.fspath(folder)
    tops = os.walk(folder) if recursive else [(folder, None, None)]
    for dirpath, _, _ in tops:
        try:
            entries = list(os.scandir(dirpath))
        except OSError:
            continue
        for entry in entries:
            m = _TEMP.search(entry.name)
            if not m or (m.group(1) == "old" and not old):
                continue
            if target is not None and entry.name[:m.start()] not in (target, "." + target):
                continue
            try:
                st = entry.stat(follow_symlinks=False)
                if owner_alive(int(m.group(2)), st.st_ctime):
                    continue
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path)
                else:
                    os.remove(entry.path)
                removed.append(entry.path)
            except OSError:
                continue
    return removed


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
        except OSError:  # never made (a read-only folder), or already gone
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
    remove_stale_dirs(out)
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


def remove_stale_dirs(out: str | os.PathLike) -> None:
    """What a killed `atomic_dir` of `out` left: its temp folders, and, when `out` is in place (so they
    are older copies), its `.old-*` folders; without `out` an `.old-*` is the complete folder that
    `recover_dir` puts back, so it stays."""
    out = Path(out)
    remove_stale_temps(out.parent, out.name, old=out.exists())


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
    just removed sees that its path now names another file (or none) and tries again. An OSError
    making the lock file (a read-only folder) propagates; a full disk only loses the note naming the
    holder."""
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
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(info, ensure_ascii=True).encode(), 0)
        except OSError:  # no space for the note: the flock alone is the lock
            pass
        yield
    finally:
        try:
            os.unlink(path)  # still held: no other process holds this file
        except OSError:
            try:
                os.ftruncate(fd, 0)  # a folder we may not write in: at least no stale holder
            except OSError:
                pass
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
