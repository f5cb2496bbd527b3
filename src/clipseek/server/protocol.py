"""How long a client may take to send a request's headers: uvicorn's HTTP/1.1 protocol (h11) with a
deadline.

uvicorn bounds the wait between requests (`timeout_keep_alive`) but not the wait for a request's
headers: a client that connects and sends half a header (or nothing) holds a connection, and what
it costs, for as long as it likes (a slow-loris attack). Here each connection gets `seconds` to
send the complete headers of its first request, and again after each response for the next one;
a connection that misses the deadline is closed. A request whose headers arrived is not cut off,
however long the work or the body takes (uploads are bounded in size by server.guard).

Used by `clipseek serve` (`--header-timeout`, default 10 s). In front of a public deployment, a
reverse proxy should enforce its own timeouts too (see the README's `serve` section).
"""

from __future__ import annotations

import math

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

HEADER_TIMEOUT = 10.0  # seconds


def header_timeout_protocol(seconds: float = HEADER_TIMEOUT) -> type[H11Protocol]:
    """An h11 protocol class for uvicorn (`http=`) that closes a connection whose request headers
    are not complete `seconds` after it opened or after its last response."""

    class HeaderDeadlineProtocol(H11Protocol):
        header_timeout = seconds
        _deadline = None

        def connection_made(self, transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def _arm(self) -> None:
            self._disarm()
            self._deadline = self.loop.call_later(self.header_timeout, self._headers_late)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.conn.their_state is not h11.IDLE:  # the request's headers are complete
                self._disarm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self._arm()  # the next request's headers get the same time

        def connection_lost(self, exc) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _headers_late(self) -> None:
            self._deadline = None
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self.transport.close()

    return HeaderDeadlineProtocol


def uvicorn_options(header_timeout: float = HEADER_TIMEOUT) -> dict:
    """The keyword arguments `clipseek serve` gives uvicorn besides the app, host and port."""
    if not (math.isfinite(header_timeout) and header_timeout > 0):
        raise ValueError(f"--header-timeout must be a number of seconds above 0, got {header_timeout}")
    return {"http": header_timeout_protocol(header_timeout), "timeout_keep_alive": 5}
