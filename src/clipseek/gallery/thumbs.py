"""Thumbnails for a gallery, made once and cached on disk, and browser-safe copies of originals.

The cache is content-addressed (`<dir>/<hash[:2]>/<hash>-<size>.jpg`, the file's blake2b from the
store), so a changed file gets a new thumbnail and a recreated database never shows stale ones.
Writes go to a temporary file and are renamed into place, so concurrent requests for the same
thumbnail are harmless and a killed process leaves no half-written JPEG. Thumbnails are made from an
image already decoded (from the bytes the server checked, `server.files`), never by opening a path,
and a cached one is read without following a link.
"""

from __future__ import annotations

import io
import os
import re
import stat

from PIL import Image

from clipseek._io import atomic_write_bytes

THUMB_SIZE = 320
# Formats every browser displays as they are; anything else (TIFF, HEIC, ...) is sent as a JPEG copy.
WEB_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".gif": "image/gif",
             ".webp": "image/webp", ".bmp": "image/bmp", ".avif": "image/avif"}
# The same by content: Pillow's format name of the decoded file -> the media type it is sent with.
WEB_FORMATS = {"JPEG": "image/jpeg", "MPO": "image/jpeg", "PNG": "image/png", "GIF": "image/gif",
               "WEBP": "image/webp", "BMP": "image/bmp", "AVIF": "image/avif"}
_HASH = re.compile(r"[0-9a-f]{1,128}")
_READ_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
MAX_THUMB_BYTES = 8 << 20


def thumbnail_path(cache_dir: str, file_hash: str, size: int = THUMB_SIZE) -> str:
    """Where the thumbnail of content `file_hash` lives; ValueError for anything but a hex hash."""
    if not isinstance(file_hash, str) or not _HASH.fullmatch(file_hash):
        raise ValueError(f"not a content hash: {file_hash!r}")  # never a path from outside
    return os.path.join(cache_dir, file_hash[:2], f"{file_hash}-{size}.jpg")


def cached_thumbnail(out: str) -> bytes | None:
    """The bytes of the cached thumbnail at `out` (a regular file, no link followed), else None."""
    try:
        fd = os.open(out, _READ_FLAGS)
    except (OSError, ValueError):
        return None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or not 0 < st.st_size <= MAX_THUMB_BYTES:
            return None
        return f.read(MAX_THUMB_BYTES)


def save_thumbnail(img: Image.Image, out: str, size: int = THUMB_SIZE) -> bytes:
    """Make the thumbnail (longest side <= size) of the decoded `img`, cache it at `out`, return it."""
    img = img.copy()
    img.thumbnail((size, size), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=85, optimize=True)
    data = buf.getvalue()
    os.makedirs(os.path.dirname(out), exist_ok=True)
    atomic_write_bytes(out, data)
    return data


def media_type(fmt: str | None) -> str | None:
    """The media type to send a file of Pillow format `fmt` with as it is, or None: convert it."""
    return WEB_FORMATS.get(fmt or "")


def as_jpeg(img: Image.Image) -> bytes:
    """A full-size JPEG of a decoded image browsers cannot show as it is (TIFF, HEIC...)."""
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=92)
    return buf.getvalue()
