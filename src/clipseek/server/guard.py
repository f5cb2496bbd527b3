"""ASGI middleware in front of everything: Host names, Origin, bearer token, request body size, and
the security headers of every response.

Pure ASGI (not BaseHTTPMiddleware) so a body over the limit is refused while it streams in: a
Content-Length over the limit gets 413 before anything is read, and a body without one is counted
chunk by chunk and cut off with 413 as soon as it passes the limit. It is the outermost layer that
answers, so its headers (Content-Security-Policy, nosniff, no referrer) are on every response, errors
included, and an exception no handler took becomes a JSON 500 here (logged), never a plain-text one.

- **Host** (always on; DNS rebinding): `Hosts` — loopback names, the bound address, this machine's
  names, the `--allow-host` names; with a wildcard bind (0.0.0.0, ::) also any IP address literal,
  which no other site can make a browser send (rebinding needs a name the attacker controls).
- **Origin** (cross-site requests): every `/api/` request but GETs of images and thumbnails (meant
  for `<img>` tags and links) must come from the page's own origin (`Origin` equal to the Host, or
  naming an `--allow-host` host) or carry no `Origin` and no `Sec-Fetch-Site: cross-site|same-site`
  (curl, scripts). Else 403, before any work.
"""

from __future__ import annotations

import functools
import hmac
import ipaddress
import json
import logging
import socket
from dataclasses import dataclass
from typing import Iterable
from urllib.parse import urlsplit

# GET requests for these may carry the token as ?token=, because an <img>/<video src> cannot send headers.
TOKEN_QUERY_PREFIXES = ("/api/images/", "/api/thumbs/", "/api/videos/")
CSP = ("default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
       "object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
SECURITY_HEADERS = ((b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"))
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
WILDCARDS = ("0.0.0.0", "::", "")
log = logging.getLogger("uvicorn.error")


def host_name(netloc: str) -> str:
    """The name in a Host header or URL authority: lower case, no port, no brackets, no final dot."""
    h = netloc.strip().lower()
    if h.startswith("["):
        h = h[1:h.find("]")] if "]" in h else h[1:]
    elif h.count(":") == 1:
        h = h.split(":", 1)[0]
    return h.rstrip(".")


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return False


@functools.lru_cache(maxsize=1)
def _machine_names() -> frozenset[str]:
    """This machine's host name and fully qualified name (looked up once: getfqdn may ask DNS)."""
    names = set()
    for get in (socket.gethostname, socket.getfqdn):
        try:
            names.add(get())
        except OSError:
            pass
    return frozenset(host_name(n) for n in names if n)


@dataclass(frozen=True)
class Hosts:
    """The Host names the server answers to (see the module's docstring)."""

    names: frozenset[str]
    extra: frozenset[str] = frozenset()  # --allow-host: also trusted as the host of an Origin
    any_ip: bool = False

    @classmethod
    def for_bind(cls, bind: str = "127.0.0.1", extra: Iterable[str] = ()) -> "Hosts":
        extra = frozenset(host_name(e) for e in extra if e.strip())
        names = {*LOOPBACK_NAMES, *_machine_names(), host_name(bind), *extra} - {""}
        return cls(frozenset(names), extra, host_name(bind) in WILDCARDS)

    def allows(self, netloc: str) -> bool:
        name = host_name(netloc)
        if name in self.names:
            return True
        if not _is_ip(name):
            return False
        return self.any_ip or ipaddress.ip_address(name).is_loopback


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


def _no_default_port(netloc: str) -> str:
    for port in (":80", ":443"):
        if netloc.endswith(port):
            return netloc[:-len(port)]
    return netloc


def with_security_headers(send):
    """`send` that adds SECURITY_HEADERS to a response that does not set them itself."""
    async def secured(message):
        if message["type"] == "http.response.start":
            have = {k.lower() for k, _ in message.get("headers", [])}
            message = {**message, "headers": [*message.get("headers", []),
                                              *(h for h in SECURITY_HEADERS if h[0] not in have)]}
        await send(message)
    return secured


class Guard:
    def __init__(self, app, *, token: str | None, max_body: int, hosts: Hosts):
        self.app, self.token, self.max_body, self.hosts = app, token, max_body, hosts

    def _origin_ok(self, scope, headers: dict[bytes, bytes]) -> bool:
        """False for a cross-site request to a route that costs work (see the module's docstring)."""
        if not scope["path"].startswith("/api/") or (
                scope["method"] in ("GET", "HEAD") and scope["path"].startswith(TOKEN_QUERY_PREFIXES)):
            return True
        origin = headers.get(b"origin")
        if origin is None:
            return headers.get(b"sec-fetch-site", b"").lower() not in (b"cross-site", b"same-site")
        parts = urlsplit(origin.decode("latin-1").strip())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return False  # "null": a sandboxed frame, a file:// page
        netloc = _no_default_port(parts.netloc.lower())
        host = _no_default_port(headers.get(b"host", b"").decode("latin-1").strip().lower())
        return netloc == host or host_name(netloc) in self.hosts.extra

    def _token_ok(self, scope, headers: dict[bytes, bytes]) -> bool:
        if self.token is None:
            return True
        auth = headers.get(b"authorization", b"").decode("latin-1")
        given = auth[7:].strip() if auth[:7].lower() == "bearer " else None
        if given is None and scope["method"] in ("GET", "HEAD") and \
                scope["path"].startswith(TOKEN_QUERY_PREFIXES):
            given = _query_token(scope.get("query_string", b""))
        return given is not None and hmac.compare_digest(given.encode(), self.token.encode())

    async def _refuse(self, scope, headers: dict[bytes, bytes], send) -> bool:
        """Answer the request here when a check fails (True), else False."""
        if not self.hosts.allows(headers.get(b"host", b"").decode("latin-1")):  # DNS rebinding
            await send_json(send, 400, "unexpected Host header; open the page by this machine's name or "
                            "address (clipseek serve --allow-host NAME adds a name)")
        elif not self._origin_ok(scope, headers):
            await send_json(send, 403, "cross-origin request refused: the API answers its own page "
                            "(clipseek serve --allow-host NAME trusts another host)")
        elif scope["path"].startswith("/api/") and not self._token_ok(scope, headers):
            await send_json(send, 401, "missing or wrong token: send 'Authorization: Bearer "
                            "<token>' (the token given to clipseek serve --token)",
                            [(b"www-authenticate", b"Bearer")])
        elif (length := headers.get(b"content-length")) is not None and \
                (not length.isdigit() or int(length) > self.max_body):
            await send_json(send, 413, f"request body too large: the limit is {self.max_body:,} bytes")
        else:
            return False
        return True

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        send = with_security_headers(send)
        headers = dict(scope["headers"])
        if await self._refuse(scope, headers, send):
            return
        seen, refused, started = 0, False, False

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
            nonlocal started
            if not refused:
                started = True
                await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if refused:
                return
            if started:
                raise
            log.exception("clipseek: internal error on %s %s", scope["method"], scope["path"])
            await send_json(send, 500, "internal error (logged by the server)")
