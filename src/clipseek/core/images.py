"""Open one image safely: file checks, size limits, EXIF orientation, every Pillow mode to RGB, JPEG
draft decode.

Limits (`ImageLimits`) are checked per call: the file must be a regular file of at most `max_bytes`
(`core.files`), and the image at most `max_pixels` pixels, checked on the size in its header before
the pixels are decoded (Pillow reads the header in `Image.open`; `load()` decodes). The default, 64
megapixels, is the same for the CLI and the server. Pillow's own `DecompressionBombWarning` is
silenced (clipseek refuses such images itself, with a reason); a limit above Pillow's hard ceiling
(`2 * Image.MAX_IMAGE_PIXELS`, about 179 MP) raises that ceiling, the one Pillow setting touched.
"""

from __future__ import annotations

import errno
import glob
import io
import math
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from clipseek.core.files import DEFAULT_MAX_FILE_MB, DEFAULT_MAX_PIXELS, MB, open_regular
from clipseek.core.numbers import check_number
from clipseek.errors import ImageError, UsageError

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".heic", ".heif", ".avif"}
)
_EXIF_ORIENTATION = 274
FULL_SIZE = "clipseek_full_size"  # image.info key: the file's own size before draft decoding
# DEFAULT_MAX_PIXELS (64 MP, 8k x 8k): larger images are refused as likely decompression bombs
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


@dataclass(frozen=True)
class ImageLimits:
    """What one image file may cost: bytes read (`--max-file-mb`) and pixels decoded (`--max-pixels`)."""

    max_pixels: int = DEFAULT_MAX_PIXELS
    max_bytes: int = DEFAULT_MAX_FILE_MB * MB

    @classmethod
    def from_options(cls, max_pixels: int | None = None, max_file_mb: float | None = None) -> "ImageLimits":
        if max_pixels is not None:
            check_number(max_pixels, "--max-pixels", 1, integer=True)
        if max_file_mb is not None:
            check_number(max_file_mb, "--max-file-mb", 0, lo_open=True)
        return cls(max_pixels or DEFAULT_MAX_PIXELS,
                   int((max_file_mb if max_file_mb is not None else DEFAULT_MAX_FILE_MB) * MB))


DEFAULT_LIMITS = ImageLimits()


def _register_optional_plugins() -> None:
    try:  # HEIC/AVIF support when the user has pillow-heif installed
        import pillow_heif  # type: ignore

        pillow_heif.register_heif_opener()
    except Exception:
        pass


_register_optional_plugins()


def open_image(path: str | os.PathLike, *, max_pixels: int = DEFAULT_MAX_PIXELS,
               draft_size: int | None = None, data: bytes | None = None,
               max_bytes: int = DEFAULT_LIMITS.max_bytes, draft_long: int | None = None) -> Image.Image:
    """Return the image at `path` as an RGB PIL image, or raise ImageError(path, reason).

    `draft_size`: when set and the file is a JPEG at least twice that size on its short side,
    decode at reduced scale (still >= draft_size on each side) — much faster for big photos.
    `draft_long`: also keep the long side >= draft_long (one decode that serves a model input and a
    viewer-size thumbnail: `draft_box`).
    `data`: the file's bytes, already read (e.g. from an object store); `path` then only names it.
    Only a regular file of at most `max_bytes` is read (`core.files.open_regular`).
    """
    p = os.fsdecode(path)
    if data is not None:
        if not data:
            raise ImageError(p, "empty file (0 bytes)")
        return _decode(io.BytesIO(data), p, max_pixels, draft_size, draft_long)
    f, _ = open_regular(p, max_bytes)
    with f:
        return _decode(f, p, max_pixels, draft_size, draft_long)


def open_image_bytes(data: bytes, *, name: str = "upload", max_pixels: int = DEFAULT_MAX_PIXELS,
                     draft_size: int | None = None, draft_long: int | None = None) -> Image.Image:
    """`open_image` for bytes in memory (an upload); errors name the image `name`."""
    if not data:
        raise ImageError(name, "empty file (0 bytes)")
    return _decode(io.BytesIO(data), name, max_pixels, draft_size, draft_long)


def _too_many(w: int, h: int, max_pixels: int) -> str:
    return f"too many pixels: {w}x{h} exceeds the limit of {max_pixels:,} (--max-pixels)"


def _raise_pillow_ceiling(max_pixels: int) -> None:
    """Pillow refuses images over 2 * MAX_IMAGE_PIXELS in `Image.open` itself: lift that ceiling when a
    caller allows more (clipseek's own check then decides)."""
    ceiling = Image.MAX_IMAGE_PIXELS
    if ceiling is not None and max_pixels > 2 * ceiling:
        Image.MAX_IMAGE_PIXELS = max_pixels


def draft_box(w: int, h: int, short: int, long: int) -> tuple[int, int] | None:
    """The size to ask a JPEG's draft decoding for so that the short side stays >= `short` and the
    long side >= `long` (None: no reduction of at least 2x is possible)."""
    f = max(short / min(w, h), long / max(w, h))
    return None if f > 0.5 else (math.ceil(w * f), math.ceil(h * f))


def _decode(src, p: str, max_pixels: int, draft_size: int | None,
            draft_long: int | None = None) -> Image.Image:
    _raise_pillow_ceiling(max_pixels)
    try:
        img = Image.open(src)  # reads the header only
    except UnidentifiedImageError:
        raise ImageError(p, "not an image (unrecognised format)") from None
    except Image.DecompressionBombError as e:
        m = re.search(r"\((\d+) pixels\)", str(e))
        raise ImageError(p, f"too many pixels: {int(m.group(1)) if m else 0:,} exceeds the limit of "
                            f"{max_pixels:,} (--max-pixels)") from None
    except OSError as e:
        raise ImageError(p, f"cannot open: {e}") from None
    try:
        w, h = img.size
        if w * h > max_pixels:  # before load(): nothing has been decoded yet
            raise ImageError(p, _too_many(w, h, max_pixels))
        if w == 0 or h == 0:
            raise ImageError(p, f"degenerate size {w}x{h}")
        if draft_long and img.format == "JPEG":
            box = draft_box(w, h, draft_size or 1, draft_long)
            if box:
                img.draft("RGB", box)
        elif draft_size and img.format == "JPEG" and min(w, h) >= 2 * draft_size:
            img.draft("RGB", (draft_size, draft_size))
        if img.getexif().get(_EXIF_ORIENTATION, 1) in (5, 6, 7, 8):  # shown turned by 90 degrees
            w, h = h, w
        img.load()  # decode now, so truncated data fails here with the path attached
        img = to_rgb(ImageOps.exif_transpose(img) or img)
        img.info[FULL_SIZE] = (w, h)
        return img
    except ImageError:
        raise
    except Exception as e:  # Pillow raises many types for bad data (OSError, SyntaxError, ValueError...)
        raise ImageError(p, f"corrupt or truncated image data ({type(e).__name__}: {e})") from None


def full_size(img: Image.Image) -> tuple[int, int]:
    """The picture's own (width, height) as shown (EXIF rotation applied), also when a large JPEG was
    decoded at a reduced size (draft mode) for the model."""
    return tuple(img.info.get(FULL_SIZE, img.size))


EXIF_IFD, DATETIME_ORIGINAL, OFFSET_TIME_ORIGINAL = 0x8769, 36867, 36881


def capture_time_ns(src: str | os.PathLike | bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> int | None:
    """When the photo was taken: EXIF DateTimeOriginal (local time, or at its OffsetTimeOriginal) in
    ns since the epoch; None when the file has no such tag or cannot be read. Reads the header only:
    Pillow's `getexif` decodes a PNG whose EXIF is not before its pixels (all of a 100-megapixel bomb),
    so a PNG's EXIF is taken from its header chunks only, and no image over `max_pixels` is looked at."""
    from datetime import datetime

    try:  # a path: only a regular file is opened (`core.files.open_regular`, never blocks)
        f = io.BytesIO(src) if isinstance(src, bytes) else open_regular(os.fsdecode(src))[0]
        with f, Image.open(f) as img:
            w, h = img.size
            if w * h > max_pixels or (img.format == "PNG" and "exif" not in img.info):
                return None
            ifd = img.getexif().get_ifd(EXIF_IFD)
        text = str(ifd.get(DATETIME_ORIGINAL, "")).strip("\x00 ")
        offset = str(ifd.get(OFFSET_TIME_ORIGINAL, "")).strip("\x00 ")
        dt = datetime.strptime(text + offset, "%Y:%m:%d %H:%M:%S" + ("%z" if offset else ""))
        return round(dt.timestamp() * 1e6) * 1000
    except Exception:  # no EXIF, a blank or malformed date ("0000:00:00 00:00:00"), unreadable file
        return None


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to RGB. Transparency is composited on white; 16/32-bit is rescaled."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") else max(float(arr.max()), 255.0)
        arr = np.clip(arr / top * 255.0, 0, 255).astype(np.uint8)
        return Image.fromarray(arr).convert("RGB")
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        mode in ("P", "L", "RGB") and "transparency" in img.info)
    if has_alpha:
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def one_or_many(paths) -> list:
    """A path (str, bytes or os.PathLike) is one path, not a sequence of characters; a list stays a list."""
    return [paths] if isinstance(paths, (str, bytes, os.PathLike)) else list(paths)


def collect_image_paths(inputs: Iterable[str | os.PathLike]) -> list[str]:
    """Expand files, folders (recursive, image extensions only) and globs into a sorted path list.

    A file named explicitly is kept whatever its extension or type (a FIFO, a dangling link), so that
    it is reported with its reason, not ignored. A path that does not exist, or a glob that matches
    nothing, is a UsageError.
    """
    out: list[str] = []
    for item in one_or_many(inputs):
        s = os.fsdecode(item)
        if os.path.isdir(s):
            out.extend(walk_images(s))
        elif os.path.lexists(s):
            out.append(s)
        elif glob.has_magic(s):
            matches = sorted(glob.glob(s, recursive=True))
            if not matches:
                raise UsageError(f"no files match {s!r}")
            for m in matches:
                out.extend(walk_images(m) if os.path.isdir(m) else [m])
        else:
            raise UsageError(f"path not found: {s}")
    seen: set[str] = set()
    return [p for p in out if not (p in seen or seen.add(p))]


def has_image_name(name: str) -> bool:
    return Path(name).suffix.lower() in IMAGE_EXTENSIONS and not name.startswith(".")


def walk_images(root: str | os.PathLike) -> list[str]:
    """All entries with an image extension under `root`, recursively, sorted, hidden folders skipped.

    Folders are descended into (a real folder is walked even when named like an image); a symbolic
    link to a folder is not followed, but when it is named like an image it is listed, so that the
    reader reports it ("not a regular file (a directory)") instead of dropping it silently. Names are
    what the OS gives (bytes that are not UTF-8 arrive as surrogate escapes, `os.fsdecode`). A folder
    that cannot be listed because its path is longer than the system allows (PATH_MAX) is listed
    itself, so that the reader reports it with that reason instead of its files going missing."""
    return walk_named(root, has_image_name)


def walk_named(root: str | os.PathLike, accept: Callable[[str], bool]) -> list[str]:
    """`walk_images` for any kind of file: the entries whose name `accept`s (`core.video` lists videos)."""
    found = []

    def too_long(e: OSError) -> None:
        if e.errno == errno.ENAMETOOLONG and e.filename:
            found.append(os.fsdecode(e.filename))

    for dirpath, dirnames, filenames in os.walk(os.fsdecode(root), onerror=too_long):
        links = [d for d in dirnames if accept(d) and os.path.islink(os.path.join(dirpath, d))]
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in links)
        for name in (*filenames, *links):
            if accept(name):
                found.append(os.path.join(dirpath, name))
    return sorted(found)
