"""Read sources from the media root, jailed to it."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager

import anyio.to_thread
from anyio import CapacityLimiter

from thumbsvc.errors import BadRequest, Forbidden, Overloaded, SourceNotFound, SourceTooLarge, ThumbError
from thumbsvc.sources import SourceImage

# Names that cannot lead to a file here are missing files (404, cached briefly like any miss): a name or
# path too long for the file system, a symlink loop, a file used as a directory, no permission.
MISSING_ERRNOS = frozenset(
    {errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG, errno.ELOOP, errno.EACCES, errno.EPERM}
)
# The process is out of file descriptors or memory: a moment later the same read may succeed (503).
BUSY_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM})


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


@contextmanager
def os_errors(path: str) -> Iterator[None]:
    """Translate the ``OSError`` of a local read into ours: missing (404), busy (503), else a clean 500."""
    try:
        yield
    except OSError as exc:
        if exc.errno in MISSING_ERRNOS:
            raise SourceNotFound(f"{path}: {exc}") from exc
        if exc.errno in BUSY_ERRNOS:
            raise Overloaded(f"{path}: {exc}") from exc
        raise ThumbError(f"{path}: {exc}") from exc


class LocalSource:
    """Files under one media root; reads run in a worker thread."""

    def __init__(self, root: str, *, max_bytes: int, limiter: CapacityLimiter | None = None) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self._limiter = limiter or CapacityLimiter(8)

    async def fetch(self, ref: str) -> SourceImage:
        return await anyio.to_thread.run_sync(self._read, ref, limiter=self._limiter)

    def _read(self, ref: str) -> SourceImage:
        with os_errors(ref):
            path = lookup_path(self.root, ref)
        with os_errors(path):
            # Non-blocking, so a FIFO (or a device) opens at once instead of holding the thread until
            # someone writes to it; then only regular files are read.
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
            with open(fd, "rb") as handle:
                info = os.fstat(fd)
                if not stat.S_ISREG(info.st_mode):
                    raise SourceNotFound(f"{path} is not a regular file")
                if info.st_size > self.max_bytes:
                    raise SourceTooLarge(f"{path} has {info.st_size} bytes")
                data = handle.read(self.max_bytes + 1)
        if len(data) > self.max_bytes:
            raise SourceTooLarge(f"{path} grew past {self.max_bytes} bytes")
        return SourceImage.of(data)

    async def aclose(self) -> None:
        return None
