"""`GET /api/videos/{id}`: a gallery's video, streamed with HTTP range requests (RFC 9110 section 14).

The file is opened as `server.files.open_indexed` says for images (inside the gallery's roots, from
the root down following no link, a regular file of the size and time the index recorded), with no
byte limit (it is streamed, never read whole), and only when the row is a video. One range
`bytes=A-B`, `bytes=A-` or `bytes=-N` gets 206 with Content-Range; a range past the end gets 416
(`Content-Range: bytes */SIZE`); no Range, several ranges or one that does not parse get the whole
file (200): a server may ignore a Range it does not serve. Every answer says `Accept-Ranges: bytes`.
The bytes are read with `os.pread` from the descriptor opened and checked, 256 KiB at a time.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from clipseek.core.paths import text_or_replacement
from clipseek.server.checks import NotFound
from clipseek.server.files import Refused, open_indexed

CHUNK = 256 * 1024
TYPES = {".mp4": "video/mp4", ".m4v": "video/x-m4v", ".mov": "video/quicktime", ".webm": "video/webm",
         ".mkv": "video/x-matroska", ".avi": "video/x-msvideo"}
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


class Unsatisfiable(Exception):
    def __init__(self, size: int):
        super().__init__(f"range not satisfiable (the file has {size} bytes)")
        self.size = size


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) byte of the one range asked for, None for the whole file; Unsatisfiable."""
    m = _RANGE.fullmatch((header or "").strip().replace(" ", ""))
    if m is None or (not m[1] and not m[2]):
        return None
    if not m[1]:  # the last N bytes
        n = int(m[2])
        if n == 0 or size == 0:
            raise Unsatisfiable(size)
        return max(0, size - n), size - 1
    first = int(m[1])
    last = min(int(m[2]), size - 1) if m[2] else size - 1
    if m[2] and int(m[2]) < first:
        return None  # syntactically invalid: ignored
    if first >= size:
        raise Unsatisfiable(size)
    return first, last


def open_video(svc, video_id: int) -> tuple[int, int, str, str]:
    """(descriptor, size, media type, file name) of the video `video_id`; NotFound else. The caller
    closes the descriptor."""
    from clipseek.gallery.roots import gallery_roots

    row = svc._row(video_id)
    store = svc._thread_store()
    kind, _ = store.media_info([row.id]).get(row.id, (0, None))
    if kind != 1:
        raise NotFound(f"{video_id} is not a video (photos are at /api/images/{video_id})")
    try:
        opened = open_indexed(row.path, gallery_roots(store), row.size, row.mtime_ns, max_bytes=1 << 62)
    except Refused as e:
        raise NotFound(f"video {video_id} is not served: {e.reason}") from None
    suffix = os.path.splitext(row.path)[1].lower()
    return opened.fd, opened.size, TYPES.get(suffix, "application/octet-stream"), os.path.basename(row.path)


def stream(fd: int, first: int, last: int) -> Iterator[bytes]:
    """Bytes first..last of `fd`, closing it at the end (or when the client goes away)."""
    try:
        pos = first
        while pos <= last:
            block = os.pread(fd, min(CHUNK, last - pos + 1), pos)
            if not block:
                return  # the file shrank: the client sees a short body
            yield block
            pos += len(block)
    finally:
        os.close(fd)


def add_video_route(app, svc, guard, errors, token_param, image_id) -> None:
    @app.get("/api/videos/{video_id}", tags=["images"], summary="A video file by id, with range requests",
             response_class=Response, responses={200: {"description": "The video file"},
                                                 206: {"description": "The range asked for"},
                                                 416: {"description": "A range past the end"},
                                                 **errors(404, 422, guard=guard)})
    async def video(request: Request, video_id: int = image_id, token: str | None = token_param):
        fd, size, media, name = await run_in_threadpool(open_video, svc, video_id)
        headers = {"Accept-Ranges": "bytes", "Cache-Control": "private, max-age=3600",
                   "Content-Disposition": f"inline; filename*=utf-8''{quote(text_or_replacement(name))}"}
        try:
            span = parse_range(request.headers.get("range"), size)
        except Unsatisfiable as e:
            os.close(fd)
            return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{e.size}"})
        first, last = span or (0, size - 1)
        headers["Content-Length"] = str(last - first + 1)
        if span is not None:
            headers["Content-Range"] = f"bytes {first}-{last}/{size}"
        return StreamingResponse(stream(fd, first, last), status_code=206 if span else 200,
                                 media_type=media, headers=headers)
