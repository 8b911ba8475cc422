"""A real origin server on loopback, and the network edge stubs the source tests use.

``OriginServer`` is an HTTP(S) server in a thread bound to a 127.x address. Each
route is a small function writing to the raw socket, so an origin can be slow, lie
about its length, redirect anywhere, gzip-bomb, send bytes that are not HTTP or
answer with more than one response.
It counts accepted connections, so a test can prove nothing connected to it.

``LoopbackOnlyBackend`` sits under the code under test at the socket edge: it
connects only to loopback addresses and records every attempt, so even a broken
guard cannot send a test's traffic off this machine. ``StubResolver`` answers DNS
from a table (names never reach a real resolver).
"""

from __future__ import annotations

import gzip
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpcore

Handler = Callable[["OriginHandler"], None]


@dataclass
class Seen:
    """One request the origin received."""

    path: str
    headers: dict[str, str]


class OriginHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:
        self.server.origin.seen.append(Seen(self.path, {k.lower(): v for k, v in self.headers.items()}))
        route = self.server.origin.routes.get(self.path.partition("?")[0])
        if route is None:
            send(self, 404, b"not found", content_type="text/plain")
            return
        route(self)

    def log_message(self, format: str, *args: Any) -> None:
        return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    origin: OriginServer

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, addr = super().get_request()
        with self.origin.lock:
            self.origin.accepts += 1
        return conn, addr

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that hang up mid-answer (the point of many tests) are not errors here.
        return None


class OriginServer:
    """An HTTP origin on ``host`` (a loopback address) in a background thread."""

    def __init__(self, host: str = "127.0.0.1", *, ssl_context: ssl.SSLContext | None = None) -> None:
        assert ipaddress.ip_address(host).is_loopback, "test origins live on loopback only"
        self.routes: dict[str, Handler] = {}
        self.seen: list[Seen] = []
        self.accepts = 0
        self.lock = threading.Lock()
        self._server = _Server((host, 0), OriginHandler)
        self._server.origin = self
        self.sni_names: list[str | None] = []
        if ssl_context is not None:

            def remember_sni(sock: Any, name: str | None, ctx: ssl.SSLContext) -> None:
                self.sni_names.append(name)

            ssl_context.sni_callback = remember_sni
            self._server.socket = ssl_context.wrap_socket(self._server.socket, server_side=True)
        self.host = host
        self.port: int = self._server.server_address[1]
        self.scheme = "https" if ssl_context is not None else "http"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05})

    def url(self, path: str = "/", host: str | None = None) -> str:
        return f"{self.scheme}://{host or self.host}:{self.port}{path}"

    def route(self, path: str, handler: Handler) -> None:
        self.routes[path] = handler

    def start(self) -> OriginServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self) -> OriginServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# Route handlers -------------------------------------------------------------------------------------------------


def send(
    handler: OriginHandler,
    status: int,
    body: bytes,
    *,
    content_type: str = "application/octet-stream",
    headers: Iterable[tuple[str, str]] = (),
    length: int | None = None,
) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body) if length is None else length))
    for name, value in headers:
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(body)


def body(data: bytes, *, status: int = 200, content_type: str = "image/jpeg", **kwargs: Any) -> Handler:
    return lambda handler: send(handler, status, data, content_type=content_type, **kwargs)


def status(code: int) -> Handler:
    return lambda handler: send(handler, code, f"status {code}".encode(), content_type="text/plain")


def redirect(location: str, code: int = 302) -> Handler:
    return lambda handler: send(handler, code, b"", headers=[("Location", location)])


def slow_headers(delay_s: float, data: bytes = b"late") -> Handler:
    def handle(handler: OriginHandler) -> None:
        time.sleep(delay_s)
        send(handler, 200, data)

    return handle


def trickle(data: bytes, *, interval_s: float) -> Handler:
    """Send headers at once, then one byte every ``interval_s``: each read is quick, the whole is not."""

    def handle(handler: OriginHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        for byte in data:
            handler.wfile.write(bytes([byte]))
            handler.wfile.flush()
            time.sleep(interval_s)

    return handle


def close_delimited(chunks: Iterable[bytes]) -> Handler:
    """No Content-Length: the body runs until the connection closes."""

    def handle(handler: OriginHandler) -> None:
        handler.close_connection = True
        handler.send_response(200)
        handler.send_header("Connection", "close")
        handler.end_headers()
        for chunk in chunks:
            handler.wfile.write(chunk)

    return handle


def chunked(chunks: Iterable[bytes]) -> Handler:
    def handle(handler: OriginHandler) -> None:
        handler.send_response(200)
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        for chunk in chunks:
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        handler.wfile.write(b"0\r\n\r\n")

    return handle


def short_body(declared: int, data: bytes) -> Handler:
    """Declare ``declared`` bytes, send fewer, hang up."""

    def handle(handler: OriginHandler) -> None:
        handler.close_connection = True
        send(handler, 200, data, length=declared)

    return handle


def response_bytes(data: bytes, *, length: int | None = None) -> bytes:
    """A whole 200 response as bytes (declaring ``length``, by default the truth), for handlers that write more."""
    declared = len(data) if length is None else length
    return f"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: {declared}\r\n\r\n".encode() + data


def with_extra_response(data: bytes, extra: bytes, *, writes: int = 1) -> Handler:
    """Answer with ``data`` and at once a second response nobody asked for (carrying ``extra``).

    One write puts both in one TCP segment (one TLS record); two writes put them in two TLS
    records that still arrive together. A client that reuses the connection reads the second
    response as the answer to its next request.
    """

    def handle(handler: OriginHandler) -> None:
        if writes == 1:
            handler.wfile.write(response_bytes(data) + response_bytes(extra))
        else:
            handler.wfile.write(response_bytes(data))
            handler.wfile.write(response_bytes(extra))
        handler.wfile.flush()

    return handle


def short_then_junk(data: bytes, junk: bytes, *, missing: int) -> Handler:
    """Declare ``missing`` bytes more than ``data`` holds, then send ``junk`` in the same write (keep the connection).

    The declared length swallows the first ``missing`` bytes of junk; the rest is left over.
    """

    def handle(handler: OriginHandler) -> None:
        handler.wfile.write(response_bytes(data, length=len(data) + missing) + junk)
        handler.wfile.flush()

    return handle


def late_bytes(data: bytes, late: bytes, *, delay_s: float) -> Handler:
    """Answer with ``data``, then after ``delay_s`` send ``late`` on the idle connection, unrequested."""

    def handle(handler: OriginHandler) -> None:
        handler.wfile.write(response_bytes(data))
        handler.wfile.flush()
        time.sleep(delay_s)
        handler.wfile.write(late)
        handler.wfile.flush()

    return handle


def raw(data: bytes) -> Handler:
    """Answer with bytes that are not HTTP, then hang up."""

    def handle(handler: OriginHandler) -> None:
        handler.close_connection = True
        handler.wfile.write(data)

    return handle


def gzip_bomb(size: int) -> bytes:
    """``size`` zero bytes, gzip-compressed (about 1000:1)."""
    return gzip.compress(b"\0" * size, compresslevel=9)


def repeat(chunk: bytes, count: int) -> Iterator[bytes]:
    for _ in range(count):
        yield chunk


# Network edge ---------------------------------------------------------------------------------------------------


@dataclass
class LoopbackOnlyBackend(httpcore.AsyncNetworkBackend):
    """Connect only to loopback addresses; record every attempt (``connects``) and refusal (``refused``)."""

    connects: list[tuple[str, int]] = field(default_factory=list)
    refused: list[tuple[str, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.connects.append((host, port))
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False  # a name: the code under test should never hand one down
        if not loopback:
            self.refused.append((host, port))
            raise httpcore.ConnectError(f"test edge: refusing to connect to {host}:{port}")
        return await self._inner.connect_tcp(host, port, timeout=timeout, socket_options=socket_options)

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


@dataclass
class StubResolver:
    """DNS from a table; an unknown name fails like NXDOMAIN. Records every lookup."""

    table: dict[str, Sequence[str]]
    lookups: list[str] = field(default_factory=list)
    delay_s: float = 0.0

    def __call__(self, host: str, port: int) -> Sequence[str]:
        self.lookups.append(host)
        if self.delay_s:
            time.sleep(self.delay_s)
        if host not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return self.table[host]


def numeric_resolver(host: str, port: int) -> list[str]:
    """The system resolver restricted to numeric hosts (``2130706433``, ``0x7f.1``): it never sends a DNS query."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))
