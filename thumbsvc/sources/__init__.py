"""Where source bytes come from: the local media root or HTTP(S) origins.

``Sources.fetch(ref)`` dispatches on the reference: an absolute ``http://`` or
``https://`` URL goes to the HTTP loader, anything else is a path under the media
root. Loaders return bytes and a validator; they never touch pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from thumbsvc.errors import Forbidden


@dataclass(frozen=True, slots=True)
class SourceImage:
    data: bytes
    validator: str  # content hash or the origin's validator: part of the response ETag


class Source(Protocol):
    async def fetch(self, ref: str) -> SourceImage: ...

    async def aclose(self) -> None: ...


def is_remote(ref: str) -> bool:
    return ref.lower().startswith(("http://", "https://"))


class Sources:
    """Dispatch a source reference to the local or the HTTP loader."""

    def __init__(self, local: Source | None, remote: Source | None) -> None:
        self.local = local
        self.remote = remote

    async def fetch(self, ref: str) -> SourceImage:
        if is_remote(ref):
            if self.remote is None:
                raise Forbidden(
                    "remote sources are not enabled",
                    public_message="Remote sources are not enabled (set THUMBSVC_ALLOWED_SOURCES)",
                )
            return await self.remote.fetch(ref)
        if self.local is None:
            raise Forbidden("no media root configured", public_message="Local sources are not enabled")
        return await self.local.fetch(ref)

    async def aclose(self) -> None:
        for source in (self.local, self.remote):
            if source is not None:
                await source.aclose()
