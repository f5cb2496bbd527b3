"""ASGI middleware in front of the API: bearer token, allowed Host names, request body size.

Pure ASGI (not BaseHTTPMiddleware) so a body over the limit is refused while it streams in: a
Content-Length over the limit gets 413 before anything is read, and a body without one is counted
chunk by chunk and cut off with 413 as soon as it passes the limit.
"""

from __future__ import annotations

import hmac
import json
from typing import Iterable

# GET requests for these may carry the token as ?token=, because an <img src> cannot send headers.
TOKEN_QUERY_PREFIXES = ("/api/images/", "/api/thumbs/")


async def send_json(send, status: int, message: str, headers: Iterable[tuple[bytes, bytes]] = ()) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()), *headers]})
    await send({"type": "http.response.body", "body": body})


def _query_token(query_string: bytes) -> str | None:
    from urllib.parse import parse_qs

    values = parse_qs(query_string.decode("latin-1")).get("token")
    return values[0] if values else None


class Guard:
    def __init__(self, app, *, token: str | None, max_body: int, allowed_hosts: Iterable[str] | None):
        self.app, self.token, self.max_body = app, token, max_body
        self.allowed_hosts = {h.lower() for h in allowed_hosts} if allowed_hosts else None

    def _host_ok(self, headers: dict[bytes, bytes]) -> bool:
        if self.allowed_hosts is None:
            return True
        host = headers.get(b"host", b"").decode("latin-1").lower()
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        return name in self.allowed_hosts or host in self.allowed_hosts

    def _token_ok(self, scope, headers: dict[bytes, bytes]) -> bool:
        if self.token is None:
            return True
        auth = headers.get(b"authorization", b"").decode("latin-1")
        given = auth[7:].strip() if auth[:7].lower() == "bearer " else None
        if given is None and scope["method"] in ("GET", "HEAD") and \
                scope["path"].startswith(TOKEN_QUERY_PREFIXES):
            given = _query_token(scope.get("query_string", b""))
        return given is not None and hmac.compare_digest(given.encode(), self.token.encode())

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        if not self._host_ok(headers):  # a DNS-rebinding page would arrive with its own Host name
            return await send_json(send, 400, "unexpected Host header; open the page as "
                                   "http://127.0.0.1:PORT/ or http://localhost:PORT/")
        if scope["path"].startswith("/api/") and not self._token_ok(scope, headers):
            return await send_json(send, 401, "missing or wrong token: send 'Authorization: Bearer "
                                   "<token>' (the token given to clipseek serve --token)",
                                   [(b"www-authenticate", b"Bearer")])
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            return await send_json(send, 413, f"request body too large: the limit is {self.max_body:,} bytes")
        seen, refused = 0, False

        async def counting_receive():
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_body:  # answer now; the app sees a client that went away
                refused = True
                await send_json(send, 413, f"request body too large: the limit is {self.max_body:,} bytes")
                return {"type": "http.disconnect"}
            return message

        async def guarded_send(message):
            if not refused:
                await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not refused:
                raise
