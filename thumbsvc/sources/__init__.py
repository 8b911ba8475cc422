"""Where source bytes come from: the local media root or HTTP(S) origins.

``Sources.fetch(ref)`` dispatches on the reference: an absolute ``http://`` or
``https://`` URL goes to the HTTP loader, anything else is a path under the media
root. Loaders return bytes and a validator; they never touch pixels.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Protocol

from thumbsvc.errors import Forbidden


@dataclass(frozen=True, slots=True)
class SourceImage:
    data: bytes
    validator: str  # content hash or the origin's validator: part of the response ETag

    @classmethod
    def of(cls, data: bytes) -> SourceImage:
        """The source with its content hash as validator, the same on every instance.

        SHA-256 because OpenSSL computes it with the CPU's SHA instructions: 1.8 GB/s here against
        0.8 for BLAKE2b, about 2 ms less per request for a 3 MB photo (docs/performance.md).
        """
        return cls(data=data, validator=hashlib.sha256(data).hexdigest()[:32])


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
            raise Forbidden(
                "no media root configured", public_message="Local sources are not enabled (set THUMBSVC_MEDIA_ROOT)"
            )
        return await self.local.fetch(ref)

    async def aclose(self) -> None:
        for source in (self.local, self.remote):
            if source is not None:
                await source.aclose()
