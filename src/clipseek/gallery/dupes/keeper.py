"""Which member of a duplicate group to keep: the original, judged from what each file says of itself.

In order (docs/commands/dupes.md gives the reasons):
  1. full quality: no re-encode marks. A re-save drops the camera's EXIF (Make, Model, capture time)
     that the original has, and a JPEG re-encoded at a lower quality has coarser quantization tables
     (compared between JPEGs only); for the same pixels, the larger file holds more detail;
  2. the earliest capture time (EXIF DateTimeOriginal; a file with none comes after);
  3. a name without copy markers: "china.jpg" before "china (1).jpg", "china copy.jpg", "china_1.jpg";
  4. more pixels, then more bytes, then the older file, then the path that sorts first.
Sizes are the displayed ones (EXIF orientation applied), as `search` shows them.
"""

from __future__ import annotations

from typing import Any

import functools
import os
import re
from dataclasses import dataclass

_ORIENTATION, _EXIF_IFD, _MAKE, _MODEL, _DATETIME_ORIGINAL = 0x0112, 0x8769, 0x010F, 0x0110, 36867
_COPY_MARK = re.compile(r"(\s*\(\d+\)|[\s_-]*(-\s*)?copy(\s*\(?\d+\)?)?|_\d{1,2}|-\d{1,2})$", re.IGNORECASE)


@dataclass(frozen=True)
class Facts:
    width: int = 0            # displayed size (0: unknown)
    height: int = 0
    camera: bool = False      # the camera's EXIF is there (Make, Model or capture time)
    quality: float | None = None  # minus the mean luminance quantization step of a JPEG (None: not one)
    taken_ns: int | None = None


def shown_facts(row) -> Facts:
    """What the file of store row `row` says of itself, read from its header (never blocks on a
    FIFO: regular files only); Facts() when it cannot be opened."""
    from PIL import Image

    from clipseek.core.files import open_regular
    from clipseek.core.images import capture_time_ns

    try:
        f, _ = open_regular(row.path)
        with f, Image.open(f) as img:
            w, h = img.size
            exif = img.getexif()
            if exif.get(_ORIENTATION, 1) in (5, 6, 7, 8):  # shown turned by 90 degrees
                w, h = h, w
            tables = getattr(img, "quantization", None) or {}
            quality = -sum(tables[0]) / len(tables[0]) if img.format == "JPEG" and tables.get(0) else None
            camera = bool(exif.get(_MAKE) or exif.get(_MODEL) or exif.get_ifd(_EXIF_IFD).get(_DATETIME_ORIGINAL))
    except Exception:
        return Facts()
    return Facts(w, h, camera, quality, capture_time_ns(row.path))


def has_copy_marker(path: str) -> bool:
    """Whether the file name ends in a copy marker: "(1)", "copy", "copy 2", " - Copy", "_1", "-2"."""
    return bool(_COPY_MARK.search(os.path.splitext(os.path.basename(path))[0]))


def choose_keeper(members: list, facts: dict[int, Facts]):
    """The member (a store row with displayed width/height) to keep, by the rule above."""
    def compare(a, b) -> int:  # > 0 when a is the better keeper
        fa, fb = facts.get(a.id, Facts()), facts.get(b.id, Facts())
        pa, pb = a.width * a.height, b.width * b.height
        jpegs = fa.quality is not None and fb.quality is not None  # only JPEG tables compare
        keys: list[tuple[Any, Any]] = [(fa.camera, fb.camera), (fa.quality, fb.quality) if jpegs else (0, 0),
                (a.size if pa == pb else 0, b.size if pa == pb else 0),
                (-fa.taken_ns if fa.taken_ns is not None else float("-inf"),
                 -fb.taken_ns if fb.taken_ns is not None else float("-inf")),
                (not has_copy_marker(a.path), not has_copy_marker(b.path)),
                (pa, pb), (a.size, b.size), (-a.mtime_ns, -b.mtime_ns), (b.path, a.path)]
        for x, y in keys:
            if x != y:
                return 1 if x > y else -1
        return 0
    return max(sorted(members, key=lambda r: r.path), key=functools.cmp_to_key(compare))
