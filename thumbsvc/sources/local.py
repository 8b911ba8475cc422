"""Read sources from the media root, jailed to it."""

from __future__ import annotations

import os

import anyio.to_thread
from anyio import CapacityLimiter

from thumbsvc.errors import BadRequest, Forbidden, SourceNotFound, SourceTooLarge
from thumbsvc.sources import SourceImage


def lookup_path(root: str, ref: str) -> str:
    """Given the media root and a decoded relative reference, return the real file path.

    Raise ``Forbidden`` if the path leaves the root (``..``, absolute paths, symlinks
    that point outside), ``BadRequest`` for NUL bytes or backslashes.
    """
    if "\x00" in ref or "\\" in ref:
        raise BadRequest(f"bad character in local source {ref!r}")
    if os.path.isabs(ref) or ref.startswith("/"):
        raise Forbidden(f"absolute local source {ref!r}", public_message="Source not allowed")
    real_root = os.path.realpath(root)
    # Don't allow misbehaving clients to break out of the root, through '..' or a symlink.
    full = os.path.realpath(os.path.join(real_root, ref))
    if os.path.commonpath([real_root, full]) != real_root or full == real_root:
        raise Forbidden(f"local source {ref!r} leaves the media root", public_message="Source not allowed")
    return full


class LocalSource:
    """Files under one media root; reads run in a worker thread."""

    def __init__(self, root: str, *, max_bytes: int, limiter: CapacityLimiter | None = None) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self._limiter = limiter or CapacityLimiter(8)

    async def fetch(self, ref: str) -> SourceImage:
        return await anyio.to_thread.run_sync(self._read, ref, limiter=self._limiter)

    def _read(self, ref: str) -> SourceImage:
        path = lookup_path(self.root, ref)
        try:
            with open(path, "rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                if size > self.max_bytes:
                    raise SourceTooLarge(f"{path} has {size} bytes")
                data = handle.read(self.max_bytes + 1)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
            raise SourceNotFound(f"{path}: {exc}") from exc
        except PermissionError as exc:
            raise SourceNotFound(f"{path}: {exc}") from exc
        if len(data) > self.max_bytes:
            raise SourceTooLarge(f"{path} grew past {self.max_bytes} bytes")
        return SourceImage.of(data)

    async def aclose(self) -> None:
        return None
