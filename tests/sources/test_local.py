"""The media-root loader against a real file system: every way a name can fail maps to one of our errors.

Names too long for the file system, paths longer than PATH_MAX and symlink loops raised
``OSError`` (ENAMETOOLONG, ELOOP) and answered 500 with a traceback; a FIFO held a worker
thread until someone wrote to it. Each case is made here on a real directory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import anyio
import pytest

from tests.helpers import REPO, make_photo
from thumbsvc.errors import Forbidden, Overloaded, SourceNotFound, SourceTooLarge, ThumbError
from thumbsvc.sources.local import LocalSource, lookup_path, os_errors


@pytest.fixture
def root(tmp_path: Path) -> Path:
    media = tmp_path / "media"
    (media / "photos").mkdir(parents=True)
    (media / "photos" / "cat.jpg").write_bytes(make_photo((64, 48)))
    (media / "loop-a").symlink_to(media / "loop-b")
    (media / "loop-b").symlink_to(media / "loop-a")
    (media / "self").symlink_to(media / "self")
    os.mkfifo(media / "fifo.jpg")
    return media


def read(root: Path, ref: str, max_bytes: int = 1_000_000) -> bytes:
    """Fetch ``ref`` in a thread of its own, so a read that blocks fails the test instead of hanging it."""
    source = LocalSource(str(root), max_bytes=max_bytes)
    outcome: list[bytes | BaseException] = []

    def run() -> None:
        try:
            outcome.append(anyio.run(source.fetch, ref).data)
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(5)
    if not outcome:
        # Release a reader stuck opening the FIFO (a writer appears), so the process can end.
        os.close(os.open(root / "fifo.jpg", os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail(f"reading {ref[:40]!r} blocked")
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]


MISSING = [
    ("x" * 256 + ".jpg", "a name over NAME_MAX (ENAMETOOLONG)"),
    ("photos/" + "x" * 5000 + ".jpg", "one 5 KB name"),
    ("/".join(["d" * 200] * 30) + "/cat.jpg", "a 6 KB path over PATH_MAX"),
    ("loop-a", "a symlink loop (ELOOP)"),
    ("loop-a/cat.jpg", "through a symlink loop"),
    ("self", "a symlink to itself"),
    ("photos/cat.jpg/inside", "a file used as a directory (ENOTDIR)"),
    ("photos", "a directory"),
    ("fifo.jpg", "a FIFO: no blocking open"),
    ("photos/missing.jpg", "missing"),
]


@pytest.mark.parametrize(("ref", "why"), MISSING, ids=[row[1] for row in MISSING])
def test_names_that_cannot_be_read_are_not_found(root: Path, ref: str, why: str) -> None:
    started = time.monotonic()
    with pytest.raises(SourceNotFound) as info:
        read(root, ref)
    assert info.value.status_code == 404
    assert str(root) not in info.value.public_message
    assert time.monotonic() - started < 2  # the FIFO: no thread held


def test_a_real_file_is_read(root: Path) -> None:
    assert read(root, "photos/cat.jpg") == (root / "photos" / "cat.jpg").read_bytes()


def test_size_limits_hold(root: Path) -> None:
    size = (root / "photos" / "cat.jpg").stat().st_size
    assert len(read(root, "photos/cat.jpg", max_bytes=size)) == size
    with pytest.raises(SourceTooLarge):
        read(root, "photos/cat.jpg", max_bytes=size - 1)


def test_traversal_is_still_refused_by_the_jail(root: Path) -> None:
    # The URL parser refuses '..' segments first (tests/test_urls.py); the jail stands behind it.
    (root.parent / "secret.jpg").write_bytes(b"secret")
    for ref in ("../secret.jpg", "photos/../../secret.jpg"):
        with pytest.raises(Forbidden):
            lookup_path(str(root), ref)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_file_is_not_found(root: Path) -> None:
    locked = root / "locked.jpg"
    locked.write_bytes(make_photo((8, 8)))
    locked.chmod(0)
    with pytest.raises(SourceNotFound):
        read(root, "locked.jpg")


@pytest.mark.parametrize(
    ("errno_name", "expected"),
    [("ENAMETOOLONG", SourceNotFound), ("ELOOP", SourceNotFound), ("EMFILE", Overloaded), ("EIO", ThumbError)],
)
def test_os_errors_map_to_our_errors(errno_name: str, expected: type[ThumbError]) -> None:
    import errno

    with pytest.raises(expected) as info, os_errors("/media/x.jpg"):
        raise OSError(getattr(errno, errno_name), os.strerror(getattr(errno, errno_name)))
    assert type(info.value) is expected
    assert "/media" not in info.value.public_message


def test_out_of_file_descriptors_is_a_503(root: Path) -> None:
    # In a fresh process whose descriptor limit is already used up: EMFILE on open.
    code = f"""
import anyio, json, resource, os
from thumbsvc.sources.local import LocalSource
from thumbsvc.errors import ThumbError
source = LocalSource({str(root)!r}, max_bytes=1_000_000)
async def main():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    held = []
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
    try:
        while True:
            held.append(os.open("/dev/null", os.O_RDONLY))
    except OSError:
        pass
    try:
        source._read("photos/cat.jpg")
        print(json.dumps({{"status": 200}}))
    except ThumbError as exc:
        print(json.dumps({{"status": exc.status_code, "retry": exc.headers.get("Retry-After")}}))
anyio.run(main)
"""
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"status": 503, "retry": "1"}
