"""The HTTP API and web page of `clipseek serve`. `create_app(...)` builds the FastAPI app (tested
in-process); `serve(...)` only hands it to uvicorn. All logic lives in clipseek.server.service.GalleryService
and every limit in clipseek.server.checks; this module maps requests to its calls and its errors to statuses.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Callable, List, Optional, Sequence
from urllib.parse import quote

from fastapi import FastAPI, File, Form, Path, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from clipseek._version import __version__
from clipseek.core.paths import json_text, text_or_replacement
from clipseek.errors import ClipseekError, UsageError
from clipseek.gallery.thumbs import THUMB_SIZES
from clipseek.server.checks import Limits, NotFound, TooLarge, Unavailable
from clipseek.server.guard import Guard, Hosts
from clipseek.server.schema import (
    Browse,
    BrowseItem,
    Folders,
    Classification,
    Health,
    ImageSearch,
    TextSearch,
    errors,
    guard_statuses,
    image_content,
)
from clipseek.server.service import GalleryService

if TYPE_CHECKING:
    from clipseek.model.base import Encoder
    from clipseek.model.spec import ModelSpec

STATIC_DIR = os.path.join(os.path.dirname(__file__), "static")
IMAGE_ID = Path(..., ge=1, le=2 ** 63 - 1, description="An image id from a search result.")
TERM_HELP = ("{} a meaning (repeatable): text, or image:ID (an image of the gallery); optionally "
             "weighted as W:VALUE, e.g. 0.5:sunset.")
ADD_HELP, SUBTRACT_HELP = TERM_HELP.format("Add"), TERM_HELP.format("Subtract")
TOKEN_PARAM = Query(None, description="The --token, for <img> tags that cannot send headers.")


class PathSafeJSON(JSONResponse):
    """JSON whose strings may hold file names that are not UTF-8: they are written as `\\udcXX`
    escapes (`core.paths.json_text`), so the body is always valid UTF-8 and the name survives."""

    def render(self, content) -> bytes:
        return json_text(content).encode("utf-8")


def _error(status: int, message: str) -> JSONResponse:
    return PathSafeJSON({"error": message}, status_code=status)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ClipseekError)
    async def clipseek_error(request, exc: ClipseekError):
        status = 404 if isinstance(exc, NotFound) else 413 if isinstance(exc, TooLarge) else \
            400 if isinstance(exc, UsageError) else 503 if isinstance(exc, Unavailable) else 500
        return _error(status, str(exc))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("query", "path", "body"))
        return _error(422, f"{where}: {first.get('msg', 'invalid request')}".lstrip(": "))

    @app.exception_handler(HTTPException)
    async def http_error(request, exc: HTTPException):
        return PathSafeJSON({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)


def create_app(gallery_or_db, encoder: Encoder | None = None, *, spec: ModelSpec | None = None,
               token: str | None = None, limits: Limits = Limits(), host: str = "127.0.0.1",
               allowed_hosts: list[str] | None = None, thumb_dir: str | None = None,
               classifier=None) -> FastAPI:
    """The app for one gallery (a Gallery or a database path). The model (`encoder`, else `spec`,
    else the one the database records) is loaded here, once.

    `token`: every /api call then needs `Authorization: Bearer <token>` (images and thumbnails also
    accept `?token=`). The Host header must name loopback, `host` (the address the server is bound
    to), this machine, or one of `allowed_hosts` (see server.guard.Hosts); cross-site requests to
    the API are refused (server.guard). No interactive docs page: the schema is at /openapi.json.
    `classifier`: a fitted few-shot classifier (or a function encoder -> one) for
    `POST /api/classify/examples` (server.fitted)."""
    svc = GalleryService(gallery_or_db, encoder, spec=spec, limits=limits, thumb_dir=thumb_dir)

    @asynccontextmanager
    async def lifespan(app):
        yield
        await run_in_threadpool(svc.close)

    app = FastAPI(title="clipseek", version=__version__, docs_url=None, redoc_url=None, lifespan=lifespan,
                  default_response_class=PathSafeJSON,
                  description="Search an indexed image gallery by text or by example image, and "
                              "classify images zero-shot against your labels, with a CLIP model.")
    app.state.service = svc
    app.add_middleware(Guard, token=token, max_body=limits.max_upload_bytes + (1 << 20),
                       hosts=Hosts.for_bind(host, allowed_hosts or ()))
    _add_error_handlers(app)
    _add_routes(app, svc, limits, guard_statuses(token))
    if classifier is not None:
        from clipseek.server.fitted import add_fitted_routes

        add_fitted_routes(app, svc, classifier, limits, guard_statuses(token))
    _add_page(app)
    return app


def _add_page(app: FastAPI) -> None:
    """The web page and its static files, and a JSON 404/405 for any other /api path."""
    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(os.path.join(STATIC_DIR, "index.html"))  # headers: server.guard

    @app.api_route("/api/{rest:path}", methods=["GET", "POST", "PUT", "DELETE", "PATCH"],
                   include_in_schema=False)
    async def no_such_api(request: Request, rest: str):
        allowed = sorted({m for r in app.routes if isinstance(r, APIRoute) and r.include_in_schema
                          and r.path_regex.match(request.url.path) for m in r.methods})
        if allowed:  # a known path, another method: 405 and what it takes, not "no such endpoint"
            return PathSafeJSON({"error": f"{request.method} is not allowed here; use {', '.join(allowed)}"},
                                status_code=405, headers={"Allow": ", ".join(allowed)})
        return _error(404, "no such API endpoint; see /openapi.json")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")


def _add_routes(app: FastAPI, svc: GalleryService, limits: Limits, guard: tuple[int, ...]) -> None:
    """The API. Every status a route can answer is in its `responses` (schema.py), so /openapi.json
    tells the truth; FastAPI checks the ranges the schema states (422), the service the rest (400)."""
    _info_routes(app, svc, guard)
    _search_routes(app, svc, limits, guard)
    _classify_routes(app, svc, limits, guard)
    _dupes_routes(app, svc, guard)
    _browse_routes(app, svc, limits, guard)
    _image_routes(app, svc, guard)
    from clipseek.server.videos import add_video_route

    add_video_route(app, svc, guard, errors, TOKEN_PARAM, Path(..., ge=1, le=2 ** 63 - 1,
                                                            description="A video's id from a search result."))


def _info_routes(app: FastAPI, svc: GalleryService, guard: tuple[int, ...]) -> None:
    @app.get("/api/health", tags=["info"], responses={200: {"model": Health}, **errors(guard=guard)})
    async def health():
        return {"status": "ok", "version": __version__}

    @app.get("/api/stats", tags=["info"], responses=errors(guard=guard))
    async def stats():
        return await run_in_threadpool(svc.stats)


def _search_routes(app: FastAPI, svc: GalleryService, limits: Limits, guard: tuple[int, ...]) -> None:
    @app.get("/api/search", tags=["search"], summary="Images matching a text query",
             responses={200: {"model": TextSearch}, **errors(400, 422, guard=guard)})
    async def search(q: str = Query("", max_length=limits.max_query_chars,
                                    description="Text to search for, e.g. 'a dog on a beach' (may be "
                                                "empty when `add` gives a term)."),
                     k: int = Query(20, ge=1, le=limits.max_k, description="Number of results."),
                     add: List[str] = Query([], description=ADD_HELP),
                     subtract: List[str] = Query([], description=SUBTRACT_HELP),
                     folders: List[str] = Query([], alias="in", description="Only images under this folder "
                                                "(relative to the gallery's root; repeatable)."),
                     after: Optional[str] = Query(None, description="Taken on or after (YYYY-MM-DD...)."),
                     before: Optional[str] = Query(None, description="Taken before (YYYY-MM-DD...)."),
                     orientation: Optional[str] = Query(None, description="landscape, portrait or square."),
                     min_size: Optional[str] = Query(None, alias="min-size", description="WIDTHxHEIGHT."),
                     ext: Optional[str] = Query(None, description="File types, e.g. jpg,png."),
                     relevant: bool = Query(False, description="Only results that stand out from the "
                                            "query's scores over the gallery."),
                     cursor: Optional[str] = Query(None, max_length=20, description="The `cursor` of the "
                                                   "page before: the next k results (up to the limit's).")):
        opts = await run_in_threadpool(svc.options, add, subtract, folders, after, before, orientation,
                                       min_size, ext, relevant)
        return await asyncio.wrap_future(svc.submit_search_text(q, k, opts, cursor))  # on the model thread

    @app.post("/api/search/image", tags=["search"], summary="Images similar to an uploaded image",
              responses={200: {"model": ImageSearch}, **errors(400, 413, 422, guard=guard)})
    async def search_image(file: UploadFile = File(..., description="The example image."),
                           k: int = Form(20, ge=1, le=limits.max_k), add: List[str] = Form([]),
                           subtract: List[str] = Form([]),
                           folders: List[str] = Form([], alias="in"), after: Optional[str] = Form(None),
                           before: Optional[str] = Form(None), orientation: Optional[str] = Form(None),
                           min_size: Optional[str] = Form(None, alias="min-size"),
                           ext: Optional[str] = Form(None), relevant: bool = Form(False)):
        opts = await run_in_threadpool(svc.options, add, subtract, folders, after, before, orientation,
                                       min_size, ext, relevant)
        data = await file.read(limits.max_upload_bytes + 1)
        return await run_in_threadpool(svc.search_image, data, k, file.filename or "", opts)


def _classify_routes(app: FastAPI, svc: GalleryService, limits: Limits, guard: tuple[int, ...]) -> None:
    @app.post("/api/classify", tags=["classify"], summary="Zero-shot probabilities of labels",
              responses={200: {"model": Classification}, **errors(400, 413, 422, guard=guard)})
    async def classify(file: UploadFile = File(..., description="The image to classify."),
                       labels: List[str] = Form(..., min_length=1, description="Labels: repeat the field, or "
                                                "separate them by commas or new lines."),
                       templates: Optional[List[str]] = Form(None, description="Prompt templates with "
                                                             "exactly one '{}' and no other braces, or "
                                                             "'imagenet' (80 templates).")):
        data = await file.read(limits.max_upload_bytes + 1)
        return await run_in_threadpool(svc.classify, data, labels, templates, file.filename or "")


def _dupes_routes(app: FastAPI, svc: GalleryService, guard: tuple[int, ...]) -> None:
    @app.get("/api/dupes", tags=["search"], summary="Groups of duplicate images, with a keeper each",
             responses=errors(400, 422, guard=guard))
    async def dupes(similar: bool = Query(False, description="Also group near-identical shots (bursts) "
                                          "by CLIP cosine >= threshold."),
                    threshold: float = Query(0.95, description="CLIP cosine for similar shots."),
                    limit: int = Query(500, description="Groups to return at most, the largest first.")):
        return await run_in_threadpool(svc.dupes, similar, threshold, limit)


def _browse_routes(app: FastAPI, svc: GalleryService, limits: Limits, guard: tuple[int, ...]) -> None:
    """The gallery without a query: newest first, paged by a cursor; its folders and months."""
    IN = Query([], alias="in", description="Only images under this folder (relative to the gallery's "
               "root; repeatable).")
    AFTER = Query(None, description="Taken on or after (YYYY-MM-DD...).")
    BEFORE = Query(None, description="Taken before (YYYY-MM-DD...).")

    @app.get("/api/browse", tags=["browse"], summary="The gallery, newest capture first, a page at a time",
             responses={200: {"model": Browse}, **errors(400, 422, guard=guard)})
    async def browse(cursor: Optional[str] = Query(None, max_length=48, description="The `cursor` of the "
                                                   "page before (none: the newest images)."),
                     limit: int = Query(100, ge=1, le=limits.max_browse, description="Images per page."),
                     folders: List[str] = IN, after: Optional[str] = AFTER, before: Optional[str] = BEFORE,
                     orientation: Optional[str] = Query(None, description="landscape, portrait or square."),
                     min_size: Optional[str] = Query(None, alias="min-size", description="WIDTHxHEIGHT."),
                     ext: Optional[str] = Query(None, description="File types, e.g. jpg,png.")):
        opts = await run_in_threadpool(svc.options, (), (), folders, after, before, orientation, min_size, ext)
        return await run_in_threadpool(svc.browse, opts, cursor, limit)

    @app.get("/api/folders", tags=["browse"], summary="Every folder and month with its count of images",
             responses={200: {"model": Folders}, **errors(400, 422, guard=guard)})
    async def folders(after: Optional[str] = AFTER, before: Optional[str] = BEFORE):
        opts = await run_in_threadpool(svc.options, (), (), (), after, before)
        return await run_in_threadpool(svc.folders, opts)


def _image_routes(app: FastAPI, svc: GalleryService, guard: tuple[int, ...]) -> None:
    """The original image and its thumbnail, by id (`?token=` works too, for <img> tags)."""
    @app.get("/api/images/{image_id}", tags=["images"], summary="The original image file, by id",
             response_class=Response,
             responses={**image_content("The image file (formats browsers cannot show are sent as "
                                        "a JPEG copy)"), **errors(404, 422, guard=guard)})
    async def image(image_id: int = IMAGE_ID, token: Optional[str] = TOKEN_PARAM):
        data, media, name = await run_in_threadpool(svc.image, image_id)  # the bytes checked (server.files)
        return Response(data, media_type=media, headers={
            "Cache-Control": "private, max-age=3600",
            "Content-Disposition": f"inline; filename*=utf-8''{quote(text_or_replacement(name))}"})

    @app.get("/api/info/{image_id}", tags=["images"], summary="An image's details, by id",
             responses={200: {"model": BrowseItem}, **errors(404, 422, guard=guard)})
    async def info(image_id: int = IMAGE_ID):
        return await run_in_threadpool(svc.info, image_id)

    @app.get("/api/thumbs/{image_id}", tags=["images"], summary="A JPEG thumbnail (made at index time), by id",
             response_class=Response,
             responses={**image_content("A JPEG thumbnail", ["image/jpeg"]), **errors(404, 422, guard=guard)})
    async def thumb(request: Request, image_id: int = IMAGE_ID, token: Optional[str] = TOKEN_PARAM,
                    size: str = Query("grid", pattern="^(grid|view)$", description="grid (256 px on the "
                                      "long side) or view (1,280 px, the viewer)."),
                    h: Optional[str] = Query(None, max_length=128, description="The image's content hash "
                                             "(search results' `hash`): with it the answer is cached for a year.")):
        data, content = await run_in_threadpool(svc.thumbnail_of, image_id, THUMB_SIZES[size])
        return thumb_response(data, content, size, h, request.headers.get("if-none-match"))


def thumb_response(data: bytes, content: str, size: str, h: str | None, if_none_match: str | None) -> Response:
    """A thumbnail with its validator (ETag: content hash and size); cached for a year, immutable, when
    the URL names the content (`?h=` the image's hash), else revalidated each time (304 when unchanged).
    `private`: a gallery's pictures stay out of shared caches."""
    etag = f'"{content}-{size}"'
    cache = "private, max-age=31536000, immutable" if h == content else "private, no-cache"
    headers = {"ETag": etag, "Cache-Control": cache}
    if if_none_match and etag in [t.strip() for t in if_none_match.split(",")]:
        return Response(status_code=304, headers=headers)
    return Response(data, media_type="image/jpeg", headers=headers)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def exposure_warning(host: str, token: str | None) -> str | None:
    """The warning to print when the server is reachable from other machines without a token."""
    if is_loopback(host) or token:
        return None
    return (f"WARNING: serving on {host}, which other machines can reach, WITHOUT a token "
            "(--no-token): anyone on the network can search your gallery and download its images; "
            "--token SECRET closes it.")


def check_exposure(host: str, token: str | None, no_token: bool) -> None:
    """UsageError for a bind other machines can reach without a token, unless `no_token` says so."""
    if token and no_token:
        raise UsageError("--token and --no-token contradict each other; give one")
    if not is_loopback(host) and not token and not no_token:
        raise UsageError(f"--host {host} lets other machines connect: give --token SECRET (or "
                         "$CLIPSEEK_TOKEN), or --no-token on a network you trust")


def serve(db: str, host: str = "127.0.0.1", port: int = 8000, spec: ModelSpec | None = None,
          token: str | None = None, log_level: str = "info", max_pixels: int | None = None,
          watch: dict | None = None, allow_hosts: Sequence[str] = (), no_token: bool = False,
          header_timeout: float | None = None, announce: Callable[[str], None] = lambda line: None,
          classifier=None) -> None:
    """Build the app and run it under uvicorn until interrupted; `announce` gets the lines a person
    should see (an exposure warning, the address to open). `max_pixels`: the image limit of
    uploads (default: the CLI's, 64 MP). `watch`: the keyword arguments of GalleryService.watch
    (dirs, poll, interval, on_batch, on_stop) plus `on_start(watcher)`. A host other machines can
    reach needs a `token` or `no_token=True`; `allow_hosts`: more Host names to answer to;
    `header_timeout`: seconds a client has to send a request's headers (server.protocol);
    `classifier`: see create_app."""
    import uvicorn

    from clipseek.core.paths import quote_path
    from clipseek.server.protocol import HEADER_TIMEOUT, uvicorn_options

    check_exposure(host, token, no_token)
    try:
        options = uvicorn_options(HEADER_TIMEOUT if header_timeout is None else header_timeout)
    except ValueError as e:
        raise UsageError(str(e)) from None
    # OpenMP threads (torch, faiss) spin after each parallel region by default, stealing the cores
    # that the HTTP side needs between forwards: 4-5x fewer requests/s on a 2-core box. Must be set
    # before torch loads, which create_app does below.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    warning = exposure_warning(host, token)
    if warning:
        announce(warning)
    lim = Limits(max_pixels=max_pixels) if max_pixels else Limits()
    if watch and not os.path.exists(db):  # a new gallery: its first pass makes it (and names its model)
        from clipseek.core.images import ImageLimits
        from clipseek.gallery.gallery import Gallery

        with Gallery(db, spec=spec) as g:
            g.index(watch["dirs"], limits=ImageLimits.from_options(max_pixels))
    app = create_app(db, spec=spec, token=token, limits=lim, host=host, allowed_hosts=list(allow_hosts),
                     classifier=classifier)
    if watch:
        watching = dict(watch)
        on_start = watching.pop("on_start", None)
        watcher = app.state.service.watch(**watching)
        if on_start:
            on_start(watcher)
    n = app.state.service.stats()["images"]
    shown = f"[{host}]" if ":" in host else host
    announce(f"{n:,} images in {quote_path(app.state.service.db_path)}; open http://{shown}:{port}/"
             + ("?token=TOKEN once" if token else ""))
    uvicorn.run(app, host=host, port=port, log_level=log_level, **options)
