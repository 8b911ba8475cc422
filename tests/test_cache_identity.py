"""Caches only ever save work: over the whole corpus, every fit at three sizes, an app with every cache on
answers byte for byte what an app with every cache off answers, with the same ETag.

The cache-on app asks for the twelve thumbnails of a file in one burst, so its decoded-source cache
and single flights really share decodes between sizes (the gallery case); the cache-off app decodes
every one on its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest
from starlette.testclient import TestClient

from tests.helpers import TEST_KEY
from tests.test_corpus import ROWS, Row
from thumbsvc.app import create_app
from thumbsvc.client import URLSigner
from thumbsvc.config import Settings

SIGNER = URLSigner(key=TEST_KEY)
SIZES = ((150, 150), (400, 300), (1200, 900))
FITS = ("contain", "cover", "fill", "pad")
CACHES_OFF = {
    "cache_bytes": 0,
    "source_cache_bytes": 0,
    "decoded_cache_bytes": 0,
    "refusal_cache_ttl_s": 0,
}


@pytest.fixture(scope="module")
def apps(corpus: Path) -> Iterator[tuple[TestClient, TestClient]]:
    base = {
        "keys": (TEST_KEY,),
        "media_root": str(corpus),
        "render_slots": 2,
        "queue_size": 64,
        "queue_timeout_s": 120,  # a burst of twelve renders of a large animation is not overload here
        "render_timeout_s": 120,
    }
    on = create_app(Settings(**base, decoded_cache_bytes=256_000_000))  # type: ignore[arg-type]
    off = create_app(Settings(**base, **CACHES_OFF))  # type: ignore[arg-type]
    with TestClient(on) as cached, TestClient(off) as plain:
        yield cached, plain


def burst(app: object, paths: list[str]) -> list[httpx.Response]:
    """Ask for every path at once (so identical decodes meet in flight); return the answers in order."""
    answers: list[httpx.Response | None] = [None] * len(paths)

    async def main() -> None:
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with (
            httpx.AsyncClient(transport=transport, base_url="http://thumbsvc") as client,
            anyio.create_task_group() as tg,
        ):
            for index, path in enumerate(paths):

                async def one(index: int = index, path: str = path) -> None:
                    answers[index] = await client.get(path)

                tg.start_soon(one)

    anyio.run(main)
    return [answer for answer in answers if answer is not None]


@pytest.mark.corpus
@pytest.mark.slow
@pytest.mark.parametrize("row", [pytest.param(row, id=row.path) for row in ROWS])
def test_every_cache_on_or_off_gives_the_same_bytes_and_etag(apps: tuple[TestClient, TestClient], row: Row) -> None:
    cached, plain = apps
    paths = [SIGNER.path(row.path, width=w, height=h, fit=fit) for w, h in SIZES for fit in FITS]
    on = burst(cached.app, paths)
    for path, answer in zip(paths, on, strict=True):
        off = plain.get(path)
        assert answer.status_code == off.status_code, path
        assert answer.headers["content-type"] == off.headers["content-type"]
        assert answer.content == off.content, path
        if off.status_code == 200:
            assert answer.headers["etag"] == off.headers["etag"], path
            # Asked again, from the result cache: the same bytes and tag once more.
            again = cached.get(path)
            assert (again.headers["x-cache"], again.content) == ("HIT", off.content)
            assert again.headers["etag"] == off.headers["etag"]
