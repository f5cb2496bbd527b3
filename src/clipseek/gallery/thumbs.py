"""Thumbnails for a gallery, made once and cached on disk, and browser-safe copies of originals.

The cache is content-addressed (`<dir>/<hash[:2]>/<hash>-<size>.jpg`, the file's blake2b from the
store), so a changed file gets a new thumbnail and a recreated database never shows stale ones.
Writes go to a temporary file and are renamed into place, so concurrent requests for the same
thumbnail are harmless and a killed process leaves no half-written JPEG. Thumbnails are made from an
image already decoded (from the bytes the server checked, `server.files`), never by opening a path,
and a cached one is read without following a link. Where the gallery's folder cannot be written (a
read-only mount, a full disk) thumbnails go to the user's cache folder instead (`<cache>/thumbs`,
content-addressed alike), and when neither can be written the thumbnail is still served, uncached.
"""

from __future__ import annotations

import io
import os
import re
import stat

from PIL import Image

from clipseek._io import atomic_write_bytes, default_cache_dir

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


def thumbnail_places(cache_dir: str, file_hash: str, size: int = THUMB_SIZE) -> list[str]:
    """Where the thumbnail may be cached, in order: the gallery's folder, then the user's cache."""
    return [thumbnail_path(d, file_hash, size) for d in (cache_dir, str(default_cache_dir() / "thumbs"))]


def cached_thumbnail(places: list[str]) -> bytes | None:
    """The bytes of the first cached thumbnail among `places` (a regular file, no link followed)."""
    for out in places:
        try:
            fd = os.open(out, _READ_FLAGS)
        except (OSError, ValueError):
            continue
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(fd)
            if stat.S_ISREG(st.st_mode) and 0 < st.st_size <= MAX_THUMB_BYTES:
                return f.read(MAX_THUMB_BYTES)
    return None


def save_thumbnail(img: Image.Image, places: list[str], size: int = THUMB_SIZE) -> bytes:
    """Make the thumbnail (longest side <= size) of the decoded `img`, cache it at the first of `places`
    that can be written (none: not cached), return its bytes."""
    img = img.copy()
    img.thumbnail((size, size), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=85, optimize=True)
    data = buf.getvalue()
    for out in places:
        try:
            os.makedirs(os.path.dirname(out), exist_ok=True)
            atomic_write_bytes(out, data)
            break
        except OSError:  # a read-only or full disk: the next place
            continue
    return data


def media_type(fmt: str | None) -> str | None:
    """The media type to send a file of Pillow format `fmt` with as it is, or None: convert it."""
    return WEB_FORMATS.get(fmt or "")


def as_jpeg(img: Image.Image) -> bytes:
    """A full-size JPEG of a decoded image browsers cannot show as it is (TIFF, HEIC...)."""
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=92)
    return buf.getvalue()
