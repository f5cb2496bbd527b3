"""Minimal camera RAW files built in the test, no binaries committed: a DNG is a TIFF whose first IFD is
the preview (JPEG-compressed, or uncompressed RGB) and whose SubIFD is a 16-bit Bayer CFA image, with
DNGVersion, a colour matrix and an EXIF IFD holding DateTimeOriginal. LibRaw (rawpy) reads it.

Not buildable offline, so not tested: CR2/CR3/NEF/ARW as cameras write them (their makers' notes and
compressed raw data); they reach the same code (LibRaw's preview extraction) as a DNG does."""

from __future__ import annotations

import io
import struct

import numpy as np
from PIL import Image

BYTE, ASCII, SHORT, LONG, SRATIONAL = 1, 2, 3, 4, 10
_SIZE = {BYTE: 1, ASCII: 1, SHORT: 2, LONG: 4, SRATIONAL: 8}


def _pack(typ: int, vals) -> bytes:
    if typ == ASCII:
        return vals.encode() + b"\0"
    vals = vals if isinstance(vals, list) else [vals]
    if typ == BYTE:
        return bytes(vals)
    if typ == SRATIONAL:
        return b"".join(struct.pack("<ii", *v) for v in vals)
    return struct.pack(f"<{len(vals)}{'H' if typ == SHORT else 'I'}", *vals)


def build_tiff(ifds: list[dict]) -> bytes:
    """Little-endian TIFF of `ifds` (tag -> (type, values)); a value ("ifd", k, ...) is the offsets of
    IFDs k, ... (SubIFDs, ExifIFD), a value ("blob", bytes) under StripOffsets the offset of those bytes."""
    def size(ifd):
        return 2 + 12 * len(ifd) + 4 + sum(len(d) + len(d) % 2 for typ, v in ifd.values()
                                           if len(d := _pack(typ, _placeholder(v, typ))) > 4)

    starts, pos = [], 8
    for ifd in ifds:
        starts.append(pos)
        pos += size(ifd)
    blobs, blob_at = [], {}
    for ifd in ifds:
        for _typ, v in ifd.values():
            if isinstance(v, tuple) and v[0] == "blob":
                blob_at[id(v)] = pos
                blobs.append(v[1] + b"\0" * (len(v[1]) % 2))
                pos += len(blobs[-1])
    out = bytearray(b"II*\0" + struct.pack("<I", 8))
    for k, ifd in enumerate(ifds):
        head, extra = bytearray(struct.pack("<H", len(ifd))), bytearray()
        extra_at = starts[k] + 2 + 12 * len(ifd) + 4
        for tag, (typ, v) in sorted(ifd.items()):
            if isinstance(v, tuple):
                typ, v = LONG, [starts[i] for i in v[1:]] if v[0] == "ifd" else blob_at[id(v)]
            data = _pack(typ, v)
            count = len(data) // _SIZE[typ]
            if len(data) <= 4:
                head += struct.pack("<HHI", tag, typ, count) + data.ljust(4, b"\0")
            else:
                head += struct.pack("<HHII", tag, typ, count, extra_at + len(extra))
                extra += data + b"\0" * (len(data) % 2)
        out += head + struct.pack("<I", 0) + extra
    return bytes(out + b"".join(blobs))


def _placeholder(v, typ):
    if isinstance(v, tuple):
        return [0] * (len(v) - 1) if v[0] == "ifd" else 0
    return v


def minimal_dng(preview: Image.Image, orientation: int = 1, taken: str | None = "2019:03:04 05:06:07",
                jpeg: bool = True, raw_size: tuple[int, int] = (64, 48)) -> bytes:
    """A DNG laid out as cameras and converters write them: IFD 0 a tiny 8x6 grey thumbnail (what a
    TIFF reader shows), SubIFDs the Bayer raw image and the full preview `preview` (a JPEG without
    EXIF, or uncompressed RGB); the DNG's own Orientation tag is `orientation`, its EXIF
    DateTimeOriginal `taken`."""
    if jpeg:
        buf = io.BytesIO()
        preview.save(buf, "JPEG", quality=92)
        pixels, compression, photometric = buf.getvalue(), 7, 6
    else:
        pixels, compression, photometric = preview.convert("RGB").tobytes(), 1, 2
    (pw, ph), (w, h) = preview.size, raw_size
    bayer = np.random.default_rng(0).integers(0, 4096, (h, w), dtype=np.uint16).tobytes()
    thumb = bytes([128]) * (8 * 6 * 3)
    identity = [(1, 1), (0, 1), (0, 1), (0, 1), (1, 1), (0, 1), (0, 1), (0, 1), (1, 1)]
    ifd0 = {254: (LONG, 1), 256: (LONG, 8), 257: (LONG, 6), 258: (SHORT, [8, 8, 8]), 259: (SHORT, 1),
            262: (SHORT, 2), 271: (ASCII, "Clipseek"), 272: (ASCII, "Test"), 273: (LONG, ("blob", thumb)),
            274: (SHORT, orientation), 277: (SHORT, 3), 278: (LONG, 6), 279: (LONG, len(thumb)),
            284: (SHORT, 1), 330: (LONG, ("ifd", 1, 2)),
            50706: (BYTE, [1, 4, 0, 0]), 50708: (ASCII, "Clipseek Test"), 50721: (SRATIONAL, identity)}
    raw = {254: (LONG, 0), 256: (LONG, w), 257: (LONG, h), 258: (SHORT, 16), 259: (SHORT, 1),
           262: (SHORT, 32803), 273: (LONG, ("blob", bayer)), 277: (SHORT, 1), 278: (LONG, h),
           279: (LONG, len(bayer)), 284: (SHORT, 1), 33421: (SHORT, [2, 2]), 33422: (BYTE, [0, 1, 1, 2]),
           50717: (LONG, 4095)}
    big = {254: (LONG, 1), 256: (LONG, pw), 257: (LONG, ph), 258: (SHORT, [8, 8, 8]), 259: (SHORT, compression),
           262: (SHORT, photometric), 273: (LONG, ("blob", pixels)), 277: (SHORT, 3), 278: (LONG, ph),
           279: (LONG, len(pixels)), 284: (SHORT, 1)}
    ifds = [ifd0, raw, big]
    if taken:
        ifd0[34665] = (LONG, ("ifd", 3))
        ifds.append({36867: (ASCII, taken)})
    return build_tiff(ifds)
