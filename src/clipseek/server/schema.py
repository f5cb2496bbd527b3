"""What the OpenAPI schema says the API answers: response bodies and every status each route can
return, so that `/openapi.json` tells the truth (tests/server/test_schema.py checks it with
schemathesis). The models only document; responses are plain dicts (a file name need not be UTF-8,
which pydantic strings cannot hold; `app.PathSafeJSON` writes them)."""

from __future__ import annotations

from typing import List, Optional

from pydantic import BaseModel

from clipseek.gallery.thumbs import WEB_TYPES


class ErrorBody(BaseModel):
    error: str


class Moment(BaseModel):
    time_s: float
    score: float


class Result(BaseModel):
    id: int
    path: str  # relative to the gallery's root folder
    score: float
    width: int
    height: int
    relevance: Optional[float]  # 0: the query's median over the gallery, 1: its best match; null: a gallery too small
    relevant: bool
    hash: Optional[str] = None  # content hash: the thumbnail's `?h=` (GET /api/thumbs/{id}?size=grid&h=HASH)
    kind: str = "photo"  # "photo" or "video" (/api/videos/{id} streams it)
    time_s: Optional[float] = None  # a video: its best moment's time (its score is that moment's)
    moments: List[Moment] = []  # a video: its best moments, best first


class ImageSearch(BaseModel):
    k: int
    cursor: Optional[str] = None  # the next page (GET /api/search?cursor=...); null: no more
    matched: int = 0              # images the filter lets the search rank (the whole gallery without one)
    add: List[str]
    subtract: List[str]
    filter: Optional[str] = None
    relevant: bool
    results: List[Result]
    message: Optional[str] = None


class TextSearch(ImageSearch):
    query: str


class BrowseItem(BaseModel):
    id: int
    path: str    # relative to the gallery's root folder
    folder: str  # its folder, relative to the root ('' is the root)
    width: int
    height: int
    size: int    # bytes
    taken: str   # capture time (EXIF, else the file's modification time), ISO 8601 UTC


class Browse(BaseModel):
    total: int                    # images that pass the filter, over all pages
    cursor: Optional[str] = None  # the next page; null: this was the last
    results: List[BrowseItem]


class FolderCount(BaseModel):
    path: str    # relative to the gallery's root ('' is the root itself)
    count: int   # images directly in it


class MonthCount(BaseModel):
    month: str   # YYYY-MM (UTC)
    count: int


class Folders(BaseModel):
    folders: List[FolderCount]
    months: List[MonthCount]  # newest first


class Prediction(BaseModel):
    label: str
    score: float


class Classification(BaseModel):
    labels: List[str]
    templates: int
    scoring: str
    predictions: List[Prediction]


class Health(BaseModel):
    status: str
    version: str


_WHY = {400: "Bad request: a value the server refuses (see `error`)",
        401: "Missing or wrong token (the server runs with --token)",
        403: "A cross-site request (its Origin or Sec-Fetch-Site names another site)",
        404: "No such image, or its file is gone or changed since indexing",
        405: "Method not allowed on this path",
        413: "Upload over the size limit, or an image over the pixel limit",
        422: "A parameter is missing or has the wrong type or range"}


def errors(*codes: int, guard: tuple[int, ...] = ()) -> dict:
    """`responses=` entries for the error statuses a route can return (`guard`: the middleware's)."""
    return {c: {"model": ErrorBody, "description": _WHY[c]} for c in sorted({*codes, *guard})}


def image_content(description: str, types=None) -> dict:
    """A 200 whose body is an image file (not JSON)."""
    media = sorted(set(types or WEB_TYPES.values()))
    return {200: {"description": description,
                  "content": {m: {"schema": {"type": "string", "format": "binary"}} for m in media}}}


def guard_statuses(token: Optional[str]) -> tuple[int, ...]:
    """Statuses the Guard middleware answers before any route: 400 for another Host, 403 for a
    cross-site request, 401 with a token."""
    return (400, 403, *((401,) if token is not None else ()))
