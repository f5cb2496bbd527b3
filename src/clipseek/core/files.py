"""Read a file only when it is a regular file of bounded size, with the right reason when it is not.

Every local image read goes through here (`open_regular`, `read_regular`). The type is checked after
following symbolic links, so a FIFO, a device (`/dev/zero`), a socket or a directory named like an
image is refused with its kind before anything opens it for reading (opening a FIFO blocks until a
writer comes; reading `/dev/zero` never ends). The file is then opened non-blocking and checked again
on the open descriptor, so a file swapped for a FIFO between the two checks cannot hang the reader.
A dangling symbolic link and a symbolic link loop are reported as such, not as "file not found".
"""

from __future__ import annotations

import errno
import os
import stat
from typing import BinaryIO

from clipseek.errors import ImageError

DEFAULT_MAX_FILE_MB = 256
DEFAULT_MAX_PIXELS = 64_000_000  # core.images' limit; here so the CLI can show it without loading Pillow
MB = 1 << 20

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def file_kind(mode: int) -> str:
    """What a non-regular file is, in words ("a FIFO", "a character device", ...)."""
    return next((word for test, word in _KINDS if test(mode)), "not a plain file")


def _missing_reason(path: str) -> str:
    """Why `os.stat(path)` found nothing: a dangling symbolic link, or no such file."""
    try:
        if stat.S_ISLNK(os.lstat(path).st_mode):
            return "broken symbolic link (its target does not exist)"
    except OSError:
        pass
    return "file not found"


def _stat_reason(path: str, e: OSError) -> str:
    if isinstance(e, FileNotFoundError):
        return _missing_reason(path)
    if e.errno == errno.ELOOP:
        return "symbolic link loop"
    if e.errno == errno.ENAMETOOLONG:
        return too_long_reason(path)
    if isinstance(e, PermissionError):
        return "permission denied"
    if isinstance(e, NotADirectoryError):
        return "file not found"
    return f"cannot read: {e.strerror or e}"


def too_long_reason(path: str) -> str:
    """Why a path the system refuses as too long (ENAMETOOLONG) cannot be opened, with the limit."""
    raw = os.fsencode(path)
    name_max, path_max = _limit("PC_NAME_MAX", 255), _limit("PC_PATH_MAX", 4096)
    longest = max((len(part) for part in raw.split(b"/")), default=0)
    if longest > name_max:
        return f"a name of {longest} bytes in its path, over the system's limit (NAME_MAX {name_max})"
    return f"a path of {len(raw)} bytes, over the system's limit (PATH_MAX {path_max})"


def _limit(name: str, default: int) -> int:
    try:
        return int(os.pathconf("/", name))
    except (OSError, ValueError, AttributeError):
        return default


def check_stat(path: str, st: os.stat_result, max_bytes: int) -> None:
    """Raise ImageError unless `st` (of `path`, links followed) is a non-empty regular file <= max_bytes."""
    if not stat.S_ISREG(st.st_mode):
        raise ImageError(path, f"not a regular file ({file_kind(st.st_mode)})")
    if st.st_size == 0:
        raise ImageError(path, "empty file (0 bytes)")
    if st.st_size > max_bytes:
        raise ImageError(path, f"file too large: {st.st_size / MB:,.1f} MB (the limit is "
                               f"{max_bytes / MB:,.0f} MB, --max-file-mb)")


def stat_regular(path: str, max_bytes: int = DEFAULT_MAX_FILE_MB * MB) -> os.stat_result:
    """The file's stat (links followed) when it is a readable-looking regular file, else ImageError."""
    try:
        st = os.stat(path)
    except (OSError, ValueError) as e:  # ValueError: a NUL in the name
        raise ImageError(path, _stat_reason(path, e) if isinstance(e, OSError) else "invalid file name") from None
    check_stat(path, st, max_bytes)
    return st


def open_regular(path: str, max_bytes: int = DEFAULT_MAX_FILE_MB * MB) -> tuple[BinaryIO, os.stat_result]:
    """Open a regular file for reading without ever blocking: (binary file, its fstat). ImageError else."""
    stat_regular(path, max_bytes)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as e:
        raise ImageError(path, _stat_reason(path, e)) from None
    try:
        st = os.fstat(fd)
        check_stat(path, st, max_bytes)  # the file opened is the file checked
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb"), st


def read_regular(path: str, max_bytes: int = DEFAULT_MAX_FILE_MB * MB) -> tuple[bytes, os.stat_result]:
    """All bytes of a regular file of at most `max_bytes` (checked before and while reading)."""
    f, st = open_regular(path, max_bytes)
    with f:
        try:
            data = f.read(max_bytes + 1)
        except OSError as e:
            raise ImageError(path, f"cannot read: {e.strerror or e}") from None
    if len(data) > max_bytes:  # it grew since the check
        raise ImageError(path, f"file too large: over the limit of {max_bytes / MB:,.0f} MB (--max-file-mb)")
    if not data:
        raise ImageError(path, "empty file (0 bytes)")
    return data, st


HASH_CHUNK = 1 << 20  # bytes read at a time by `hash_regular`: memory stays at one chunk whatever the size


def hash_regular(path: str, max_bytes: int | None = None, chunk: int = HASH_CHUNK) -> tuple[str, os.stat_result]:
    """(blake2b-128 hex digest of the file's bytes, its fstat), read in `chunk`s: the digest is the one
    `hashlib.blake2b(data, digest_size=16)` gives for the whole content (as images are hashed), for a
    file of any size (a video of gigabytes) in bounded memory. Only a regular file is read
    (`open_regular`); `max_bytes` None means no size limit."""
    import hashlib

    f, st = open_regular(path, max_bytes if max_bytes is not None else 1 << 62)
    h = hashlib.blake2b(digest_size=16)
    with f:
        try:
            while block := f.read(chunk):
                h.update(block)
        except OSError as e:
            raise ImageError(path, f"cannot read: {e.strerror or e}") from None
    return h.hexdigest(), st
