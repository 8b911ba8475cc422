"""``thumbsvc serve``: uvicorn, with bounds on what a client connection may hold.

uvicorn's h11 protocol keeps a connection open for as long as a client trickles its request
head, has no deadline before the first request, and accepts connections until the process runs
out of file descriptors. ``GuardedH11Protocol`` adds the bounds a process exposed without a
proxy needs (docs/security.md, "Connections"):

- a **head deadline**: a request head must be complete ``header_timeout_s`` after the connection
  opened, or after the first byte of a later request on it; bytes arriving do not extend it;
- an **idle timeout** between requests on a keep-alive connection (``keepalive_timeout_s``);
- a **cap on open connections** per process (``max_connections``, below the file-descriptor
  limit): past it, the connection that has waited longest for a request head is closed to make
  room, and when every connection has a request in flight the new one is answered 503;
- **414** for a request target over ``max_url_length`` bytes, before the head is buffered whole.

It also records each request's raw target in the ASGI scope (``request_target``): uvicorn
drops a trailing ``?``, which a thumbnail URL must not carry either.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import logging
import math
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from typing import Any, cast

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import STATUS_PHRASES, H11Protocol

from thumbsvc.config import ConfigError, ServerSettings, Settings

logger = logging.getLogger("thumbsvc.server")

# scope["extensions"][REQUEST_TARGET] = {"target": b"/sig/300x200/a.jpg?"}: the request target as it arrived.
REQUEST_TARGET = "thumbsvc.request_target"
HEAD_BYTES = 16 * 1024  # room for the headers beside the request target (h11's default for a whole head)
STARTUP_FAILURE = 3  # uvicorn's exit status when the application does not start
# The listen queue, and so (asyncio reads one for the other) the most connections accepted in one turn of the
# event loop, before any of their protocols can count them against the cap. uvicorn's 2048 let a flood of
# silent sockets take every file descriptor in a burst (EMFILE, accepting paused); 64 overshoots the cap by
# about 130 at worst (config.FD_RESERVE keeps room for that).
ACCEPT_BACKLOG = 64


class ServerConfig(uvicorn.Config):
    """A uvicorn Config that carries our ServerSettings to each connection's protocol (and to workers)."""

    def __init__(self, app: Any, *, server: ServerSettings, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.server = server


class _Connection(h11.Connection):
    """h11's server connection, remembering each request's raw target and refusing one that is too long."""

    def __init__(self, max_url_length: int, max_head_bytes: int) -> None:
        super().__init__(h11.SERVER, max_incomplete_event_size=max_head_bytes)
        self.max_url_length = max_url_length
        self.last_target = b""
        self.error_status = 400

    def next_event(self) -> Any:
        event = super().next_event()
        if isinstance(event, h11.Request):
            self.last_target = event.target
            if len(event.target) > self.max_url_length:
                self.error_status = 414
                raise h11.RemoteProtocolError("request target too long", error_status_hint=414)
        return event


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a head deadline, an idle timeout, a connection cap and a URL length limit."""

    def __init__(self, config: uvicorn.Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        limits = config.server if isinstance(config, ServerConfig) else ServerSettings()
        self.limits = limits
        self.h11 = _Connection(limits.max_url_length, limits.max_url_length + HEAD_BYTES)
        self.conn = self.h11
        self.timeout_keep_alive = limits.keepalive_timeout_s  # type: ignore[assignment]  # call_later takes floats
        self.waiting = True  # no request in flight: before the first, or between two
        self.waiting_since = 0.0
        self._head_timer: Any = None
        self._head_bytes = 0
        self._line_bytes = 0  # of the request line so far, while its end has not arrived
        self._line_done = False

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._start_waiting()
        self._arm_head_deadline()  # from the opening: a silent connection is closed at the deadline
        if len(self.connections) > self.limits.max_connections:
            self._make_room()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.waiting:
            if self._head_timer is None:
                self._arm_head_deadline()  # the first byte of a later request on a kept-alive connection
            self._head_bytes += len(data)
            if self._request_line_too_long(data):
                self.h11.error_status = 414
                self.send_400_response("request target too long")
                return
        before = self.cycle
        super().data_received(data)
        self._after_events(before)

    def on_response_complete(self) -> None:
        self._start_waiting()
        before = self.cycle
        super().on_response_complete()  # arms the idle timeout, then serves a pipelined request if one is in
        self._after_events(before)

    def send_400_response(self, msg: str) -> None:
        status, self.h11.error_status = self.h11.error_status, 400
        self._send_error(status, "Request target too long" if status == 414 else "Invalid HTTP request")

    def _after_events(self, before: Any) -> None:
        if self.cycle is before or self.cycle is None:
            return
        # A request head arrived: the deadline is met; the app may see the target exactly as it was sent.
        self.waiting = False
        self._cancel_head_deadline()
        scope = cast(dict[str, Any], self.cycle.scope)
        scope.setdefault("extensions", {})[REQUEST_TARGET] = {"target": self.h11.last_target}

    def _start_waiting(self) -> None:
        self.waiting = True
        self.waiting_since = self.loop.time()
        self._cancel_head_deadline()
        self._head_bytes = self._line_bytes = 0
        self._line_done = False

    def _arm_head_deadline(self) -> None:
        self._cancel_head_deadline()
        self._head_timer = self.loop.call_later(self.limits.header_timeout_s, self._head_timeout)

    def _cancel_head_deadline(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timeout(self) -> None:
        self._head_timer = None
        if not self.waiting or self.transport.is_closing():
            return
        if self._head_bytes:
            self._send_error(408, "Request header timeout")
        else:
            self.transport.close()

    def _request_line_too_long(self, data: bytes) -> bool:
        if self._line_done:
            return False
        end = data.find(b"\n")
        self._line_done = end >= 0
        self._line_bytes += end if end >= 0 else len(data)
        # The target plus a method and " HTTP/1.1\r": h11 then checks the target itself.
        return self._line_bytes > self.limits.max_url_length + 64

    def _make_room(self) -> None:
        """Close the connection that has waited longest for a request head; if none waits, refuse this one."""
        waiting = [
            c
            for c in self.connections
            if isinstance(c, GuardedH11Protocol) and c is not self and c.waiting and not c.transport.is_closing()
        ]
        if waiting:
            oldest = min(waiting, key=lambda c: c.waiting_since)
            oldest.transport.close()
            return
        logger.warning("connection refused: %d connections open (THUMBSVC_MAX_CONNECTIONS)", len(self.connections))
        self._send_error(503, "Too many connections", retry_after=True)

    def _send_error(self, status: int, text: str, *, retry_after: bool = False) -> None:
        """Answer ``status`` with a short plain-text body and close the connection."""
        body = f"{text}\n".encode()
        headers = [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-store"),
            (b"x-content-type-options", b"nosniff"),
            (b"connection", b"close"),
        ]
        if retry_after:
            headers.append((b"retry-after", b"1"))
        try:
            output = self.conn.send(h11.Response(status_code=status, headers=headers, reason=STATUS_PHRASES[status]))
            output = (output or b"") + (self.conn.send(h11.Data(data=body)) or b"")
            output += self.conn.send(h11.EndOfMessage()) or b""
            self.transport.write(output)
        except h11.LocalProtocolError:
            pass  # a response is already under way: closing is all that is left
        self.transport.close()


def request_target(scope: Any) -> bytes | None:
    """Given an ASGI scope, return the raw request target our protocol recorded, or None under another server."""
    recorded = scope.get("extensions", {}).get(REQUEST_TARGET)
    return None if recorded is None else cast(bytes, recorded["target"])


def server_config(settings: Settings, server: ServerSettings) -> ServerConfig:
    """Given the settings, return uvicorn's configuration for ``thumbsvc serve`` (this also sets up logging)."""
    from thumbsvc.accesslog import logging_config

    return ServerConfig(
        "thumbsvc.app:app_from_env",
        server=server,
        factory=True,
        host=server.host,
        port=server.port,
        workers=server.workers,
        limit_max_requests=server.limit_max_requests or None,
        log_level=server.log_level,
        log_config=logging_config(settings.log_json),
        access_log=False,  # thumbsvc.access logs every request, with cache status and render time
        proxy_headers=False,
        server_header=False,
        http=GuardedH11Protocol,
        ws="none",  # no WebSocket routes: an Upgrade header is an ordinary request
        h11_max_incomplete_event_size=server.max_url_length + HEAD_BYTES,
        backlog=ACCEPT_BACKLOG,
        timeout_graceful_shutdown=math.ceil(settings.shutdown_timeout_s),
    )


def check_mode(settings: Settings, server: ServerSettings) -> None:
    """Raise ConfigError if development mode is asked to do what only production may."""
    if not settings.dev_mode:
        return
    if not is_loopback(server.host):
        raise ConfigError(f"Development mode (no THUMBSVC_KEY) listens on loopback only, not {server.host!r}.")
    if server.workers != 1:
        raise ConfigError("Development mode (no THUMBSVC_KEY) runs one worker: its key is per process.")


def bind_socket(host: str, port: int) -> socket.socket:
    """Given an address, return a bound listening socket; raise ConfigError saying what to change if it cannot be."""
    family, address = _resolve(host, port)
    # Name the protocol: asyncio sets TCP_NODELAY on accepted connections only for IPPROTO_TCP sockets, and
    # accepted connections inherit it from the listening socket (without it a response written as headers
    # then body waits for the client's delayed ACK, 40 ms on Linux).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"Port {port} on {host} is in use by another process: choose another with --port or THUMBSVC_PORT."
            ) from None
        if isinstance(exc, PermissionError):
            raise ConfigError(
                f"Port {port} needs privileges: choose one above 1023 (--port / THUMBSVC_PORT)."
            ) from None
        raise ConfigError(f"Cannot listen on {host}:{port}: {exc.strerror} (--host / THUMBSVC_HOST).") from None
    sock.set_inheritable(True)  # uvicorn's workers share it
    return sock


def _resolve(host: str, port: int) -> tuple[socket.AddressFamily, Any]:
    """Given a host to listen on, return its address family and socket address."""
    try:
        # An address needs no lookup (getaddrinfo's IDNA codec would cost an idle process about 1 MiB).
        version = ipaddress.ip_address(host).version
    except ValueError:
        pass
    else:
        return (socket.AF_INET6, (host, port, 0, 0)) if version == 6 else (socket.AF_INET, (host, port))
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (OSError, UnicodeError):
        raise ConfigError(f"Cannot listen on {host!r}: not an address here (--host / THUMBSVC_HOST).") from None
    return found[0][0], found[0][4]


def startup_facts(settings: Settings, server: ServerSettings) -> list[str]:
    """Given the settings, return what the start-up line says, one fact per entry (add yours at the end)."""
    host = f"[{server.host}]" if ":" in server.host else server.host
    if settings.dev_mode:
        mode = "development mode (set THUMBSVC_KEY for production): a random key per process"
    else:
        mode = f"production mode: {len(settings.keys)} key{'s' if len(settings.keys) != 1 else ''}"
    budget = settings.render_memory_budget
    remote = settings.allowed_sources if not settings.dev_mode else ()
    facts = [
        f"serving http://{host}:{server.port}/ in {mode}",
        f"media root {settings.effective_media_root or 'none'}",
        f"allowed sources {' '.join(remote) or 'none'}",
        f"{settings.render_slots} render slot{'s' if settings.render_slots != 1 else ''}",
        f"memory budget {f'{budget / 1e6:g} MB' if budget else 'off'} ({settings.render_memory_source})"
        if budget
        else "memory budget off",
        f"largest render {settings.max_render_memory / 1e6:g} MB",
    ]
    if server.workers > 1:
        facts.append(f"{server.workers} workers")
    return facts


def startup_line(settings: Settings, server: ServerSettings) -> str:
    """Given the settings, return the one line ``thumbsvc serve`` logs once its socket is bound."""
    return "; ".join(startup_facts(settings, server))


def serve(settings: Settings, server: ServerSettings) -> int:
    """Run the service until it is stopped; return the exit status. Raise ConfigError before serving anything."""
    check_mode(settings, server)
    from thumbsvc.service import load_watermarks

    load_watermarks(settings)  # a bad watermark stops start-up here, with one line, not in each worker
    config = server_config(settings, server)
    sock = bind_socket(server.host, server.port)  # before uvicorn starts: a taken port is one line, not a log
    logger.info("%s", startup_line(settings, server))
    with sock, metrics_dir(server.workers):
        if server.workers > 1:
            # uvicorn's own supervisor, not uvicorn.run(workers=N): we hand it the socket bound above (a
            # taken port is one line, and TCP_NODELAY is set on it, which uvicorn's own binding leaves off).
            from uvicorn.supervisors import Multiprocess

            Multiprocess(config, sockets=[sock]).run()
            return 0
        instance = uvicorn.Server(config)
        instance.run(sockets=[sock])
        return 0 if instance.started else STARTUP_FAILURE


@contextlib.contextmanager
def metrics_dir(workers: int) -> Iterator[None]:
    """Set up prometheus-client's multi-process mode for several workers, before any worker starts.

    An operator's ``PROMETHEUS_MULTIPROC_DIR`` is emptied of an earlier run's files (they would be
    added in); without one, a private temporary directory is made and removed at exit.
    """
    from thumbsvc.metrics import prepare_multiprocess_dir

    configured = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if configured:
        prepare_multiprocess_dir(configured)
        yield
        return
    if workers <= 1:
        yield
        return
    path = tempfile.mkdtemp(prefix="thumbsvc-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path  # inherited by the workers
    try:
        yield
    finally:
        del os.environ["PROMETHEUS_MULTIPROC_DIR"]
        shutil.rmtree(path, ignore_errors=True)


def is_loopback(host: str) -> bool:
    """Given a host to listen on, return whether only this machine can reach it."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
