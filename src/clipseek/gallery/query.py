"""What a search asks for, as values: the filter (`Filter`), the terms of query arithmetic (`Term`)
and the relevance statistic that tells which results stand out.

Filter. Which images may be ranked at all (applied before ranking: a filtered search returns the k
best images that pass it). Folders (under any of them), capture time (EXIF DateTimeOriginal, else the
file's mtime; `after` inclusive, `before` exclusive), orientation, minimum size and file extension.
`Filter.parse` reads the user's strings and raises UsageError with one clear line for a bad one;
`gallery.search.facets` applies it.

Terms. `--add X` / `--subtract X`, X being text, an image file's path, or `image:ID` (an indexed
image), with an optional weight `W:X`. The query vector is the normalised weighted sum of the terms'
unit vectors (`combine`).

Relevance. A cosine says nothing by itself: each query's scores sit at their own level (one model's
matches score 0.5, another's 0.3). So a result's relevance is its place between the query's background
and its best match in the gallery: (score - median) / (top - median), where median is the median of
the query's scores over a uniform sample of the gallery (`SAMPLE` vectors) and top the mean of its
`TOP_N` best scores. 1 is as good as the best match, 0 as good as a typical image; results at
`RELEVANT_AT` or more are relevant. The statistic needs a background apart from the best matches: on
a gallery of fewer than `MIN_IMAGES` images (the median and the best `TOP_N` are then the same few
scores, and their difference, the divisor, can be ~0: +-50,000 on 3 images) or where the best scores
do not rise above the median (every image scored alike), relevance is None, and `--relevant` keeps
every result (nothing can be told apart; the CLI says so in one line). Otherwise it lies in [-3, 3]:
with at least 2 * TOP_N images the TOP_N best are at or above the median, so no image of the gallery
scores above 3; scores far below the median are shown as -3. The form is unchanged by any shift or scaling of a model's
scores, which a fixed cosine threshold is not; `benchmarks/relevance_bench.py` measures it against the
best fixed threshold (chosen in hindsight) and against a robust z-score, a largest-gap cut and a
Gaussian mixture, which all did worse.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Iterable

import numpy as np

from clipseek.core.images import IMAGE_EXTENSIONS
from clipseek.core.prompts import check_text
from clipseek.errors import UsageError

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

    from clipseek.core.images import ImageLimits
    from clipseek.gallery.store_vectors import VectorReads
    from clipseek.model.base import Encoder

ORIENTATIONS = ("landscape", "portrait", "square")
EXT_ALIASES = {".jpg": (".jpg", ".jpeg"), ".jpeg": (".jpg", ".jpeg"), ".tif": (".tif", ".tiff"),
               ".tiff": (".tif", ".tiff")}
PENDING = -(2 ** 63)  # store.taken_ns of a row whose capture time was not read yet
RELEVANT_AT = 0.9     # chosen on the seed-12 synthetic gallery (benchmarks/relevance_bench.py --dev)
TOP_N = 3
SAMPLE = 10_000
MIN_IMAGES = 10       # relevance is None on a smaller gallery
MIN_SPREAD = 1e-4     # ... and when the best scores are not above the median by this much (a cosine)
RELEVANCE_RANGE = 3.0
IMAGE_PREFIX = "image:"
MAX_WEIGHT = 100.0    # |W| of a W:X term; larger ones only drown the others (1e308 overflowed to 0 scores)
FIRST_DATE, LAST_DATE = "1677-09-22", "2262-04-10"  # the int64-nanosecond range, a day in from each end


@dataclass(frozen=True)
class Filter:
    """Images a search may return. The empty Filter() passes every image."""

    folders: tuple[str, ...] = ()       # absolute folder paths: the image lies under one of them
    after_ns: int | None = None         # capture time >= this (ns since the epoch)
    before_ns: int | None = None        # capture time < this
    orientation: str | None = None      # one of ORIENTATIONS
    min_width: int = 0
    min_height: int = 0
    exts: tuple[str, ...] = ()          # lower-case suffixes with the dot: (".jpg", ".jpeg")
    media: str | None = None            # "photo" or "video" (None: both)
    min_duration_s: float | None = None  # videos at least this long (passes no photo)
    max_duration_s: float | None = None  # videos at most this long (passes no photo)

    @classmethod
    def parse(cls, folders: Iterable[str | os.PathLike[str]] = (), after: str | None = None, before: str | None = None,
              orientation: str | None = None, min_size: str | None = None, ext: str | None = None,
              root: str | None = None, media: str | None = None, min_duration: float | None = None,
              max_duration: float | None = None) -> "Filter":
        """From the user's strings (CLI options, API parameters); folders are relative to `root`
        (default: the current folder). Raises UsageError naming the bad value."""
        base = root or os.getcwd()
        dirs = tuple(os.path.normpath(os.path.join(base, os.path.expanduser(str(f))))
                     for f in folders or () if str(f).strip())
        after_ns, before_ns = parse_date(after, "after"), parse_date(before, "before")
        if after_ns is not None and before_ns is not None and after_ns >= before_ns:
            raise UsageError(f"after {after} is not before {before}: no date is in between")
        if orientation is not None and orientation.strip().lower() not in ORIENTATIONS:
            raise UsageError(f"unknown orientation {orientation!r}; choose one of {', '.join(ORIENTATIONS)}")
        w, h = parse_size(min_size) if min_size else (0, 0)
        return cls(dirs, after_ns, before_ns, orientation.strip().lower() if orientation else None, w, h,
                   parse_exts(ext) if ext is not None else (), _media(media),
                   *_durations(min_duration, max_duration))

    def __bool__(self) -> bool:
        return self != Filter()

    def describe(self) -> str:
        """A short phrase for messages: 'under /p/holiday, landscape, .jpg/.jpeg'."""
        parts = [f"under {' or '.join(self.folders)}"] if self.folders else []
        for word, ns in (("after", self.after_ns), ("before", self.before_ns)):
            if ns is not None:
                parts.append(f"{word} {datetime.fromtimestamp(ns / 1e9):%Y-%m-%d %H:%M}")
        if self.orientation:
            parts.append(self.orientation)
        if self.min_width or self.min_height:
            parts.append(f"at least {self.min_width}x{self.min_height}")
        if self.exts:
            parts.append("/".join(self.exts))
        if self.media:
            parts.append(f"{self.media}s")
        if self.min_duration_s is not None:
            parts.append(f"at least {self.min_duration_s:g} s long")
        if self.max_duration_s is not None:
            parts.append(f"at most {self.max_duration_s:g} s long")
        return ", ".join(parts) or "no filter"


FILTER_KEYWORDS = ("folders", "after", "before", "orientation", "min_size", "ext", "media", "min_duration",
                   "max_duration")
MEDIA = ("photo", "video")


def _media(media: str | None) -> str | None:
    if media is None or not str(media).strip():
        return None
    m = str(media).strip().lower()
    if m not in MEDIA:
        raise UsageError(f"unknown media {media!r}; choose photo or video")
    return m


def _durations(lo: float | str | None, hi: float | str | None) -> tuple[float | None, float | None]:
    """(min, max) seconds, each finite and >= 0, min <= max; UsageError naming the bad one."""
    out: list[float | None] = []
    for value, name in ((lo, "min_duration (--min-duration)"), (hi, "max_duration (--max-duration)")):
        if value is None:
            out.append(None)
            continue
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise UsageError(f"{name} must be a number of seconds, not {value!r}") from None
        if not math.isfinite(v) or v < 0:
            raise UsageError(f"{name} must be a finite number of seconds >= 0, not {value!r}")
        out.append(v)
    if out[0] is not None and out[1] is not None and out[0] > out[1]:
        raise UsageError(f"min_duration {out[0]:g} is over max_duration {out[1]:g}: no video is in between")
    return out[0], out[1]


def filter_from_keywords(filters: dict) -> Filter:
    """`Gallery.search(..., folders=..., after=...)` -> a Filter; an unknown keyword is a UsageError."""
    unknown = sorted(set(filters) - set(FILTER_KEYWORDS))
    if unknown:
        raise UsageError(f"unknown search filter {unknown[0]!r}; the filters are {', '.join(FILTER_KEYWORDS)}")
    folders = filters.get("folders") or ()
    if isinstance(folders, (str, bytes, os.PathLike)):
        folders = [os.fsdecode(folders)]
    return Filter.parse(folders, **{k: v for k, v in filters.items() if k != "folders"})


def parse_date(text: str | None, name: str) -> int | None:
    """YYYY, YYYY-MM, YYYY-MM-DD or an ISO date-time, in local time unless it names a zone -> ns."""
    if text is None or not str(text).strip():
        return None
    s = str(text).strip()
    m = re.fullmatch(r"(\d{4})(?:-(\d{1,2}))?", s)
    try:
        dt = datetime(int(m[1]), int(m[2] or 1), 1) if m else datetime.fromisoformat(s)
        ns = round(dt.timestamp() * 1e6) * 1000
    except (ValueError, OverflowError, OSError):
        raise UsageError(f"cannot read {name} date {s[:80]!r}: use YYYY-MM-DD (or YYYY, YYYY-MM, "
                         "YYYY-MM-DDTHH:MM)") from None
    if not PENDING < ns < 2 ** 63:  # capture times are int64 nanoseconds (SQLite's integer)
        raise UsageError(f"{name} date {s[:80]!r} is out of range: dates from {FIRST_DATE} to {LAST_DATE} "
                         "can be searched")
    return ns


def parse_size(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d{1,6})\s*[xX×]\s*(\d{1,6})\s*", str(text))
    if not m:
        raise UsageError(f"cannot read min-size {text!r}: use WIDTHxHEIGHT in pixels, e.g. 1920x1080")
    return int(m[1]), int(m[2])


def parse_exts(text: str) -> tuple[str, ...]:
    out: list[str] = []
    for item in str(text).split(","):
        e = "." + item.strip().lower().lstrip(".")
        if e == ".":
            continue
        if e not in IMAGE_EXTENSIONS:
            known = ", ".join(sorted(x[1:] for x in IMAGE_EXTENSIONS))
            raise UsageError(f"unknown image extension {item.strip()!r}; known: {known}")
        out += [x for x in EXT_ALIASES.get(e, (e,)) if x not in out]
    if not out:
        raise UsageError(f"ext {str(text)[:80]!r} names no file type: give extensions such as jpg,png")
    return tuple(out)


# ---- query arithmetic --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Term:
    """One part of a query: text, an image file, or an indexed image's id; `weight` is signed."""

    weight: float = 1.0
    text: str | None = None
    image: str | None = None      # a path
    image_id: int | None = None   # a row of the gallery

    def describe(self) -> str:
        what = self.text if self.text is not None else self.image or f"{IMAGE_PREFIX}{self.image_id}"
        return f"{'+' if self.weight >= 0 else '-'}{abs(self.weight):g}:{what}"


def parse_term(spec: str, sign: float = 1.0, allow_paths: bool = True) -> Term:
    """'[WEIGHT:]VALUE'. VALUE is `image:ID`, the path of an image file (when `allow_paths`), or text.
    What precedes the first ':' is a weight when it has a digit and no space (so '0,5:x' is an error,
    'note: x' text); a value that names no file but ends in an image extension is an error, not text."""
    s = str(spec).strip()
    weight = 1.0
    head, sep, rest = s.partition(":")
    if sep and re.fullmatch(r"\S*\d\S*", head.strip()):  # a digit and no space before ':': a weight
        try:
            weight = float(head)
        except ValueError:
            raise UsageError(f"weight {head.strip()!r} in {s!r} is not a number (use e.g. 0.5:sunset)") from None
        if not math.isfinite(weight) or not 0 < weight <= MAX_WEIGHT:
            raise UsageError(f"weight in {s[:80]!r} must be a positive number, at most {MAX_WEIGHT:g} "
                             "(subtract to take away)")
        s = rest.strip()
    if not s:
        raise UsageError(f"empty term {spec!r}: give text or an image after the weight")
    check_text(s, "a query term")
    if s.lower().startswith(IMAGE_PREFIX) and s[len(IMAGE_PREFIX):].strip().isdigit():
        return Term(sign * weight, image_id=int(s[len(IMAGE_PREFIX):]))
    if allow_paths:
        path = os.path.expanduser(s)
        if os.path.exists(path):
            if not os.path.isfile(path) or not os.access(path, os.R_OK):
                raise UsageError(f"{s} is not a readable image file")
            return Term(sign * weight, image=path)
        if os.path.splitext(s)[1].lower() in IMAGE_EXTENSIONS:
            raise UsageError(f"image not found: {s}")
    return Term(sign * weight, text=s)


def combine(weights: list[float], vectors: np.ndarray) -> np.ndarray:
    """The normalised weighted sum of unit vectors (rows); UsageError when they cancel out."""
    v = np.asarray(weights, np.float64) @ np.asarray(vectors, np.float64).reshape(len(weights), -1)
    norm = float(np.linalg.norm(v))
    if norm < 1e-6:
        raise UsageError("the query's terms cancel each other out: nothing is left to search for")
    return (v / norm).astype(np.float32)


def query_terms(text: str | None = None, image: str | None = None, add: Iterable[Term | str] = (),
                subtract: Iterable[Term | str] = ()) -> list[Term]:
    """The terms of one search: the query (text or image, weight 1), then `add` and `subtract` (each
    a Term, or a '[W:]VALUE' string for parse_term). UsageError when nothing positive is asked for."""
    if text is not None and image is not None:
        raise UsageError("give a text query or --image PATH, not both (add the other with --add)")
    if text is not None:
        check_text(text, "the query")
    query = (text or "").strip()
    terms = [Term(1.0, image=str(image))] if image is not None else [Term(1.0, text=query)] if query else []
    for sign, items in ((1.0, add), (-1.0, subtract)):
        for t in items or ():
            terms.append(t if isinstance(t, Term) else parse_term(t, sign))
    if not any(t.weight > 0 for t in terms):
        raise UsageError("empty query: give some words to search for, --image PATH or --add")
    return terms


def term_vectors(encoder: Encoder, store: VectorReads, terms: list[Term], known: dict[str, np.ndarray] | None = None,
                 limits: ImageLimits | None = None) -> np.ndarray:
    """(len(terms), D) unit vectors: texts in one batch (or from `known`, text -> vector), image files
    in one batch (read within `limits`, an ImageLimits), indexed images (`image:ID`) from `store`."""
    from clipseek.core.images import DEFAULT_LIMITS, open_image
    from clipseek.errors import ImageError

    known = dict(known or {})
    new = sorted({t.text for t in terms if t.text is not None} - set(known))
    if new:
        known.update(zip(new, encoder.encode_texts(new)))
    images = [t.image for t in terms if t.image is not None]
    opened = []
    for path in images:
        try:
            lim = limits or DEFAULT_LIMITS
            opened.append(open_image(path, max_pixels=lim.max_pixels, max_bytes=lim.max_bytes))
        except ImageError as e:  # a bad argument (exit 2), as an unknown filter value is
            raise UsageError(f"{path} is not a readable image: {e.reason}") from None
    image_vecs = iter(encoder.encode_images(opened) if opened else [])
    out = []
    for t in terms:
        if t.text is not None:
            out.append(known[t.text])
        elif t.image is not None:
            out.append(next(image_vecs))
        else:
            row = store.get_rows_with_vectors([t.image_id]).get(t.image_id) if t.image_id is not None else None
            if row is None:
                raise UsageError(f"no image with id {t.image_id} in the gallery")
            out.append(row[1])
    return np.stack(out)


# ---- relevance -------------------------------------------------------------------------------------
def _median(x: ArrayLike) -> float:
    """np.median without its first call's import of numpy.ma (9 ms of a cold `clipseek search`)."""
    x = np.asarray(x, np.float64).ravel()
    lo, hi = (len(x) - 1) // 2, len(x) // 2
    part = np.partition(x, [lo, hi])
    return float((part[lo] + part[hi]) / 2)


def relevance(scores: np.ndarray, background: np.ndarray,
              top: np.ndarray | list[float]) -> np.ndarray | None:
    """Each score's place between the median of `background` (the query's scores over a sample of
    the gallery: 0) and the mean of `top` (its best scores in the gallery: 1), within [-3, 3]; None
    when it is not defined (fewer than MIN_IMAGES in `background`, or no spread: see the module doc)."""
    if len(background) < MIN_IMAGES or not len(top):
        return None
    med = _median(background)
    spread = float(np.mean(top)) - med
    if not spread >= MIN_SPREAD:
        return None
    rel = (np.asarray(scores, np.float64) - med) / spread
    return np.clip(rel, -RELEVANCE_RANGE, RELEVANCE_RANGE)


def relevance_note(images: int) -> str:
    """Why a search could not tell the relevant results apart (relevance None), in one line."""
    if images < MIN_IMAGES:
        return (f"--relevant needs a gallery of at least {MIN_IMAGES} images (this one has {images}): "
                "every result is shown")
    return "--relevant: this query scores the best images no higher than a typical one: every result is shown"
