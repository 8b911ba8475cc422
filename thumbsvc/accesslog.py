"""One structured access-log line and the request metrics for every HTTP request.

``AccessLog`` is a pure ASGI middleware. It makes the request's ``service.Record``; the
endpoint and the service fill in what only they know (cache status, render and fetch time, the
internal error detail), found with ``record_of(scope)``; the route label is the name of the
route that matched. Lines go to the ``thumbsvc.access`` logger: text by default,
one JSON object per line with ``JsonFormatter`` (``THUMBSVC_LOG_JSON=1`` under ``thumbsvc serve``).
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from thumbsvc.metrics import ROUTE_NAMES, Metrics
from thumbsvc.service import Record

access_logger = logging.getLogger("thumbsvc.access")
SCOPE_KEY = "thumbsvc.access"


def record_of(scope: Scope) -> Record:
    """Return the request's record (a throwaway one when the middleware is not installed)."""
    record = scope.get(SCOPE_KEY)
    return record if isinstance(record, Record) else Record()


def route_label(scope: Scope) -> str:
    """The bounded route label: the matched route's name if it is one of ours, else "other"."""
    name = getattr(scope.get("route"), "name", None)
    return name if name in ROUTE_NAMES else "other"


class AccessLog:
    """Count, time and log every HTTP request."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        record = scope[SCOPE_KEY] = Record()
        status = 500  # an exception with no response sent is answered 500 by the server
        sent = 0

        async def send_and_count(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, send_and_count)
        finally:
            elapsed = time.perf_counter() - started
            route = record.route = route_label(scope)
            self.metrics.requests.labels(route, f"{status // 100}xx").inc()
            self.metrics.request_seconds.labels(route).observe(elapsed)
            self.log(scope, record, route, status, sent, elapsed)

    def log(self, scope: Scope, record: Record, route: str, status: int, sent: int, elapsed: float) -> None:
        level = logging.WARNING if status >= 500 else logging.INFO
        if not access_logger.isEnabledFor(level):
            return
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode("utf-8")
        path = raw_path.decode("latin-1")
        if scope.get("query_string"):
            path += "?" + scope["query_string"].decode("latin-1")
        client = scope.get("client")
        fields: dict[str, Any] = {
            "client": client[0] if client else "-",
            "method": scope["method"],
            "path": path,
            "status": status,
            "bytes": sent,
            "duration_ms": round(elapsed * 1000, 2),
            "route": route,
            "cache": record.cache,
            "source": record.source,
            "render_ms": _ms(record.render_s),
            "fetch_ms": _ms(record.fetch_s),
        }
        if record.error:
            fields["error"] = record.error
        text = (
            f'{fields["client"]} "{fields["method"]} {path}" {status} {sent}B {fields["duration_ms"]}ms'
            f" cache={record.cache} source={record.source}"
            f" render={_text_ms(record.render_s)} fetch={_text_ms(record.fetch_s)}"
        )
        if record.error:
            text += f" error={record.error!r}"
        access_logger.log(level, text, extra={"access": fields})


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


def _text_ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f}ms"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: the access fields for access lines, the message for the rest."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        fields = getattr(record, "access", None)
        if isinstance(fields, dict):
            data.update(fields)
        else:
            data["message"] = record.getMessage()
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, separators=(",", ":"), default=str)


def logging_config(json_lines: bool) -> dict[str, Any]:
    """The ``logging.config.dictConfig`` for ``thumbsvc serve``: our lines on stdout, uvicorn's on stderr.

    uvicorn's own access log is replaced by ours.
    """
    if json_lines:
        ours: dict[str, Any] = {"()": "thumbsvc.accesslog.JsonFormatter"}
        theirs: dict[str, Any] = ours
    else:
        ours = {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}
        theirs = {"()": "uvicorn.logging.DefaultFormatter", "fmt": "%(levelprefix)s %(message)s", "use_colors": None}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"thumbsvc": ours, "uvicorn": theirs},
        "handlers": {
            "thumbsvc": {"class": "logging.StreamHandler", "formatter": "thumbsvc", "stream": "ext://sys.stdout"},
            "uvicorn": {"class": "logging.StreamHandler", "formatter": "uvicorn", "stream": "ext://sys.stderr"},
        },
        "loggers": {
            "thumbsvc": {"handlers": ["thumbsvc"], "level": "INFO", "propagate": False},
            "uvicorn": {"handlers": ["uvicorn"], "level": "INFO", "propagate": False},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        },
    }
