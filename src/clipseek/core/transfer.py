"""One file to another place and back, never overwriting: move, copy or link, and their undo.

- move: `rename` (atomic) on one filesystem; across filesystems copy to a hidden temp name beside the
  destination, fsync, rename into place, fsync the folder, then unlink the source.
- copy: the same copy-fsync-rename, the source stays.
- link: a hard link; a symbolic link (absolute) where hard links cannot be made (another filesystem).
Each returns a problem string instead of raising for what can happen to one file (it vanished, the
destination appeared meanwhile), so a run of many files goes on and reports them.
"""

from __future__ import annotations

import errno
import filecmp
import glob
import os
import shutil

from clipseek._io import fsync_dir, temp_name

MODES = ("copy", "link", "move")


def _rename(src: str, dst: str) -> None:
    os.rename(src, dst)  # a seam for tests that simulate another filesystem


def _copy_into_place(src: str, dst: str) -> str | None:
    """Copy src to dst through a hidden temp file (fsynced, then renamed). None, or the problem."""
    tmp = temp_name(dst, hidden=True)
    try:
        shutil.copy2(src, tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        if os.path.lexists(dst):
            os.remove(tmp)
            return "the destination appeared meanwhile; not overwritten"
        os.rename(tmp, dst)
    except FileNotFoundError:
        _remove_quietly(tmp)
        return "the file disappeared before it could be copied"
    except BaseException:
        _remove_quietly(tmp)
        raise
    fsync_dir(os.path.dirname(dst))
    return None


def _remove_quietly(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


def _move(src: str, dst: str) -> str | None:
    try:
        _rename(src, dst)
        return None
    except FileNotFoundError:
        return "the file disappeared between listing and moving"
    except OSError as e:
        if e.errno != errno.EXDEV:
            raise
    problem = _copy_into_place(src, dst)  # another filesystem
    if problem is None:
        os.unlink(src)
        fsync_dir(os.path.dirname(src))
    return problem


def _link(src: str, dst: str) -> str | None:
    try:
        os.link(src, dst)
    except FileNotFoundError:
        return "the file disappeared between listing and linking"
    except FileExistsError:
        return "the destination appeared meanwhile; not overwritten"
    except OSError as e:
        if e.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
            raise
        os.symlink(os.path.abspath(src), dst)
    return None


def transfer_one(src: str, dst: str, mode: str) -> str | None:
    """Put `src` at `dst` by `mode`; None when done, else why not (nothing was overwritten)."""
    if not os.path.lexists(src):
        return "the file disappeared between listing and moving"
    if os.path.lexists(dst):
        return "the destination appeared meanwhile; not overwritten"
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    if mode == "move":
        return _move(src, dst)
    if mode == "copy":
        return _copy_into_place(src, dst)
    return _link(src, dst)


def _same_bytes(a: str, b: str) -> bool:
    try:
        return filecmp.cmp(a, b, shallow=False)
    except OSError:
        return False


def leftover_temps(dst: str) -> list[str]:
    """Hidden temp files of an interrupted copy to `dst` (see `_copy_into_place`)."""
    head, tail = os.path.split(dst)
    return glob.glob(os.path.join(glob.escape(head), f".{glob.escape(tail)}.tmp-*"))


def undo_one(src: str, dst: str, mode: str) -> tuple[str, str | None]:
    """Reverse one transfer: ("restored" | "untouched" | "kept", problem or None)."""
    for tmp in leftover_temps(dst):
        _remove_quietly(tmp)
    at_src, at_dst = os.path.lexists(src), os.path.lexists(dst)
    if not at_dst:
        return ("untouched", None) if at_src else ("kept", "the file is in neither place")
    if mode == "move":
        if not at_src:
            os.makedirs(os.path.dirname(src), exist_ok=True)
            problem = _move(dst, src)
            return ("kept", problem) if problem else ("restored", None)
        if _same_bytes(src, dst):  # a move across filesystems killed before unlinking its source
            os.unlink(dst)
            return "restored", None
        return "kept", "the file exists in both places and they differ; both left alone"
    if mode == "link":
        same = os.path.islink(dst) and os.readlink(dst) == os.path.abspath(src) or \
            at_src and os.path.samefile(src, dst)
        if not same:
            return "kept", "the destination is no longer a link to the source; left alone"
        os.unlink(dst)
        return "restored", None
    if not at_src:
        return "kept", "the source is gone, so the copy is kept"
    if not _same_bytes(src, dst):
        return "kept", "the copy was changed since; left alone"
    os.unlink(dst)
    return "restored", None
