"""Open one image safely: file checks, size limits, EXIF orientation, every Pillow mode to RGB, JPEG
draft decode; phone formats (HEIC/HEIF through pillow-heif, AVIF through Pillow) and camera RAW
(`core.raw`: the embedded JPEG preview, with rawpy) read on the same path.

Limits (`ImageLimits`) are checked per call: the file must be a regular file of at most `max_bytes`
(`core.files`), and the image at most `max_pixels` pixels, checked on the size in its header before
the pixels are decoded (Pillow reads the header in `Image.open`; `load()` decodes). The default, 64
megapixels, is the same for the CLI and the server. Pillow's own `DecompressionBombWarning` is
silenced (clipseek refuses such images itself, with a reason); a limit above Pillow's hard ceiling
(`2 * Image.MAX_IMAGE_PIXELS`, about 179 MP) raises that ceiling, the one Pillow setting touched.

pillow-heif's opener is registered once, on the first image opened here (not on import), and
only here: every reader of images (classify, eval, index, dupes, thumbnails, uploads) goes through
`open_image`/`open_image_bytes`/`capture_time_ns`/`image_size`.
"""

from __future__ import annotations

import errno
import functools
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

from clipseek.core import raw
from clipseek.core.files import DEFAULT_MAX_FILE_MB, DEFAULT_MAX_PIXELS, MB, open_regular
from clipseek.core.numbers import check_number
from clipseek.errors import ImageError, UsageError

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".heic", ".heif", ".hif", ".avif"}
) | raw.RAW_EXTENSIONS
HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs", b"mif1", b"msf1")
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


@functools.cache
def heif_supported() -> bool:
    """Register pillow-heif's HEIC/HEIF opener with Pillow (once, on first use); False when it is not
    installed. AVIF is Pillow's own (Pillow >= 11.3 wheels)."""
    try:
        import pillow_heif  # type: ignore
    except ImportError:
        return False
    pillow_heif.register_heif_opener()
    return True


def _unrecognised(head: bytes) -> str:
    """Why Pillow could not open a file: a format it would read with a plugin that is missing."""
    if head[4:8] == b"ftyp" and head[8:12] in HEIF_BRANDS and not heif_supported():
        return "HEIC/HEIF: install pillow-heif (pip install pillow-heif)"
    if head[4:8] == b"ftyp" and head[8:12] in (b"avif", b"avis"):
        return "AVIF: this Pillow cannot read it (Pillow 11.3 or newer reads AVIF)"
    return "not an image (unrecognised format)"


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
    """The image of an open file `src` named `p`: a camera RAW through its preview, else Pillow."""
    heif_supported()
    head = src.read(16)
    src.seek(0)
    if raw.is_raw_name(p) or raw.sniff_raw(head):
        return _decode_raw(src.read(), p, max_pixels, draft_size, draft_long)
    return _decode_pillow(src, p, max_pixels, draft_size, head, draft_long=draft_long)


def _decode_raw(data: bytes, p: str, max_pixels: int, draft_size: int | None,
                draft_long: int | None = None) -> Image.Image:
    try:
        preview = raw.read_preview(data)
    except ValueError as e:
        raise ImageError(p, str(e)) from None
    if preview.jpeg is not None:
        return _decode_pillow(io.BytesIO(preview.jpeg), p, max_pixels, draft_size, preview.jpeg[:16],
                              orientation=preview.orientation, draft_long=draft_long)
    h, w = preview.bitmap.shape[:2]  # type: ignore[union-attr]
    if w * h > max_pixels:
        raise ImageError(p, _too_many(w, h, max_pixels))
    img = _orient(Image.fromarray(np.ascontiguousarray(preview.bitmap, np.uint8)).convert("RGB"),
                  preview.orientation)
    img.info[FULL_SIZE] = img.size
    return img


def _decode_pillow(src, p: str, max_pixels: int, draft_size: int | None, head: bytes,
                   orientation: int | None = None, draft_long: int | None = None) -> Image.Image:
    """Pillow's decode. `orientation`: the EXIF code to apply when the image has no tag of its own
    (a RAW preview: the RAW's tag)."""
    _raise_pillow_ceiling(max_pixels)
    try:
        img = Image.open(src)  # reads the header only
    except UnidentifiedImageError:
        raise ImageError(p, _unrecognised(head)) from None
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
        own = img.getexif().get(_EXIF_ORIENTATION)
        turn = own if own is not None or orientation is None else orientation
        if turn in (5, 6, 7, 8):  # shown turned by 90 degrees
            w, h = h, w
        img.load()  # decode now, so truncated data fails here with the path attached
        img = to_rgb(ImageOps.exif_transpose(img) or img) if own is not None else _orient(to_rgb(img), turn or 1)
        img.info[FULL_SIZE] = (w, h)
        return img
    except ImageError:
        raise
    except Exception as e:  # Pillow raises many types for bad data (OSError, SyntaxError, ValueError...)
        raise ImageError(p, f"corrupt or truncated image data ({type(e).__name__}: {e})") from None


_TRANSPOSE = {2: [Image.Transpose.FLIP_LEFT_RIGHT], 3: [Image.Transpose.ROTATE_180],
              4: [Image.Transpose.FLIP_TOP_BOTTOM], 5: [Image.Transpose.TRANSPOSE],
              6: [Image.Transpose.ROTATE_270], 7: [Image.Transpose.TRANSVERSE], 8: [Image.Transpose.ROTATE_90]}


def _orient(img: Image.Image, orientation: int) -> Image.Image:
    """`img` turned as EXIF orientation `orientation` says (what `ImageOps.exif_transpose` does)."""
    for t in _TRANSPOSE.get(orientation, []):
        img = img.transpose(t)
    return img


def full_size(img: Image.Image) -> tuple[int, int]:
    """The picture's own (width, height) as shown (EXIF rotation applied), also when a large JPEG was
    decoded at a reduced size (draft mode) for the model."""
    return tuple(img.info.get(FULL_SIZE, img.size))


EXIF_IFD, DATETIME_ORIGINAL, OFFSET_TIME_ORIGINAL = 0x8769, 36867, 36881


def capture_time_ns(src: str | os.PathLike | bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> int | None:
    """When the photo was taken: EXIF DateTimeOriginal (local time, or at its OffsetTimeOriginal) in
    ns since the epoch; None when the file has no such tag or cannot be read. Reads the header only:
    Pillow's `getexif` decodes a PNG whose EXIF is not before its pixels (all of a 100-megapixel bomb),
    so a PNG's EXIF is taken from its header chunks only, and no image over `max_pixels` is looked at.
    HEIC/HEIF and AVIF keep their EXIF in the container (read the same way); a camera RAW that Pillow
    cannot read as a TIFF gets LibRaw's capture time (`core.raw`)."""
    heif_supported()
    try:  # a path: only a regular file is opened (`core.files.open_regular`, never blocks)
        f = io.BytesIO(src) if isinstance(src, bytes) else open_regular(os.fsdecode(src))[0]
    except Exception:
        return None
    with f:
        head = f.read(16)
        f.seek(0)
        when = _exif_time(f, max_pixels)
        named_raw = not isinstance(src, bytes) and raw.is_raw_name(os.fsdecode(src))
        if when is None and (named_raw or raw.sniff_raw(head)):
            f.seek(0)
            dt = raw.capture_time(f.read())
            when = round(dt.timestamp() * 1e6) * 1000 if dt is not None else None
    return when


def _exif_time(f, max_pixels: int) -> int | None:
    from datetime import datetime

    try:
        with Image.open(f) as img:
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


def image_size(path: str | os.PathLike, max_bytes: int = DEFAULT_LIMITS.max_bytes) -> tuple[int, int]:
    """A file's picture size as shown (EXIF orientation applied) from its header, nothing decoded; for
    a camera RAW, its preview's (the size `open_image` gives). ImageError when it cannot be read."""
    p = os.fsdecode(path)
    heif_supported()
    f, _ = open_regular(p, max_bytes)
    with f:
        head = f.read(16)
        f.seek(0)
        if raw.is_raw_name(p) or raw.sniff_raw(head):
            try:
                preview = raw.read_preview(f.read())
            except ValueError as e:
                raise ImageError(p, str(e)) from None
            if preview.jpeg is None:
                h, w = preview.bitmap.shape[:2]  # type: ignore[union-attr]
                return (h, w) if preview.orientation in (5, 6, 7, 8) else (w, h)
            return _header_size(io.BytesIO(preview.jpeg), p, preview.orientation)
        return _header_size(f, p, None)


def _header_size(src, p: str, orientation: int | None) -> tuple[int, int]:
    try:
        with Image.open(src) as img:
            w, h = img.size
            own = img.getexif().get(_EXIF_ORIENTATION) if img.format != "PNG" or "exif" in img.info else None
    except Exception as e:  # unrecognised, a bomb over Pillow's ceiling, unreadable
        raise ImageError(p, f"cannot read its size ({type(e).__name__})") from None
    turn = own if own is not None else orientation
    return (h, w) if turn in (5, 6, 7, 8) else (w, h)


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
