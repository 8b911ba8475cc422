"""``create_app(settings) -> Starlette``: routes, one exception handler, response headers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
from collections.abc import AsyncIterator, Callable

import anyio.to_thread
from anyio import CapacityLimiter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from thumbsvc import decode
from thumbsvc.accesslog import AccessLog, access_record
from thumbsvc.admission import Admission
from thumbsvc.config import Settings
from thumbsvc.errors import BadRequest, ThumbError
from thumbsvc.metrics import CONTENT_TYPE, Metrics
from thumbsvc.server import request_target
from thumbsvc.service import Thumbnail, Thumbnailer

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


def create_app(settings: Settings) -> Starlette:
    """Given settings, return the ASGI application."""
    decode.configure(settings.max_source_pixels)
    metrics = Metrics()
    thumbnailer = Thumbnailer(settings, metrics)
    admission = thumbnailer.admission
    scrape_limiter = CapacityLimiter(1)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        metrics.forget_dead_workers()
        restore_signal = drain_on_sigterm(admission, settings.drain_delay_s)
        try:
            yield
        finally:
            # The server has stopped taking connections and waited for the requests in flight.
            admission.draining = admission.closed = True
            restore_signal()
            await thumbnailer.aclose()
            metrics.worker_exiting()

    async def thumbnail(request: Request) -> Response:
        # An empty query ("…/a.jpg?") reaches us only through the raw target our server protocol records.
        if request.url.query or b"?" in (request_target(request.scope) or b""):
            raise BadRequest("query string", public_message="Thumbnail URLs take no query string")
        thumb_request = thumbnailer.parse(raw_path(request), request.headers.get("accept"))
        record = access_record(request.scope)
        if_none_match = request.headers.get("if-none-match")
        if if_none_match and if_none_match.strip() != "*":
            # A revalidation (a CDN's, a browser's) is answered from the inputs: no render.
            etag, cache, timing = await thumbnailer.etag(thumb_request)
            if etag_matches(if_none_match, etag):
                record.cache, record.source, record.fetch_s = cache, timing.source, timing.fetch_s
                headers = validator_headers(etag, thumb_request.options.format == "auto", settings)
                return Response(status_code=304, headers={**headers, "X-Cache": cache})
        served = await thumbnailer.thumbnail(thumb_request)
        record.cache, record.source = served.cache, served.timing.source
        record.render_s, record.fetch_s = served.timing.render_s, served.timing.fetch_s
        response = thumbnail_response(request, served.thumbnail, settings)
        response.headers["X-Cache"] = served.cache
        return response

    async def healthz(request: Request) -> Response:
        # Alive: answered on the event loop, never behind the render slots.
        return PlainTextResponse("ok", headers=NO_STORE)

    async def readyz(request: Request) -> Response:
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
        access_record(request.scope).error = exc.detail
        return error_response(exc, settings.error_max_age_s)

    async def server_error(request: Request, exc: Exception) -> Response:
        logger.exception("unexpected error for %s %s", request.method, request.url.path, exc_info=exc)
        response = error_response(ThumbError(repr(exc)), settings.error_max_age_s)
        # Starlette answers from ServerErrorMiddleware, outside SecurityHeaders: add them here.
        for name, value in SECURITY_HEADERS:
            response.headers[name.decode("latin-1")] = value.decode("latin-1")
        return response

    dev_routes = []
    if settings.dev_mode:
        # Imported only in development mode: the playground is about 1 MiB of an idle process.
        from thumbsvc import playground

        dev_routes = playground.routes(thumbnailer, settings)
    app = Starlette(
        routes=[
            *dev_routes,  # "/" is the playground
            Route("/", index, methods=["GET", "HEAD"]),
            Route("/healthz", healthz, methods=["GET", "HEAD"]),
            Route("/readyz", readyz, methods=["GET", "HEAD"]),
            Route("/metrics", metrics_text, methods=["GET", "HEAD"]),
            Route("/{path:path}", thumbnail, methods=["GET", "HEAD"]),
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


def validator_headers(etag: str, vary_accept: bool, settings: Settings) -> dict[str, str]:
    """The headers a 200 and a 304 share: caching, the ETag, and Vary for ``f:auto``."""
    headers = {"Cache-Control": settings.cache_control, "ETag": etag}
    if vary_accept:
        headers["Vary"] = "Accept"
    return headers


def thumbnail_response(request: Request, thumb: Thumbnail, settings: Settings) -> Response:
    headers = validator_headers(thumb.etag, thumb.vary_accept, settings)
    if etag_matches(request.headers.get("if-none-match"), thumb.etag):
        return Response(status_code=304, headers=headers)
    headers["Content-Length"] = str(len(thumb.data))
    body = b"" if request.method == "HEAD" else thumb.data
    return Response(body, media_type=thumb.media_type, headers=headers)


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    tags = (tag.strip().removeprefix("W/") for tag in if_none_match.split(","))
    return etag in tags


def error_response(exc: ThumbError, max_age_s: int) -> Response:
    """A short plain-text answer; deterministic 4xx may be cached for ``max_age_s``, the rest never."""
    cache = f"public, max-age={max_age_s}" if exc.cache_ttl_s and max_age_s else "no-store"
    headers = {"Cache-Control": cache, **exc.headers}
    return PlainTextResponse(exc.public_message + "\n", status_code=exc.status_code, headers=headers)
