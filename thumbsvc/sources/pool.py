"""The origin connection pool: httpcore's, reusing a connection only after an exchange that ended cleanly.

HTTP/1.1 has no request ids: whatever arrives on a connection after a request is sent is
read as its answer. httpcore reuses a connection whose exchange h11 saw complete, and
retires an idle one whose socket turns readable. That misses bytes past the response
that were already read (kept in h11's buffer) or wait inside TLS, and bytes still on
their way when the next request is sent: an extra response in the same write, or the
rest of a body longer than its declared length, became the next source's answer (from
another URL of that host, rendered and served as immutable), or its 502.

Here a connection is retired as soon as any byte past its response is found (the pool
asks ``has_expired`` right after each response is closed and before each reuse), and an
idle connection is lent again only after ``REUSE_QUIET_S`` without one. A body left
unread (refused at the byte cap, cut short, a deadline) already closes its connection.
Bytes arriving in the instant between the last check and the next request's write cannot
be told from its answer.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpcore

MAX_CONNECTIONS = 100
MAX_KEEPALIVE_CONNECTIONS = 20
KEEPALIVE_EXPIRY_S = 5.0
# A connection is lent again only after this long without a byte past its last response. Bytes an origin
# sends after a response arrive with it or within about a round trip; once they have arrived they retire
# the connection. Back-to-back fetches from one origin open another connection meanwhile.
REUSE_QUIET_S = 0.25


def holds_unread_bytes(connection: httpcore.AsyncConnectionInterface | None) -> bool:
    """Given an idle HTTP/1.1 connection, return whether any byte past its last response has arrived.

    Such bytes would be read as the answer to the next request sent on it. They may wait in
    three places: h11's buffer (read with the response), the TLS layer (records read from the
    socket but not yet returned) and the socket. A connection that is not httpcore's HTTP/1.1
    one, as this knows it, counts as holding some: it is then never reused.
    """
    parser = getattr(connection, "_h11_state", None)
    stream = getattr(connection, "_network_stream", None)
    if parser is None or not isinstance(stream, httpcore.AsyncNetworkStream):
        return True
    buffered, closed = parser.trailing_data
    if buffered or closed or stream.get_extra_info("is_readable"):
        return True
    tls = stream.get_extra_info("ssl_object")
    if isinstance(tls, ssl.SSLObject):
        # Reading the TLS object touches only its memory buffers, never the socket: it returns
        # data only if a record past the response is already here (the connection is dropped then).
        try:
            tls.read(1)
        except ssl.SSLWantReadError:
            return False
        except ssl.SSLError:
            return True  # close_notify or a broken record: not reusable either
        return True
    return False


class CleanReuseConnection(httpcore.AsyncHTTPConnection):
    """An origin connection that expires when it holds a byte past its last response, and is
    available again only ``REUSE_QUIET_S`` after that response."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._last_response_closed = 0.0

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        response = await super().handle_async_request(request)
        return httpcore.Response(
            status=response.status,
            headers=response.headers,
            content=_Closing(response.stream, self._response_closed),
            extensions=response.extensions,
        )

    def _response_closed(self) -> None:
        self._last_response_closed = time.monotonic()

    def is_available(self) -> bool:
        quiet = time.monotonic() - self._last_response_closed >= REUSE_QUIET_S
        return quiet and super().is_available()

    def has_expired(self) -> bool:
        if super().has_expired():
            return True
        connection = getattr(self, "_connection", None)
        return connection is not None and self.is_idle() and holds_unread_bytes(connection)


class _Closing:
    """A response body stream that reports when it has been closed."""

    def __init__(self, stream: Any, on_close: Callable[[], None]) -> None:
        self._stream = stream
        self._on_close = on_close

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for part in self._stream:
            yield part

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            self._on_close()


class CleanReusePool(httpcore.AsyncConnectionPool):
    """httpcore's pool (our limits) with ``CleanReuseConnection`` connections."""

    def __init__(self, backend: httpcore.AsyncNetworkBackend, *, ssl_context: ssl.SSLContext) -> None:
        super().__init__(
            ssl_context=ssl_context,
            max_connections=MAX_CONNECTIONS,
            max_keepalive_connections=MAX_KEEPALIVE_CONNECTIONS,
            keepalive_expiry=KEEPALIVE_EXPIRY_S,
            network_backend=backend,
        )
        self._origin_backend = backend
        self._origin_ssl_context = ssl_context

    def create_connection(self, origin: httpcore.Origin) -> httpcore.AsyncConnectionInterface:
        return CleanReuseConnection(
            origin=origin,
            ssl_context=self._origin_ssl_context,
            keepalive_expiry=KEEPALIVE_EXPIRY_S,
            network_backend=self._origin_backend,
        )
