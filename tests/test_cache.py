"""The result and source caches and single flight: unit level, then through the app."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from tests.helpers import decode, make_photo
from tests.live import sample
from thumbsvc.app import create_app
from thumbsvc.cache import SingleFlight, TTLCache
from thumbsvc.client import URLSigner
from thumbsvc.config import Settings
from thumbsvc.errors import BadRequest, SourceNotFound

LANDSCAPE = "photos/landscape.jpg"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --- TTLCache -------------------------------------------------------------------------------------


def test_lru_eviction_keeps_the_byte_bound_and_the_recently_used() -> None:
    evicted: list[str] = []
    cache: TTLCache[str] = TTLCache(100, 60, clock=Clock(), on_evict=evicted.append)
    assert cache.put("a", "A", 40)
    assert cache.put("b", "B", 40)
    assert cache.get("a") == "A"  # now b is the least recently used
    assert cache.put("c", "C", 40)
    assert cache.get("b") is None
    assert cache.get("a") == "A"
    assert cache.get("c") == "C"
    assert cache.bytes == 80
    assert len(cache) == 2
    assert evicted == ["size"]


def test_entries_expire_after_the_ttl() -> None:
    clock = Clock()
    evicted: list[str] = []
    cache: TTLCache[str] = TTLCache(1000, 10, clock=clock, on_evict=evicted.append)
    cache.put("a", "A", 10)
    clock.now += 5
    cache.put("b", "B", 10)
    assert cache.get("a") == "A"  # reading does not extend the life of an entry
    clock.now += 5
    assert cache.get("a") is None
    assert cache.get("b") == "B"
    clock.now += 5
    assert "b" not in cache
    assert cache.bytes == 0
    assert evicted == ["ttl", "ttl"]


def test_storing_again_replaces_and_restarts_the_ttl() -> None:
    clock = Clock()
    cache: TTLCache[str] = TTLCache(1000, 10, clock=clock)
    cache.put("a", "old", 10)
    clock.now += 8
    cache.put("a", "new", 30)
    assert cache.bytes == 30
    clock.now += 8
    assert cache.get("a") == "new"


@pytest.mark.parametrize(("max_bytes", "ttl_s", "size"), [(0, 10, 1), (100, 0, 1), (100, 10, 101)])
def test_values_are_not_stored_when_off_or_too_large(max_bytes: int, ttl_s: float, size: int) -> None:
    cache: TTLCache[str] = TTLCache(max_bytes, ttl_s, clock=Clock())
    assert not cache.put("a", "A", size)
    assert cache.get("a") is None
    assert cache.bytes == 0


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["put", "get", "tick"]), st.integers(0, 15), st.integers(0, 70)),
        max_size=80,
    )
)
def test_the_byte_bound_holds_for_any_sequence(ops: list[tuple[str, int, int]]) -> None:
    clock = Clock()
    cache: TTLCache[int] = TTLCache(100, 5, clock=clock)
    stored: dict[str, tuple[int, float]] = {}
    for op, key_number, size in ops:
        key = f"k{key_number}"
        if op == "put":
            if cache.put(key, size, size):
                stored[key] = (size, clock.now)
        elif op == "get":
            value = cache.get(key)
            if value is not None:
                assert key in stored
                assert value == stored[key][0]
                assert clock.now < stored[key][1] + 5
        else:
            clock.now += size / 10
        assert 0 <= cache.bytes <= 100
        assert len(cache) <= 16


# --- SingleFlight ----------------------------------------------------------------------------------


def test_concurrent_callers_share_one_computation() -> None:
    calls = 0
    results: list[tuple[object, bool]] = []

    async def main() -> None:
        flight: SingleFlight[object] = SingleFlight()
        release = anyio.Event()

        async def compute() -> object:
            nonlocal calls
            calls += 1
            await release.wait()
            return object()

        async def call() -> None:
            results.append(await flight.run("key", compute))

        async with anyio.create_task_group() as tg:
            for _ in range(50):
                tg.start_soon(call)
            await anyio.wait_all_tasks_blocked()  # every caller is in: one computing, 49 waiting
            release.set()
        assert len(flight) == 0

    anyio.run(main)
    assert calls == 1
    assert len({id(value) for value, _ in results}) == 1
    assert sorted(joined for _, joined in results) == [False] + [True] * 49


def test_a_failure_is_shared_by_the_waiters_and_not_remembered() -> None:
    calls = 0
    errors: list[BaseException] = []

    async def succeeding() -> str:
        return "ok"

    async def main() -> None:
        flight: SingleFlight[str] = SingleFlight()
        release = anyio.Event()

        async def failing() -> str:
            nonlocal calls
            calls += 1
            await release.wait()
            raise SourceNotFound("gone")

        async def call() -> None:
            try:
                await flight.run("key", failing)
            except SourceNotFound as exc:
                errors.append(exc)

        async with anyio.create_task_group() as tg:
            for _ in range(10):
                tg.start_soon(call)
            await anyio.wait_all_tasks_blocked()
            release.set()
        # The failure is over: the next caller computes again.
        assert await flight.run("key", succeeding) == ("ok", False)

    anyio.run(main)
    assert calls == 1
    assert len(errors) == 10
    assert all(exc.status_code == 404 and exc.detail == "gone" for exc in errors)
    assert len({id(exc) for exc in errors}) == 10  # each waiter raises its own copy


def test_a_cancelled_leader_hands_over_to_a_waiter() -> None:
    calls = 0
    result: list[tuple[str, bool]] = []

    async def slow() -> str:
        nonlocal calls
        calls += 1
        await anyio.sleep(10)
        return "never"

    async def quick() -> str:
        nonlocal calls
        calls += 1
        return "second"

    async def main() -> None:
        flight: SingleFlight[str] = SingleFlight()
        leader_scope = anyio.CancelScope()

        async def leader() -> None:
            with leader_scope:
                await flight.run("key", slow)

        async def follower() -> None:
            result.append(await flight.run("key", quick))

        async with anyio.create_task_group() as tg:
            tg.start_soon(leader)
            await anyio.wait_all_tasks_blocked()  # the leader is computing
            tg.start_soon(follower)
            await anyio.wait_all_tasks_blocked()  # the follower is waiting for the leader's call
            leader_scope.cancel()
        assert len(flight) == 0

    anyio.run(main)
    assert calls == 2
    assert result == [("second", False)]


def test_an_exception_of_another_kind_reaches_every_waiter() -> None:
    async def main() -> list[BaseException]:
        flight: SingleFlight[str] = SingleFlight()
        caught: list[BaseException] = []

        release = anyio.Event()

        async def bad() -> str:
            await release.wait()
            raise BadRequest("no", public_message="Nope")

        async def call() -> None:
            try:
                await flight.run("k", bad)
            except BadRequest as exc:
                caught.append(exc)

        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(call)
            await anyio.wait_all_tasks_blocked()
            release.set()
        return caught

    caught = anyio.run(main)
    assert [exc.public_message for exc in caught] == ["Nope"] * 3  # type: ignore[attr-defined]


# --- Through the app -------------------------------------------------------------------------------


def metrics(client: TestClient) -> str:
    return client.get("/metrics").text


def test_a_repeat_is_a_hit_with_the_same_bytes_and_still_answers_304_and_head(
    client: TestClient, signer: URLSigner
) -> None:
    path = signer.path(LANDSCAPE, width=200, height=150, fit="cover", format="webp")
    first = client.get(path)
    assert first.status_code == 200
    assert first.headers["x-cache"] == "MISS"
    second = client.get(path)
    assert second.headers["x-cache"] == "HIT"
    assert second.content == first.content
    assert second.headers["etag"] == first.headers["etag"]
    assert second.headers["content-type"] == "image/webp"
    assert second.headers["cache-control"] == first.headers["cache-control"]

    not_modified = client.get(path, headers={"If-None-Match": first.headers["etag"]})
    assert not_modified.status_code == 304
    assert not_modified.content == b""
    assert not_modified.headers["etag"] == first.headers["etag"]
    assert not_modified.headers["x-cache"] == "HIT"

    head = client.head(path)
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == str(len(first.content))
    assert head.headers["x-cache"] == "HIT"
    text = metrics(client)
    assert sample(text, "thumbsvc_renders_total") == 1
    assert sample(text, "thumbsvc_cache_hits_total", cache="result") == 3
    assert sample(text, "thumbsvc_cache_misses_total", cache="result") == 1


def test_f_auto_is_cached_per_accept_bucket(client: TestClient, signer: URLSigner) -> None:
    path = signer.path(LANDSCAPE, width=120, format="auto")
    webp = client.get(path, headers={"Accept": "image/webp,*/*"})
    plain = client.get(path, headers={"Accept": "*/*"})
    again = client.get(path, headers={"Accept": "image/webp"})
    assert (webp.headers["x-cache"], plain.headers["x-cache"], again.headers["x-cache"]) == ("MISS", "MISS", "HIT")
    assert decode(webp.content).format == "WEBP"
    assert decode(plain.content).format == "JPEG"
    assert again.content == webp.content
    assert webp.headers["etag"] != plain.headers["etag"]
    assert webp.headers["vary"] == "Accept"


def test_errors_are_never_cached(client: TestClient, signer: URLSigner, media_root: Path) -> None:
    path = signer.path("photos/later.jpg", width=100)
    assert client.get(path).status_code == 404
    (media_root / "photos" / "later.jpg").write_bytes(make_photo((400, 300)))
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["x-cache"] == "MISS"
    assert decode(response.content).size == (100, 75)


def test_the_byte_bound_holds_under_a_flood_of_unique_urls(
    client_factory: Callable[..., TestClient], signer: URLSigner
) -> None:
    bound = 15_000
    client = client_factory(cache_bytes=bound)
    paths = [signer.path(LANDSCAPE, width=80 + i, quality=90) for i in range(60)]
    stored = 0
    for path in paths:
        response = client.get(path)
        assert response.status_code == 200
        assert response.headers["x-cache"] == "MISS"
        stored += len(response.content)
        assert sample(metrics(client), "thumbsvc_cache_bytes", cache="result") <= bound
    assert stored > 2 * bound  # the flood really was larger than the cache
    text = metrics(client)
    assert sample(text, "thumbsvc_cache_evictions_total", cache="result", reason="size") > 0
    assert sample(text, "thumbsvc_cache_entries", cache="result") < len(paths)
    assert client.get(paths[-1]).headers["x-cache"] == "HIT"  # the most recent stayed
    assert client.get(paths[0]).headers["x-cache"] == "MISS"  # the oldest went


def test_result_ttl_expiry(settings_factory: Callable[..., Settings], signer: URLSigner) -> None:
    clock = Clock()
    with TestClient(create_app(settings_factory(cache_ttl_s=0.3), clock=clock)) as client:
        path = signer.path(LANDSCAPE, width=90)
        assert client.get(path).headers["x-cache"] == "MISS"
        assert client.get(path).headers["x-cache"] == "HIT"
        clock.now += 0.5
        assert client.get(path).headers["x-cache"] == "MISS"
        text = metrics(client)
    assert sample(text, "thumbsvc_renders_total") == 2
    assert sample(text, "thumbsvc_cache_evictions_total", cache="result", reason="ttl") == 1


def test_three_sizes_of_one_photo_load_it_once(
    settings_factory: Callable[..., Settings], signer: URLSigner, media_root: Path
) -> None:
    clock = Clock()
    with TestClient(create_app(settings_factory(source_cache_ttl_s=0.3), clock=clock)) as client:
        for width in (100, 200, 300):
            response = client.get(signer.path(LANDSCAPE, width=width))
            assert response.status_code == 200
            assert decode(response.content).width == width
        text = metrics(client)
        size = (media_root / LANDSCAPE).stat().st_size
        assert sample(text, "thumbsvc_renders_total") == 3
        assert sample(text, "thumbsvc_cache_misses_total", cache="source") == 1
        assert sample(text, "thumbsvc_cache_hits_total", cache="source") == 2
        assert sample(text, "thumbsvc_fetch_seconds_count", kind="local") == 1
        assert sample(text, "thumbsvc_source_bytes_total", kind="local") == size
        # After the source TTL the file is read again.
        clock.now += 0.5
        assert client.get(signer.path(LANDSCAPE, width=400)).status_code == 200
        assert sample(metrics(client), "thumbsvc_fetch_seconds_count", kind="local") == 2


def test_caches_can_be_turned_off(client_factory: Callable[..., TestClient], signer: URLSigner) -> None:
    client = client_factory(cache_bytes=0, source_cache_bytes=0)
    path = signer.path(LANDSCAPE, width=64)
    responses: list[Any] = [client.get(path) for _ in range(3)]
    assert [r.headers["x-cache"] for r in responses] == ["MISS"] * 3
    assert len({r.content for r in responses}) == 1
    text = metrics(client)
    assert sample(text, "thumbsvc_renders_total") == 3
    assert sample(text, "thumbsvc_fetch_seconds_count", kind="local") == 3


def test_a_revalidation_on_a_cold_instance_answers_304_without_rendering(
    client_factory: Callable[..., TestClient], signer: URLSigner
) -> None:
    path = signer.path(LANDSCAPE, width=180, format="auto")
    accept = {"Accept": "image/webp"}
    etag = client_factory().get(path, headers=accept).headers["etag"]
    cold = client_factory()  # another instance: its result cache has never seen the URL

    not_modified = cold.get(path, headers={**accept, "If-None-Match": f'"stale", {etag}'})
    assert not_modified.status_code == 304
    assert not_modified.content == b""
    assert not_modified.headers["etag"] == etag
    assert not_modified.headers["x-cache"] == "REVALIDATED"
    assert not_modified.headers["vary"] == "Accept"
    assert not_modified.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert sample(metrics(cold), "thumbsvc_renders_total") == 0

    # Another Accept bucket is another representation: its tag does not match, so it renders.
    other = cold.get(path, headers={"Accept": "*/*", "If-None-Match": etag})
    assert other.status_code == 200
    assert decode(other.content).format == "JPEG"
    assert sample(metrics(cold), "thumbsvc_renders_total") == 1


def test_a_stale_or_wildcard_revalidation_renders_and_a_missing_source_is_404(
    client: TestClient, signer: URLSigner
) -> None:
    path = signer.path(LANDSCAPE, width=90)
    stale = client.get(path, headers={"If-None-Match": '"from-an-older-render-version"'})
    assert stale.status_code == 200
    assert decode(stale.content).size[0] == 90
    assert client.get(path, headers={"If-None-Match": "*"}).status_code == 304
    missing = client.get(signer.path("no/such.jpg", width=90), headers={"If-None-Match": stale.headers["etag"]})
    assert missing.status_code == 404
    assert sample(metrics(client), "thumbsvc_renders_total") == 1
