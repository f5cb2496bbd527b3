"""Every request limit of the server, and the checks that apply them before any model work.

`Limits` are the numbers (`/api/stats` shows them); the functions below take them and raise
`UsageError` (HTTP 400) or `TooLarge` (413) for a request over them. `NotFound` (404) is here too, so
that the HTTP layer maps the service's errors to statuses from one place.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

from clipseek.core.files import DEFAULT_MAX_PIXELS
from clipseek.core.prompts import (
    BUILTIN_TEMPLATE_SETS,
    DEFAULT_TEMPLATE,
    builtin_templates,
    check_template,
    clean_labels,
    split_labels,
)
from clipseek.errors import ClipseekError, ImageError, UsageError
from clipseek.gallery.query import Filter, Term, parse_term


class NotFound(ClipseekError):
    """No image with that id in the gallery (or its file is gone from disk)."""


class TooLarge(UsageError):
    """An upload or an image over the size or pixel limit."""


class Unavailable(ClipseekError):
    """The gallery cannot be served any more (its database was deleted while `serve --watch` ran): 503."""


@dataclass(frozen=True)
class Limits:
    max_upload_bytes: int = 20 * 1024 * 1024
    max_pixels: int = DEFAULT_MAX_PIXELS  # decoded uploads (the CLI's limit): 64 MP x 3 bytes, ~190 MB
    max_k: int = 200                    # results of one search, over all its pages
    max_browse: int = 500               # rows of one browse page
    max_query_chars: int = 500
    max_labels: int = 1000
    max_label_chars: int = 200
    max_templates: int = 100
    max_prompts: int = 20_000           # labels x templates texts to encode for one classify call
    max_dupe_groups: int = 5_000
    max_terms: int = 16                 # add + subtract terms of one search
    max_folders: int = 16               # `in` folders of one search

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class SearchOptions:
    """What a search asks for besides its query: terms to add and subtract, a filter, relevant-only."""

    add: tuple[Term, ...] = ()
    subtract: tuple[Term, ...] = ()
    where: Filter = Filter()
    relevant: bool = False

    def terms(self, q: str) -> list[Term]:
        return ([Term(1.0, text=q.strip())] if q.strip() else []) + list(self.add) + list(self.subtract)


def check_k(lim: Limits, k: int) -> int:
    if not 1 <= k <= lim.max_k:
        raise UsageError(f"k must be between 1 and {lim.max_k}, got {k}")
    return k


def check_query(lim: Limits, q: str, opts: SearchOptions) -> None:
    if len(q) > lim.max_query_chars:
        raise UsageError(f"query too long: {len(q)} characters (the limit is {lim.max_query_chars})")
    if not q.strip() and not opts.add:
        raise UsageError("empty query: give some words to search for (or a term to add)")


def parse_options(lim: Limits, root: str, add: Sequence[str] = (), subtract: Sequence[str] = (),
                  folders: Sequence[str] = (), after: str | None = None, before: str | None = None,
                  orientation: str | None = None, min_size: str | None = None, ext: str | None = None,
                  relevant: bool = False) -> SearchOptions:
    """Search options from request parameters, within the limits; raises UsageError. Terms are
    text or `image:ID`, never a path on the server; folders are relative to `root`, the gallery's."""
    add, subtract, folders = list(add or ()), list(subtract or ()), list(folders or ())
    if len(add) + len(subtract) > lim.max_terms:
        raise UsageError(f"too many add/subtract terms: {len(add) + len(subtract)} (the limit is "
                         f"{lim.max_terms})")
    if len(folders) > lim.max_folders:
        raise UsageError(f"too many folders: {len(folders)} (the limit is {lim.max_folders})")
    if any(len(x) > lim.max_query_chars for x in add + subtract + folders + [ext or "", min_size or ""]):
        raise UsageError(f"parameter too long (the limit is {lim.max_query_chars} characters)")
    return SearchOptions(tuple(parse_term(a, 1.0, allow_paths=False) for a in add),
                         tuple(parse_term(a, -1.0, allow_paths=False) for a in subtract),
                         Filter.parse(folders, after, before, orientation, min_size, ext, root=root), relevant)


def decode_upload(lim: Limits, data: bytes, name: str):
    """The uploaded image, decoded within the byte and pixel limits (TooLarge, else UsageError)."""
    from clipseek.core.images import open_image_bytes

    if len(data) > lim.max_upload_bytes:
        raise TooLarge(f"upload too large: over the limit of {lim.max_upload_bytes:,} bytes")
    try:
        return open_image_bytes(data, name=name or "upload", max_pixels=lim.max_pixels)
    except ImageError as e:
        cls = TooLarge if "too many pixels" in e.reason else UsageError
        raise cls(f"upload {name or ''} is not a usable image: {e.reason}".replace("  ", " ")) from None


def check_labels(lim: Limits, labels: Sequence[str]) -> list[str]:
    items = split_labels(labels)
    if len(items) > lim.max_labels:
        raise UsageError(f"too many labels: {len(items)} (the limit is {lim.max_labels})")
    long = [l for l in items if len(l) > lim.max_label_chars]
    if long:
        raise UsageError(f"label too long: {len(long[0])} characters "
                         f"(the limit is {lim.max_label_chars})")
    return clean_labels(items)


def check_templates(lim: Limits, templates: Sequence[str] | None, n_labels: int) -> list[str]:
    """A built-in set by name, or template strings; never a file on the server."""
    items = [t for t in (templates or []) if t.strip()]
    if len(items) == 1 and items[0].strip() in BUILTIN_TEMPLATE_SETS:
        items = builtin_templates(items[0].strip())
    else:
        if len(items) > lim.max_templates:
            raise UsageError(f"too many templates: {len(items)} (the limit is {lim.max_templates})")
        if any(len(t) > lim.max_query_chars for t in items):
            raise UsageError(f"template too long (the limit is {lim.max_query_chars} characters)")
        items = [check_template(t.strip()) for t in items] or [DEFAULT_TEMPLATE]
    if n_labels * len(items) > lim.max_prompts:
        raise UsageError(f"{n_labels} labels x {len(items)} templates = {n_labels * len(items):,} "
                         f"prompts; the limit is {lim.max_prompts:,}")
    return items
