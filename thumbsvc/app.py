"""``create_app(settings) -> Starlette``: routes, one exception handler, response headers."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from thumbsvc import decode, playground
from thumbsvc.config import Settings
from thumbsvc.errors import BadRequest, ThumbError
from thumbsvc.service import Thumbnail, Thumbnailer

logger = logging.getLogger("thumbsvc")

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (
        b"content-security-policy",
        b"default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'none'",
    ),
]


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
    thumbnailer = Thumbnailer(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await thumbnailer.aclose()

    async def thumbnail(request: Request) -> Response:
        if request.url.query:
            raise BadRequest("query string", public_message="Thumbnail URLs take no query string")
        thumb_request = thumbnailer.parse(raw_path(request), request.headers.get("accept"))
        thumb = await thumbnailer.thumbnail(thumb_request)
        return thumbnail_response(request, thumb, settings)

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok", headers={"Cache-Control": "no-store"})

    async def index(request: Request) -> Response:
        return PlainTextResponse("thumbsvc\n", headers={"Cache-Control": "no-store"})

    async def thumb_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ThumbError)
        log = logger.warning if exc.status_code >= 500 else logger.info
        log("%s %s -> %d %s", request.method, request.url.path, exc.status_code, exc.detail)
        return error_response(exc)

    async def server_error(request: Request, exc: Exception) -> Response:
        logger.exception("unexpected error for %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(ThumbError(repr(exc)))

    app = Starlette(
        routes=[
            *(playground.routes(thumbnailer, settings) if settings.dev_mode else []),  # "/" is the playground
            Route("/", index, methods=["GET", "HEAD"]),
            Route("/healthz", healthz, methods=["GET", "HEAD"]),
            Route("/{path:path}", thumbnail, methods=["GET", "HEAD"]),
        ],
        exception_handlers={ThumbError: thumb_error, Exception: server_error},
        lifespan=lifespan,
    )
    app.state.thumbnailer = thumbnailer
    app.add_middleware(SecurityHeaders)
    return app


def app_from_env() -> Starlette:
    """The uvicorn factory: settings from the environment."""
    return create_app(Settings.from_env(os.environ))


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


def thumbnail_response(request: Request, thumb: Thumbnail, settings: Settings) -> Response:
    headers = {"Cache-Control": settings.cache_control, "ETag": thumb.etag}
    if thumb.vary_accept:
        headers["Vary"] = "Accept"
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


def error_response(exc: ThumbError) -> Response:
    cache = f"public, max-age={exc.cache_ttl_s}" if exc.cache_ttl_s else "no-store"
    headers = {"Cache-Control": cache, **exc.headers}
    return PlainTextResponse(exc.public_message + "\n", status_code=exc.status_code, headers=headers)
