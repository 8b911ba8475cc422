"""The request pipeline without HTTP: path in, thumbnail (or an error from errors.py) out."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

import anyio.to_thread
from anyio import CapacityLimiter

from thumbsvc.config import Settings
from thumbsvc.decode import Limits
from thumbsvc.encoding import negotiate
from thumbsvc.errors import BadRequest, Forbidden
from thumbsvc.options import RenderOptions
from thumbsvc.pipeline import RENDER_VERSION, render
from thumbsvc.signing import PathSigner
from thumbsvc.sources import Sources
from thumbsvc.sources.http import HttpSource
from thumbsvc.sources.local import LocalSource
from thumbsvc.urls import ThumbPath, split_path

logger = logging.getLogger("thumbsvc")


@dataclass(frozen=True, slots=True)
class ThumbRequest:
    path: ThumbPath
    accept: str | None
    bucket: str  # the Accept class for f:auto, "" otherwise

    @property
    def options(self) -> RenderOptions:
        return self.path.options

    @property
    def cache_key(self) -> str:
        return f"{self.path.payload}|{self.bucket}"


@dataclass(frozen=True, slots=True)
class Thumbnail:
    data: bytes
    media_type: str
    etag: str
    vary_accept: bool


class Thumbnailer:
    """Verify, fetch and render. One per process; holds the loaders and the render limiter."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.limits = Limits.from_settings(settings)
        self.signer = PathSigner(settings.signing_keys)
        root = settings.effective_media_root
        self.render_limiter = CapacityLimiter(settings.render_slots)
        local = LocalSource(root, max_bytes=settings.max_source_bytes) if root else None
        remote = HttpSource(settings) if settings.allowed_sources and not settings.dev_mode else None
        self.sources = Sources(local, remote)

    def parse(self, raw_path: str, accept: str | None) -> ThumbRequest:
        """Given the raw request path, return the verified request.

        Raise ``BadRequest`` for a malformed path and ``Forbidden`` for a bad signature.
        The signature is checked on the exact bytes that arrived, before any option is trusted.
        """
        signature, _, payload = raw_path.lstrip("/").partition("/")
        if not payload or not self.signer.verify(payload, signature):
            raise Forbidden("bad signature", public_message="Invalid signature")
        try:
            path = split_path(raw_path)
        except ValueError as exc:
            raise BadRequest(str(exc), public_message=f"Malformed thumbnail URL: {exc}") from exc
        box_w, box_h = path.options.box
        limit = self.settings.max_output_px
        if (box_w or 0) > limit or (box_h or 0) > limit:
            raise BadRequest(f"box {box_w}x{box_h}", public_message=f"Output size is limited to {limit} px a side")
        bucket = negotiate(accept) if path.options.format == "auto" else ""
        return ThumbRequest(path, accept, bucket)

    async def thumbnail(self, request: ThumbRequest) -> Thumbnail:
        source = await self.sources.fetch(request.path.source)
        rendered = await anyio.to_thread.run_sync(
            render, source.data, request.options, self.limits, request.accept, limiter=self.render_limiter
        )
        return Thumbnail(
            data=rendered.data,
            media_type=rendered.media_type,
            etag=make_etag(request, source.validator),
            vary_accept=request.options.format == "auto",
        )

    async def aclose(self) -> None:
        await self.sources.aclose()


def make_etag(request: ThumbRequest, validator: str) -> str:
    """A strong ETag from the inputs only: same URL and source give the same tag on every instance."""
    digest = hashlib.blake2b(digest_size=16)
    for part in (RENDER_VERSION, request.cache_key, validator):
        digest.update(part.encode("utf-8") + b"\x00")
    return f'"{digest.hexdigest()}"'
