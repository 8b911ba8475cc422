"""``create_app(settings) -> Starlette``: named routes, the thumbnail endpoint, response headers.

The thumbnail route is an endpoint class shaped like Starlette's ``StaticFiles``: an ASGI app
whose small methods (``get_response``, ``is_not_modified``, ``thumbnail_response``,
``error_response``, ...) can be overridden one at a time. Every route has a name; the access log
and the metrics label requests by it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import signal
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from email.utils import formatdate

import anyio.to_thread
from anyio import CapacityLimiter
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from thumbsvc import decode, memory
from thumbsvc.accesslog import AccessLog, record_of
from thumbsvc.admission import Admission
from thumbsvc.config import Settings
from thumbsvc.errors import BadRequest, Overloaded, ThumbError
from thumbsvc.metrics import CONTENT_TYPE, Metrics
from thumbsvc.server import request_target
from thumbsvc.service import Record, Thumbnail, Thumbnailer, ThumbRequest

logger = logging.getLogger("thumbsvc")

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (
        b"content-security-policy",
        b"default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'none'",
    ),
]
NO_STORE = {"Cache-Control": "no-store"}


class SecurityHeaders:
    """Add nosniff and a restrictive CSP to every response (a route may send its own CSP instead)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.get("headers", [])
                present = {name.lower() for name, _ in headers}
                message["headers"] = [*headers, *(h for h in SECURITY_HEADERS if h[0] not in present)]
            await send(message)

        await self.app(scope, receive, send_with_headers)


class ThumbnailEndpoint:
    """``GET``/``HEAD`` of a signed thumbnail path: 200, 304, or a short error with its cache policy."""

    def __init__(self, thumbnailer: Thumbnailer, *, cache_control: str, error_max_age_s: int) -> None:
        self.thumbnailer = thumbnailer
        self.cache_control = cache_control
        self.error_max_age_s = error_max_age_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            response = await self.get_response(request)
        except ThumbError as exc:
            record_of(scope).error = exc.detail
            response = self.error_response(exc)
        await response(scope, receive, send)

    async def get_response(self, request: Request) -> Response:
        """Given a request, return the thumbnail's response; raise ``ThumbError`` for every refusal."""
        self.check_request(request)
        thumb_request = self.parse(request)
        record = record_of(request.scope)
        if self.is_revalidation(request.headers):
            # A revalidation (a CDN's, a browser's) is answered from the inputs: no render.
            etag = await self.thumbnailer.etag(thumb_request, record)
            if self.is_not_modified(request.headers, etag):
                return self.not_modified_response(etag, thumb_request, record)
        thumb = await self.thumbnailer.thumbnail(thumb_request, record)
        if self.is_not_modified(request.headers, thumb.etag):
            return self.not_modified_response(thumb.etag, thumb_request, record)
        return self.thumbnail_response(request, thumb_request, thumb, record)

    def parse(self, request: Request) -> ThumbRequest:
        """The verified request: a thumbor path when thumbor's URLs are on and the path is one, else ours."""
        path = raw_path(request)
        if self.thumbnailer.is_thumbor(path):
            return self.thumbnailer.parse_thumbor(path)
        return self.thumbnailer.parse(path, request.headers.get("accept"))

    def check_request(self, request: Request) -> None:
        """Refuse what a thumbnail URL never carries: a query string (each would be a new CDN cache key)."""
        # An empty query ("…/a.jpg?") reaches us only through the raw target our server protocol records.
        if request.url.query or b"?" in (request_target(request.scope) or b""):
            raise BadRequest("query string", public_message="Thumbnail URLs take no query string")

    def is_revalidation(self, headers: Headers) -> bool:
        """True for ``If-None-Match`` naming tags: answered without a render when the tag still holds.
        ``*`` asks whether the thumbnail exists at all, which only a render tells."""
        if_none_match = headers.get("if-none-match", "")
        return bool(if_none_match) and if_none_match.strip() != "*"

    def is_not_modified(self, headers: Headers, etag: str) -> bool:
        if_none_match = headers.get("if-none-match")
        if not if_none_match:
            return False
        if if_none_match.strip() == "*":
            return True
        tags = (tag.strip().removeprefix("W/") for tag in if_none_match.split(","))
        return etag in tags

    def validator_headers(self, etag: str, request: ThumbRequest) -> dict[str, str]:
        """The headers a 200 and a 304 share: caching, the ETag, and Vary for ``f:auto``.

        An expiring URL (``exp:``) may be kept only until its time: ``max-age`` (and ``s-maxage``)
        at most the seconds left, no ``immutable``, and ``Expires`` at that time.
        """
        headers = {"Cache-Control": self.cache_control, "ETag": etag}
        if request.expires is not None:
            left = max(0, math.floor(request.expires - self.thumbnailer.wall_clock()))
            headers["Cache-Control"] = capped_cache_control(self.cache_control, left)
            headers["Expires"] = formatdate(request.expires, usegmt=True)
        if request.vary_accept:
            headers["Vary"] = "Accept"
        return headers

    def timing_headers(self, record: Record) -> dict[str, str]:
        """Where the answer came from (``X-Cache``) and what it cost (``Server-Timing``, milliseconds)."""
        headers = {"X-Cache": record.cache}
        timings = [
            f"{name};dur={seconds * 1000:.1f}"
            for name, seconds in (("fetch", record.fetch_s), ("render", record.render_s))
            if seconds is not None
        ]
        if timings:
            headers["Server-Timing"] = ", ".join(timings)
        return headers

    def not_modified_response(self, etag: str, request: ThumbRequest, record: Record) -> Response:
        headers = {**self.validator_headers(etag, request), **self.timing_headers(record)}
        return Response(status_code=304, headers=headers)

    def thumbnail_response(
        self, request: Request, thumb_request: ThumbRequest, thumb: Thumbnail, record: Record
    ) -> Response:
        headers = {
            **self.validator_headers(thumb.etag, thumb_request),
            **self.timing_headers(record),
            "Content-Length": str(len(thumb.data)),
        }
        body = b"" if request.method == "HEAD" else thumb.data
        return Response(body, media_type=thumb.media_type, headers=headers)

    def error_response(self, exc: ThumbError) -> Response:
        if isinstance(exc, Overloaded):
            self.thumbnailer.metrics.rejected.labels(exc.reason).inc()
        return error_response(exc, self.error_max_age_s)


def create_app(
    settings: Settings,
    *,
    clock: Callable[[], float] = time.monotonic,
    wall_clock: Callable[[], float] = time.time,
) -> Starlette:
    """Given settings, return the ASGI application. ``clock`` times the caches' entries and
    ``wall_clock`` the URLs' ``exp:`` (tests pass clocks they move)."""
    decode.configure(settings.max_source_pixels)
    memory.share_one_heap(os.environ)
    metrics = Metrics()
    thumbnailer = Thumbnailer(settings, metrics, clock=clock, wall_clock=wall_clock)
    admission = thumbnailer.admission
    scrape_limiter = CapacityLimiter(1)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        metrics.forget_dead_workers()
        restore_signal = drain_on_sigterm(admission, settings.drain_delay_s)
        try:
            async with anyio.create_task_group() as background:
                background.start_soon(admission.trim_when_idle)
                try:
                    yield
                finally:
                    background.cancel_scope.cancel()
        finally:
            # The server has stopped taking connections and waited for the requests in flight.
            admission.draining = admission.closed = True
            restore_signal()
            await thumbnailer.aclose()
            metrics.worker_exiting()

    async def healthz(request: Request) -> Response:
        # Alive: answered on the event loop, never behind the render slots.
        return PlainTextResponse("ok", headers=NO_STORE)

    async def readyz(request: Request) -> Response:
        # Render saturation only: stalled downloads hold no render slot and no queue place.
        if admission.draining:
            return PlainTextResponse("draining\n", status_code=503, headers=NO_STORE)
        if not admission.ready():
            return PlainTextResponse("busy\n", status_code=503, headers=NO_STORE)
        return PlainTextResponse("ready\n", headers=NO_STORE)

    async def metrics_text(request: Request) -> Response:
        # Multi-process mode reads every worker's files: off the event loop.
        body = await anyio.to_thread.run_sync(metrics.exposition, limiter=scrape_limiter)
        return Response(body, headers={"Content-Type": CONTENT_TYPE, **NO_STORE})

    async def index(request: Request) -> Response:
        return PlainTextResponse("thumbsvc\n", headers=NO_STORE)

    async def thumb_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ThumbError)
        record_of(request.scope).error = exc.detail
        return error_response(exc, settings.error_max_age_s)

    async def server_error(request: Request, exc: Exception) -> Response:
        logger.exception("unexpected error for %s %s", request.method, request.url.path, exc_info=exc)
        response = error_response(ThumbError(repr(exc)), settings.error_max_age_s)
        # Starlette answers from ServerErrorMiddleware, outside SecurityHeaders: add them here.
        for name, value in SECURITY_HEADERS:
            response.headers[name.decode("latin-1")] = value.decode("latin-1")
        return response

    dev_routes: list[BaseRoute] = []
    if settings.dev_mode:
        # Imported only in development mode: the playground is about 1 MiB of an idle process.
        from thumbsvc import playground

        dev_routes = playground.routes(thumbnailer, settings)
    endpoint = ThumbnailEndpoint(
        thumbnailer, cache_control=settings.cache_control, error_max_age_s=settings.error_max_age_s
    )
    app = Starlette(
        routes=[
            *dev_routes,  # "/" is the playground
            Route("/", index, methods=["GET", "HEAD"], name="index"),
            Route("/healthz", healthz, methods=["GET", "HEAD"], name="healthz"),
            Route("/readyz", readyz, methods=["GET", "HEAD"], name="readyz"),
            Route("/metrics", metrics_text, methods=["GET", "HEAD"], name="metrics"),
            Route("/{path:path}", endpoint, methods=["GET", "HEAD"], name="thumbnail"),
        ],
        exception_handlers={ThumbError: thumb_error, Exception: server_error},
        lifespan=lifespan,
    )
    app.state.thumbnailer = thumbnailer
    app.state.metrics = metrics
    app.add_middleware(SecurityHeaders)
    app.add_middleware(AccessLog, metrics=metrics)
    return app


def app_from_env() -> Starlette:
    """The uvicorn factory: settings from the environment."""
    return create_app(Settings.from_env(os.environ))


def drain_on_sigterm(admission: Admission, delay_s: float) -> Callable[[], None]:
    """On SIGTERM, mark ``admission`` draining (readyz 503) and pass the signal to the server after ``delay_s``.

    The delay lets a load balancer see the failing readiness check and stop sending traffic
    before the server closes its socket. Only the server's own handler (uvicorn's) is chained,
    and only from the main thread. Return a function that puts the previous handler back.
    """
    previous = signal.getsignal(signal.SIGTERM)
    if threading.current_thread() is not threading.main_thread() or not callable(previous):
        return lambda: None
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # pragma: no cover - not on asyncio
        return lambda: None
    server_handler = previous

    def on_sigterm(signum: int, frame: object) -> None:
        if admission.draining or delay_s <= 0:
            admission.draining = True
            server_handler(signum, None)
            return
        admission.draining = True
        logger.info("SIGTERM: draining for %.1f s before shutting down", delay_s)
        loop.call_soon_threadsafe(loop.call_later, delay_s, server_handler, signum, None)

    signal.signal(signal.SIGTERM, on_sigterm)

    def restore() -> None:
        if signal.getsignal(signal.SIGTERM) is on_sigterm:
            signal.signal(signal.SIGTERM, previous)

    return restore


def raw_path(request: Request) -> str:
    """Return the exact path bytes that arrived (percent-escapes intact), below any mount prefix."""
    raw: bytes = request.scope.get("raw_path") or request.scope["path"].encode("utf-8")
    try:
        path = raw.decode("ascii")
    except UnicodeDecodeError as exc:
        raise BadRequest("non-ASCII bytes in path", public_message="Thumbnail URLs are plain ASCII") from exc
    root: str = request.scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return path


def capped_cache_control(configured: str, max_age_s: int) -> str:
    """Given the configured ``Cache-Control`` and the seconds an expiring URL has left, return it with
    ``max-age`` and ``s-maxage`` at most that and without ``immutable`` (``max-age`` added if absent)."""
    directives: list[str] = []
    seen_max_age = False
    for directive in (part.strip() for part in configured.split(",")):
        name, _, value = directive.partition("=")
        key = name.strip().lower()
        if key == "immutable" or not directive:
            continue
        if key in ("max-age", "s-maxage"):
            seen_max_age = seen_max_age or key == "max-age"
            seconds = int(value) if value.strip().isdigit() else max_age_s
            directive = f"{key}={min(seconds, max_age_s)}"
        directives.append(directive)
    if not seen_max_age:
        directives.append(f"max-age={max_age_s}")
    return ", ".join(directives)


def error_response(exc: ThumbError, max_age_s: int, headers: Mapping[str, str] | None = None) -> Response:
    """A short plain-text answer; deterministic 4xx may be cached for ``max_age_s``, the rest never."""
    cache = f"public, max-age={max_age_s}" if exc.cache_ttl_s and max_age_s else "no-store"
    return PlainTextResponse(
        exc.public_message + "\n",
        status_code=exc.status_code,
        headers={"Cache-Control": cache, **exc.headers, **(headers or {})},
    )
