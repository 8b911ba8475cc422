"""The whole exception tree of thumbsvc.

Every error a request can end in is one of these classes; ``app.py`` maps them to
responses in one exception handler. Each class carries its HTTP status, the short
message that is safe to show to anyone, and how long a shared cache may keep the
answer (``None`` means ``no-store``)::

    ThumbError                 500  never cached
    ├── BadRequest             400  malformed path, option out of range
    ├── Forbidden              403  bad signature, source not allowed, forbidden address
    ├── SourceNotFound         404  origin 404/410, missing file
    ├── Gone                   410  the URL's exp: has passed
    ├── SourceTooLarge         413  too many bytes, pixels or frames
    ├── UnsupportedFormat      415  format not on the allowlist
    ├── UnprocessableSource    422  corrupt or undecodable image
    ├── UpstreamError          502  origin 5xx, connection failure, too many redirects
    ├── UpstreamTimeout        504  origin did not answer within the deadline
    └── Overloaded             503  render queue or fetch slots full, queue deadline expired
        └── RenderTimeout      503  the render passed its deadline and was abandoned

The internal ``detail`` (logged, may name a URL or path) is kept apart from the
``public_message`` (sent to the client, never names a URL, address or path).
"""

from __future__ import annotations

import copy

ERROR_CACHE_TTL_S = 60


class ThumbError(Exception):
    status_code: int = 500
    public_message: str = "Internal error"
    cache_ttl_s: int | None = None
    headers: dict[str, str] = {}  # noqa: RUF012 - class-level default, never mutated

    def __init__(self, detail: str = "", *, public_message: str | None = None) -> None:
        super().__init__(detail or self.public_message)
        self.detail = detail or self.public_message
        if public_message is not None:
            self.public_message = public_message

    def clone(self) -> ThumbError:
        """A copy to raise again (a shared or remembered error), so each raise decorates its own object."""
        twin = copy.copy(self)
        twin.__traceback__ = None
        return twin


class BadRequest(ThumbError):
    status_code = 400
    public_message = "Malformed thumbnail URL"
    cache_ttl_s = ERROR_CACHE_TTL_S


class Forbidden(ThumbError):
    status_code = 403
    public_message = "Forbidden"
    cache_ttl_s = None


class SourceNotFound(ThumbError):
    status_code = 404
    public_message = "Source image not found"
    cache_ttl_s = ERROR_CACHE_TTL_S


class Gone(ThumbError):
    status_code = 410
    public_message = "This thumbnail URL has expired"
    cache_ttl_s = ERROR_CACHE_TTL_S


class SourceTooLarge(ThumbError):
    status_code = 413
    public_message = "Source image too large"
    cache_ttl_s = ERROR_CACHE_TTL_S


class UnsupportedFormat(ThumbError):
    status_code = 415
    public_message = "Unsupported image format"
    cache_ttl_s = ERROR_CACHE_TTL_S


class UnprocessableSource(ThumbError):
    status_code = 422
    public_message = "Source image could not be decoded"
    cache_ttl_s = ERROR_CACHE_TTL_S


class UpstreamError(ThumbError):
    status_code = 502
    public_message = "Origin error"
    cache_ttl_s = None


class UpstreamTimeout(ThumbError):
    status_code = 504
    public_message = "Origin timed out"
    cache_ttl_s = None


class Overloaded(ThumbError):
    status_code = 503
    public_message = "Overloaded, try again shortly"
    cache_ttl_s = None

    reason = "overloaded"  # a label of thumbsvc_rejected_total

    def __init__(self, detail: str = "", *, reason: str | None = None, retry_after_s: int = 1) -> None:
        super().__init__(detail)
        if reason is not None:
            self.reason = reason
        self.headers = {"Retry-After": str(retry_after_s)}


class RenderTimeout(Overloaded):
    reason = "render_timeout"
