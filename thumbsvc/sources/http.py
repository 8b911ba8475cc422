"""HTTP(S) origins. Placeholder until the remote loader lands: every remote source is refused."""

from __future__ import annotations

from thumbsvc.config import Settings
from thumbsvc.errors import Forbidden
from thumbsvc.sources import SourceImage


class HttpSource:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def fetch(self, ref: str) -> SourceImage:
        raise Forbidden("remote loader not available", public_message="Remote sources are not enabled")

    async def aclose(self) -> None:
        return None
