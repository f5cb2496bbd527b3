"""The one way the server reads a gallery file: only the file the index names, inside the gallery.

`open_indexed(...)` opens a file, and `Opened.read` gives its bytes, only when all of this holds, else `Refused` with
the reason:
- its path, with every link resolved, lies inside one of the gallery's roots (`gallery.roots`) —
  a link inside the gallery to a picture elsewhere in it is served, a link that leads out is not;
- it is opened from the root downwards one folder at a time, never following a link
  (`O_NOFOLLOW`, `dir_fd`), so a link swapped in after the check (for the file or for a folder on
  the way) is not followed;
- the opened descriptor (`fstat`) is a regular file of the size and modification time the index
  recorded (a FIFO or device swapped in is refused, and nothing blocks on it);
- its bytes decode as an image (`image_format`, with the pixel limit), decoded from those bytes and
  never by opening the path again.
"""

from __future__ import annotations

import errno
import io
import os
import stat
from dataclasses import dataclass
from typing import Sequence

from clipseek.core.files import DEFAULT_MAX_FILE_MB, MB

_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_FILE_FLAGS = (os.O_RDONLY | _NOFOLLOW | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
               | getattr(os, "O_CLOEXEC", 0))


class Refused(Exception):
    """The file is not served; `reason` says why, without naming anything outside the gallery."""

    def __init__(self, reason: str, gone: bool = False, changed: bool = False):
        super().__init__(reason)
        self.reason, self.gone, self.changed = reason, gone, changed


@dataclass(frozen=True)
class Opened:
    fd: int
    size: int

    def read(self) -> bytes:
        chunks, left = [], self.size + 1
        while left > 0:
            try:
                block = os.read(self.fd, min(left, 1 << 20))
            except OSError as e:
                raise Refused(f"its file cannot be read ({e.strerror})") from None
            if not block:
                break
            chunks.append(block)
            left -= len(block)
        data = b"".join(chunks)
        if len(data) != self.size:
            raise Refused("its file changed while it was read")
        return data


def _inside(real: str, roots: Sequence[str]) -> tuple[str, list[str]] | None:
    """(real root, the path's parts below it) for the deepest root holding `real`, else None."""
    best = None
    for root in roots:
        try:
            r = os.path.realpath(root)
        except (OSError, ValueError):
            continue
        base = r.rstrip(os.sep) + os.sep
        if real.startswith(base) and len(real) > len(base) and (best is None or len(r) > len(best[0])):
            best = (r, real[len(base):].split(os.sep))
    return best


def _open_beneath(root: str, parts: list[str]) -> int:
    """Open root/parts... one component at a time, following no link (the parts were resolved)."""
    if os.open not in os.supports_dir_fd or not _NOFOLLOW:  # no openat: the resolved path, final link refused
        return os.open(os.path.join(root, *parts), _FILE_FLAGS)
    fd = os.open(root, _DIR_FLAGS)
    try:
        for part in parts[:-1]:
            step = os.open(part, _DIR_FLAGS | _NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = step
        return os.open(parts[-1], _FILE_FLAGS, dir_fd=fd)
    finally:
        os.close(fd)


def open_indexed(path, roots: Sequence[str], size: int, mtime_ns: int,
                 max_bytes: int = DEFAULT_MAX_FILE_MB * MB) -> Opened:
    """The open file the index names (see the module's rules); close `.fd` when done. Refused else."""
    if not isinstance(path, str) or "\0" in path or not os.path.isabs(path):
        raise Refused("its path in the index is not a usable file name")
    try:
        real = os.path.realpath(path)
    except (OSError, ValueError):
        raise Refused("its path cannot be resolved") from None
    where = _inside(real, roots)
    if where is None:
        raise Refused("its file lies outside the gallery's folders (a link leading out?)")
    try:
        fd = _open_beneath(*where)
    except OSError as e:
        gone = e.errno in (errno.ENOENT, errno.ENOTDIR)
        raise Refused("its file is gone" if gone else "its file cannot be opened without following a "
                      f"link ({e.strerror})", gone=gone) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise Refused("its file is no longer a regular file")
        if (st.st_size, st.st_mtime_ns) != (size, mtime_ns):
            raise Refused("changed on disk since it was indexed", changed=True)
        if st.st_size > max_bytes:
            raise Refused(f"its file is over the limit of {max_bytes / MB:,.0f} MB")
    except BaseException:
        os.close(fd)
        raise
    return Opened(fd, st.st_size)


def image_format(data: bytes, max_pixels: int, long_side: int | None = None):
    """(Pillow's format name, the decoded RGB image at thumbnail scale or better: its long side at
    least `long_side` when given) of `data`, which must decode as a whole image within `max_pixels`;
    Refused else."""
    from PIL import Image

    from clipseek.core.images import open_image_bytes
    from clipseek.errors import ImageError
    from clipseek.gallery.thumbs import THUMB_SIZE

    try:
        img = open_image_bytes(data, name="file", max_pixels=max_pixels, draft_size=THUMB_SIZE,
                               draft_long=long_side)
        with Image.open(io.BytesIO(data)) as probe:
            return probe.format, img
    except ImageError as e:
        raise Refused(f"its file is not a usable image ({e.reason})") from None
    except Exception:  # Pillow's many exception types for data that is not an image
        raise Refused("its file is not an image") from None
