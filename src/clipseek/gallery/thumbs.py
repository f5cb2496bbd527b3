"""Thumbnails for a gallery, made once and cached on disk, and browser-safe copies of originals.

Two sizes (`THUMB_SIZES`): "grid" (256 px on the long side, the result grid) and "view" (1,280 px,
the viewer), both JPEG. `clipseek index` makes both from the one decode of each new file
(`gallery.derive`), into `DB.thumbs/` (`default_thumb_dir`); the server serves them, and makes one
lazily for a gallery made by an older release.

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

GRID_SIZE, VIEW_SIZE = 256, 1280  # long side in pixels
THUMB_SIZES = {"grid": GRID_SIZE, "view": VIEW_SIZE}  # the names the server's `?size=` takes
THUMB_SIZE = GRID_SIZE
JPEG_QUALITY = {GRID_SIZE: 85, VIEW_SIZE: 82}
# Formats every browser displays as they are; anything else (TIFF, HEIC, ...) is sent as a JPEG copy.
WEB_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".gif": "image/gif",
             ".webp": "image/webp", ".bmp": "image/bmp", ".avif": "image/avif"}
# The same by content: Pillow's format name of the decoded file -> the media type it is sent with.
WEB_FORMATS = {"JPEG": "image/jpeg", "MPO": "image/jpeg", "PNG": "image/png", "GIF": "image/gif",
               "WEBP": "image/webp", "BMP": "image/bmp", "AVIF": "image/avif"}
_HASH = re.compile(r"[0-9a-f]{1,128}")
_READ_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
MAX_THUMB_BYTES = 8 << 20


def default_thumb_dir(db_path: str) -> str:
    """The gallery's own thumbnail store, beside its database."""
    return os.fsdecode(db_path) + ".thumbs"


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
    data = thumbnail_bytes(img, size)
    store_thumbnail(data, places)
    return data


def thumbnail_bytes(img: Image.Image, size: int) -> bytes:
    """The JPEG of the decoded RGB `img` shrunk to at most `size` px on its long side."""
    if max(img.size) > size:
        img = img.copy()
        img.thumbnail((size, size), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=JPEG_QUALITY.get(size, 85), optimize=size <= GRID_SIZE)
    return buf.getvalue()


def store_thumbnail(data: bytes, places: list[str]) -> None:
    """Write `data` at the first of `places` that can be written (none: not cached)."""
    for out in places:
        try:
            os.makedirs(os.path.dirname(out), exist_ok=True)
            atomic_write_bytes(out, data)
            break
        except OSError:  # a read-only or full disk: the next place
            continue


def has_thumbnail(places: list[str]) -> bool:
    """Whether one of `places` holds a thumbnail (a non-empty regular file; no link followed)."""
    for out in places:
        try:
            st = os.lstat(out)
        except (OSError, ValueError):
            continue
        if stat.S_ISREG(st.st_mode) and st.st_size > 0:
            return True
    return False


def shrink(img: Image.Image, size: int) -> Image.Image:
    """`img` at most `size` px on its long side (LANCZOS; `img` itself when it is no larger)."""
    if max(img.size) <= size:
        return img
    out = img.copy()
    out.thumbnail((size, size), Image.Resampling.LANCZOS)
    return out


def thumbnail_set(img: Image.Image) -> dict[int, Image.Image]:
    """{size: image} for every thumbnail size, each from the next larger (the view size from `img`)."""
    view = shrink(img, VIEW_SIZE)
    return {VIEW_SIZE: view, GRID_SIZE: shrink(view, GRID_SIZE)}


def keep_thumbnails(sized: dict[int, Image.Image], cache_dir: str, file_hash: str) -> int:
    """Cache the thumbnails `sized` ({size: image at that size}) of content `file_hash`, those not
    cached yet; returns how many were written."""
    made = 0
    for size, img in sized.items():
        places = thumbnail_places(cache_dir, file_hash, size)
        if not has_thumbnail(places):
            store_thumbnail(thumbnail_bytes(img, size), places)
            made += 1
    return made


def media_type(fmt: str | None) -> str | None:
    """The media type to send a file of Pillow format `fmt` with as it is, or None: convert it."""
    return WEB_FORMATS.get(fmt or "")


def as_jpeg(img: Image.Image) -> bytes:
    """A full-size JPEG of a decoded image browsers cannot show as it is (TIFF, HEIC...)."""
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=92)
    return buf.getvalue()
