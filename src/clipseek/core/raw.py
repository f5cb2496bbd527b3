"""Camera RAW files (DNG, CR2, CR3, NEF, ARW, ...) read through the JPEG preview the camera embeds,
with `rawpy` (LibRaw; the optional extra `clipseek[raw]`). Nothing is demosaiced: the preview is what
the camera showed, it is as big as the sensor on most cameras (smaller on some, e.g. DNG converters'
1024-pixel previews) and decodes like any JPEG, under the same limits (`core.images`).

A file is RAW by its extension, or by its first bytes for the formats that are not TIFF (CR3, RAF,
ORF, RW2); TIFF-based RAW files named otherwise read as TIFFs. The preview's orientation is the
preview's own EXIF tag when it has one, else LibRaw's (the RAW's own tag); the capture time is the
EXIF DateTimeOriginal Pillow reads from a TIFF-based RAW's header, else LibRaw's timestamp.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

RAW_EXTENSIONS = frozenset({".dng", ".cr2", ".cr3", ".crw", ".nef", ".nrw", ".arw", ".srf", ".sr2", ".raf",
                            ".orf", ".rw2", ".pef", ".srw", ".3fr", ".iiq", ".erf", ".mrw", ".x3f"})
NO_RAWPY = "RAW: install clipseek[raw]"
_FLIP_TO_EXIF = {0: 1, 3: 3, 5: 8, 6: 6}  # LibRaw's `flip` -> the EXIF orientation that shows it upright


def is_raw_name(name: str) -> bool:
    import os

    return os.path.splitext(name)[1].lower() in RAW_EXTENSIONS


def sniff_raw(head: bytes) -> bool:
    """RAW formats recognisable from their first bytes that Pillow would not open: CR3 (ISO media,
    brand `crx `), Fujifilm RAF, Olympus ORF, Panasonic RW2."""
    return (head[4:12] == b"ftypcrx " or head.startswith((b"FUJIFILMCCD-RAW", b"IIRO", b"IIRS", b"MMOR",
                                                          b"IIU\x00")))


@dataclass(frozen=True)
class Preview:
    jpeg: bytes | None         # the embedded JPEG, as it is in the file
    bitmap: object | None      # or an (h, w, 3) uint8 array (an uncompressed preview)
    orientation: int           # EXIF orientation code of the RAW (1: as stored)


def _rawpy():
    try:
        import rawpy
    except ImportError:
        return None
    return rawpy


def read_preview(data: bytes) -> Preview:
    """The embedded preview of a RAW file's bytes; ValueError(reason) when there is none or the file
    is not one LibRaw reads (the reason is what a skipped file is listed with)."""
    rawpy = _rawpy()
    if rawpy is None:
        raise ValueError(NO_RAWPY)
    try:
        with rawpy.imread(io.BytesIO(data)) as raw:
            flip = int(raw.sizes.flip)
            thumb = raw.extract_thumb()
    except (rawpy.LibRawNoThumbnailError, rawpy.LibRawUnsupportedThumbnailError):
        raise ValueError("RAW file without an embedded preview (clipseek reads RAW through its preview)") from None
    except Exception as e:  # LibRawFileUnsupportedError, LibRawIOError, ...: not a RAW LibRaw knows
        raise ValueError(f"cannot read RAW ({type(e).__name__}: {e})") from None
    orientation = _FLIP_TO_EXIF.get(flip, 1)
    if thumb.format == rawpy.ThumbFormat.JPEG:
        return Preview(bytes(thumb.data), None, orientation)
    return Preview(None, thumb.data, orientation)


def capture_time(data: bytes):
    """LibRaw's capture time of a RAW file (a naive local datetime), or None."""
    rawpy = _rawpy()
    if rawpy is None:
        return None
    try:
        with rawpy.imread(io.BytesIO(data)) as raw:
            when = raw.other.timestamp
    except Exception:  # not readable by LibRaw, no timestamp
        return None
    return when if when is not None and when.year > 1970 else None
