"""Behaviour under load, against a real uvicorn on 127.0.0.1: single flight, shedding, readiness, shutdown, memory.

Only behaviour is asserted (counts, statuses, headers, order of events), never speed: speed
is measured by bench/load.py.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from tests.helpers import TEST_KEY, decode
from tests.live import rss_bytes, sample, serve_in_process, serve_in_thread
from thumbsvc.app import create_app
from thumbsvc.client import URLSigner
from thumbsvc.config import Settings

LANDSCAPE = "photos/landscape.jpg"  # 1200x900


def slow_path(signer: URLSigner, index: int) -> str:
    """A distinct thumbnail that takes a noticeable time to render (about 4000x3000 px, upscaled)."""
    return signer.path(LANDSCAPE, width=4000 - index, upscale=True, quality=90)


async def fetch_all(base: str, paths: list[str], **headers: str) -> list[tuple[httpx.Response, float]]:
    """GET every path at once on its own connection; return each response with the time it arrived."""
    results: list[tuple[httpx.Response, float]] = [None] * len(paths)  # type: ignore[list-item]
    limits = httpx.Limits(max_connections=len(paths), max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60, headers=headers) as client:

        async def one(index: int, path: str) -> None:
            response = await client.get(path)
            results[index] = (response, time.monotonic())

        async with anyio.create_task_group() as tg:
            for index, path in enumerate(paths):
                tg.start_soon(one, index, path)
    return results


def scrape(base: str) -> str:
    return httpx.get(f"{base}/metrics", timeout=30).text


def test_two_hundred_concurrent_requests_for_one_cold_url_render_once(
    settings_factory: Callable[..., Settings], signer: URLSigner
) -> None:
    app = create_app(settings_factory(render_slots=2))
    path = signer.path(LANDSCAPE, width=2000, upscale=True, format="webp")
    with serve_in_thread(app) as base:
        results = anyio.run(fetch_all, base, [path] * 200)
        text = scrape(base)
    responses = [response for response, _ in results]
    assert {r.status_code for r in responses} == {200}
    assert len({r.content for r in responses}) == 1
    assert len({r.headers["etag"] for r in responses}) == 1
    cache = [r.headers["x-cache"] for r in responses]
    assert cache.count("MISS") == 1
    assert cache.count("JOIN") + cache.count("HIT") == 199
    assert cache.count("JOIN") > 0
    assert decode(responses[0].content).size == (2000, 1500)
    assert sample(text, "thumbsvc_renders_total") == 1
    assert sample(text, "thumbsvc_fetch_seconds_count", kind="local") == 1
    assert sample(text, "thumbsvc_singleflight_joins_total", cache="result") == cache.count("JOIN")
    assert sample(text, "thumbsvc_cache_hits_total", cache="result") == cache.count("HIT")
    assert sample(text, "thumbsvc_requests_total", route="thumbnail", status="2xx") == 200


def test_overload_is_shed_with_fast_503s_while_admitted_requests_complete(
    settings_factory: Callable[..., Settings], signer: URLSigner
) -> None:
    # One slot and one queue place: two requests are admitted, the rest are refused at once.
    app = create_app(settings_factory(render_slots=1, queue_size=1, queue_timeout_s=60))
    paths = [slow_path(signer, index) for index in range(10)]
    with serve_in_thread(app) as base:
        results = anyio.run(fetch_all, base, paths)
        text = scrape(base)
    admitted = [(r, t) for r, t in results if r.status_code == 200]
    refused = [(r, t) for r, t in results if r.status_code == 503]
    assert len(admitted) + len(refused) == len(paths)
    assert len(admitted) >= 2
    assert len(refused) >= 1
    for response, _ in refused:
        assert response.headers["retry-after"] == "1"
        assert response.headers["cache-control"] == "no-store"
        assert response.text.startswith("Overloaded")
    for response, _ in admitted:
        assert response.headers["content-type"] == "image/jpeg"
        assert decode(response.content).width > 3900
    # The refusals did not wait for the renders: every one arrived before the first thumbnail.
    assert max(t for _, t in refused) < min(t for _, t in admitted)
    assert sample(text, "thumbsvc_rejected_total", reason="queue_full") == len(refused)
    assert sample(text, "thumbsvc_renders_total") == len(admitted)
    assert sample(text, "thumbsvc_requests_total", route="thumbnail", status="5xx") == len(refused)
    # Every request had its source in hand before admission (downloads hold no render place); they
    # shared one read.
    assert sample(text, "thumbsvc_fetch_seconds_count", kind="local") == 1
    source_lookups = sum(sample(text, f"thumbsvc_cache_{kind}_total", cache="source") for kind in ("hits", "misses"))
    assert source_lookups == len(paths)


def test_a_request_that_waits_past_the_queue_deadline_gets_503(
    settings_factory: Callable[..., Settings], signer: URLSigner
) -> None:
    # Decoded cache off: with it, the three sizes of one source would share one decode instead of queueing.
    # The deadline is a sixth of the first render (about 0.3 s), so requests that arrive a little
    # after it (their connections are accepted one by one) still wait past it.
    app = create_app(settings_factory(render_slots=1, queue_size=4, queue_timeout_s=0.05, decoded_cache_bytes=0))
    paths = [slow_path(signer, index) for index in range(3)]
    with serve_in_thread(app) as base:
        results = anyio.run(fetch_all, base, paths)
        text = scrape(base)
    statuses = sorted(r.status_code for r, _ in results)
    assert statuses == [200, 503, 503]
    assert all(r.headers["retry-after"] == "1" for r, _ in results if r.status_code == 503)
    assert sample(text, "thumbsvc_rejected_total", reason="queue_timeout") == 2
    assert sample(text, "thumbsvc_renders_total") == 1


def test_readyz_turns_busy_while_the_queue_fills_and_healthz_stays_alive(
    settings_factory: Callable[..., Settings], signer: URLSigner
) -> None:
    # One slot, two queue places: three requests in flight fill the queue past 80 %.
    app = create_app(settings_factory(render_slots=1, queue_size=2, queue_timeout_s=60))
    paths = [slow_path(signer, index) for index in range(3)]
    seen: dict[str, Any] = {}
    with serve_in_thread(app) as base:

        def probe() -> None:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                ready = httpx.get(f"{base}/readyz", timeout=10)
                if ready.status_code == 503:
                    seen["busy"] = ready.text
                    seen["health"] = httpx.get(f"{base}/healthz", timeout=10).status_code
                    return
                time.sleep(0.01)

        prober = threading.Thread(target=probe)
        prober.start()
        results = anyio.run(fetch_all, base, paths)
        prober.join()
        after = httpx.get(f"{base}/readyz", timeout=10)
    assert [r.status_code for r, _ in results] == [200, 200, 200]
    assert seen == {"busy": "busy\n", "health": 200}
    assert after.status_code == 200


def test_sigterm_drains_then_finishes_the_work_in_flight(media_root: Path) -> None:
    signer = URLSigner(key=TEST_KEY)
    env = {
        "THUMBSVC_KEY": TEST_KEY,
        "THUMBSVC_MEDIA_ROOT": str(media_root),
        "THUMBSVC_RENDER_SLOTS": "1",
        "THUMBSVC_DRAIN_DELAY": "1.5",
    }
    outcome: dict[str, Any] = {}
    with serve_in_process(env) as (base, pid):

        def slow() -> None:
            outcome["slow"] = httpx.get(base + slow_path(signer, 0), timeout=60)

        worker = threading.Thread(target=slow)
        worker.start()
        deadline = time.monotonic() + 20
        while sample(scrape(base), "thumbsvc_renders_in_progress") < 1:
            assert time.monotonic() < deadline, "the slow render never started"
            time.sleep(0.02)
        os.kill(pid, signal.SIGTERM)
        # Draining: not ready, still alive and still serving.
        deadline = time.monotonic() + 10
        while (ready := httpx.get(f"{base}/readyz", timeout=10)).status_code != 503:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        outcome["ready"] = ready.text
        outcome["health"] = httpx.get(f"{base}/healthz", timeout=10).status_code
        outcome["during"] = httpx.get(base + signer.path(LANDSCAPE, width=77), timeout=30).status_code
        worker.join(timeout=60)
        # Then the server stops taking connections.
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"{base}/healthz", timeout=1)
            except httpx.TransportError:
                break
            assert time.monotonic() < deadline, "the server never shut down"
            time.sleep(0.05)
    assert outcome["ready"] == "draining\n"
    assert outcome["health"] == 200
    assert outcome["during"] == 200
    assert outcome["slow"].status_code == 200
    assert decode(outcome["slow"].content).width == 4000


@pytest.mark.calibration
@pytest.mark.slow
@pytest.mark.corpus
def test_memory_stays_bounded_over_repeated_24_megapixel_renders(corpus: Path) -> None:
    # craft-beer is 6000x4000; outputs this large decode it at full size (no JPEG draft).
    env = {
        "THUMBSVC_KEY": TEST_KEY,
        "THUMBSVC_MEDIA_ROOT": str(corpus / "photos"),
        "THUMBSVC_RENDER_SLOTS": "2",
        "THUMBSVC_CACHE_BYTES": "8000000",
        "THUMBSVC_QUEUE_TIMEOUT": "60",
    }
    signer = URLSigner(key=TEST_KEY)
    paths = [signer.path("immich__craft-beer.jpg", width=3000 + 37 * i) for i in range(10)]
    with serve_in_process(env) as (base, pid):

        def render_all(batch: list[str]) -> None:
            results = anyio.run(fetch_all, base, batch)
            assert {r.status_code for r, _ in results} == {200}

        render_all(paths[:2])
        render_all(paths[2:4])
        warm = rss_bytes(pid)
        peak = warm
        for start in range(4, len(paths), 2):
            render_all(paths[start : start + 2])
            peak = max(peak, rss_bytes(pid))
        final = rss_bytes(pid)
        text = scrape(base)
    assert sample(text, "thumbsvc_renders_total") == len(paths)
    assert sample(text, "thumbsvc_cache_bytes", cache="result") <= 8_000_000
    # Two 24 MP decodes at once are about 150 MB of pixels, and the allocator keeps some of it
    # after warm-up; a leak of one decoded image per render would add over 400 MB here.
    assert final - warm < 200_000_000, (warm, final)
    assert peak < 1_000_000_000, peak
