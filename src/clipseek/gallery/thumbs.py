"""Thumbnails for a gallery, made once and cached on disk, and browser-safe copies of originals.

The cache is content-addressed (`<dir>/<hash[:2]>/<hash>-<size>.jpg`, the file's blake2b from the
store), so a changed file gets a new thumbnail and a recreated database never shows stale ones.
Writes go to a temporary file and are renamed into place, so concurrent requests for the same
thumbnail are harmless and a killed process leaves no half-written JPEG. Where the gallery's folder
cannot be written (a read-only mount, a full disk) thumbnails go to the user's cache folder instead
(`<cache>/thumbs`, content-addressed alike), so a read-only gallery is served with thumbnails.
"""

from __future__ import annotations

import io
import os

from PIL import Image

from clipseek._io import atomic_write, default_cache_dir
from clipseek.core.images import DEFAULT_MAX_PIXELS, open_image
from clipseek.errors import ImageError

THUMB_SIZE = 320
# Formats every browser displays as they are; anything else (TIFF, HEIC, ...) is sent as a JPEG copy.
WEB_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".gif": "image/gif",
             ".webp": "image/webp", ".bmp": "image/bmp", ".avif": "image/avif"}


def thumbnail_path(cache_dir: str, file_hash: str, size: int = THUMB_SIZE) -> str:
    if not file_hash or not all(c in "0123456789abcdef" for c in file_hash):
        raise ValueError(f"not a content hash: {file_hash!r}")  # never a path from outside
    return os.path.join(cache_dir, file_hash[:2], f"{file_hash}-{size}.jpg")


def ensure_thumbnail(src: str, cache_dir: str, file_hash: str, size: int = THUMB_SIZE,
                     max_pixels: int = DEFAULT_MAX_PIXELS) -> str:
    """The cached thumbnail of `src` (longest side <= size), made now if missing; raises ImageError."""
    places = [thumbnail_path(d, file_hash, size) for d in (cache_dir, str(default_cache_dir() / "thumbs"))]
    for out in places:
        if os.path.exists(out):
            return out
    img = open_image(src, max_pixels=max_pixels, draft_size=size)
    img.thumbnail((size, size), Image.Resampling.LANCZOS)
    for out in places:
        try:
            os.makedirs(os.path.dirname(out), exist_ok=True)
            atomic_write(out, lambda tmp: img.save(tmp, "JPEG", quality=85, optimize=True))
            return out
        except OSError as e:  # a read-only or full disk: the next place
            problem = e
    raise ImageError(src, f"cannot write its thumbnail: {problem.strerror or problem}")


def web_media_type(path: str) -> str | None:
    """The media type to send `path` with as it is, or None when it needs converting."""
    return WEB_TYPES.get(os.path.splitext(path)[1].lower())


def as_jpeg(path: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> bytes:
    """A full-size JPEG of an image browsers cannot show (TIFF, HEIC...)."""
    buf = io.BytesIO()
    open_image(path, max_pixels=max_pixels).save(buf, "JPEG", quality=92)
    return buf.getvalue()
