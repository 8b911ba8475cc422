"""Expiring URLs (``exp:``): 410 from their time on, cache headers that never outlive them, one render per thumbnail.

The app's wall clock is injected, so "after the time passes" is a step of the test, not a sleep;
a real uvicorn on loopback serves the end-to-end case.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import httpx
import pytest
from starlette.testclient import TestClient

from tests.helpers import TEST_KEY, decode
from tests.live import sample, serve_in_thread
from thumbsvc.app import capped_cache_control, create_app
from thumbsvc.client import URLSigner
from thumbsvc.config import ConfigError, Settings
from thumbsvc.signing import PathSigner

NOW = 1_800_000_000.0
LANDSCAPE = "photos/landscape.jpg"


class WallClock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def app_client(settings: Settings, clock: WallClock) -> TestClient:
    client = TestClient(create_app(settings, wall_clock=clock))
    client.__enter__()
    return client


def test_a_live_url_is_cached_until_its_time_then_410_through_real_uvicorn(
    settings_factory: Callable[..., Settings], signer: URLSigner
) -> None:
    clock = WallClock()
    path = signer.path(LANDSCAPE, width=120, expires=int(NOW) + 3)
    with serve_in_thread(create_app(settings_factory(), wall_clock=clock)) as base, httpx.Client(base_url=base) as http:
        live = http.get(path)
        assert live.status_code == 200
        assert decode(live.content).size == (120, 90)
        assert live.headers["cache-control"] == "public, max-age=3"
        assert parsedate_to_datetime(live.headers["expires"]) == datetime.fromtimestamp(NOW + 3, UTC)
        clock.now += 2.5
        assert http.get(path).headers["cache-control"] == "public, max-age=0"  # from the result cache, capped
        clock.now += 0.5
        for method, headers in (("GET", {}), ("HEAD", {}), ("GET", {"if-none-match": live.headers["etag"]})):
            gone = http.request(method, path, headers=headers)
            assert gone.status_code == 410
            assert gone.headers["cache-control"] == "public, max-age=60"  # cacheable like the other 4xx
        assert http.get(path).text == "This thumbnail URL has expired\n"


def test_urls_without_exp_keep_todays_headers(client: TestClient, signer: URLSigner) -> None:
    response = client.get(signer.path(LANDSCAPE, width=100))
    assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert "expires" not in response.headers


def test_max_age_is_the_configured_one_when_the_url_lives_longer(
    settings_factory: Callable[..., Settings], signer: URLSigner
) -> None:
    clock = WallClock()
    client = app_client(settings_factory(cache_control="public, max-age=600, s-maxage=3600, immutable"), clock)
    far = client.get(signer.path(LANDSCAPE, width=100, expires=int(NOW) + 86_400))
    assert far.headers["cache-control"] == "public, max-age=600, s-maxage=3600"
    near = client.get(signer.path(LANDSCAPE, width=100, expires=int(NOW) + 100))
    assert near.headers["cache-control"] == "public, max-age=100, s-maxage=100"


def test_a_304_carries_the_capped_headers(settings_factory: Callable[..., Settings], signer: URLSigner) -> None:
    clock = WallClock()
    client = app_client(settings_factory(), clock)
    path = signer.path(LANDSCAPE, width=100, expires=int(NOW) + 50)
    etag = client.get(path).headers["etag"]
    clock.now += 20
    fresh = client.get(path, headers={"if-none-match": etag})
    assert fresh.status_code == 304
    assert fresh.headers["cache-control"] == "public, max-age=30"
    assert "expires" in fresh.headers
    # A CDN revalidating on another instance (nothing cached there) gets the same.
    other = app_client(settings_factory(), clock)
    revalidated = other.get(path, headers={"if-none-match": etag})
    assert (revalidated.status_code, revalidated.headers["x-cache"]) == (304, "REVALIDATED")
    assert revalidated.headers["cache-control"] == "public, max-age=30"


def test_urls_of_one_thumbnail_with_other_expiries_share_one_render(
    settings_factory: Callable[..., Settings], signer: URLSigner
) -> None:
    clock = WallClock()
    client = app_client(settings_factory(), clock)
    urls = [signer.path(LANDSCAPE, width=100, expires=int(NOW) + seconds) for seconds in (60, 3600, 86_400)]
    answers = [client.get(url) for url in urls]
    plain = client.get(signer.path(LANDSCAPE, width=100))
    assert [a.headers["x-cache"] for a in answers] == ["MISS", "HIT", "HIT"]
    assert len({a.content for a in [*answers, plain]}) == 1
    assert len({a.headers["etag"] for a in [*answers, plain]}) == 1
    assert [a.headers["cache-control"] for a in answers] == [
        "public, max-age=60",
        "public, max-age=3600",
        "public, max-age=86400",
    ]
    assert sample(client.get("/metrics").text, "thumbsvc_renders_total") == 1
    # The cached result never lends a later URL its own freshness: each answer is capped by its own exp.
    clock.now += 59
    assert client.get(urls[0]).headers["cache-control"] == "public, max-age=1"
    clock.now += 1
    assert client.get(urls[0]).status_code == 410
    assert client.get(urls[1]).status_code == 200


def test_the_leeway_allows_for_clock_skew(settings_factory: Callable[..., Settings], signer: URLSigner) -> None:
    clock = WallClock()
    client = app_client(settings_factory(expires_leeway_s=30), clock)
    path = signer.path(LANDSCAPE, width=100, expires=int(NOW) + 10)
    clock.now += 35
    late = client.get(path)
    assert late.status_code == 200
    assert late.headers["cache-control"] == "public, max-age=0"
    clock.now += 5
    assert client.get(path).status_code == 410
    assert Settings.from_env({"THUMBSVC_EXPIRES_LEEWAY": "5"}).expires_leeway_s == 5
    with pytest.raises(ConfigError, match="THUMBSVC_EXPIRES_LEEWAY"):
        Settings.from_env({"THUMBSVC_EXPIRES_LEEWAY": "-1"})


def test_exp_is_signed_and_canonical(client: TestClient, signer: URLSigner) -> None:
    path = signer.path(LANDSCAPE, width=100, expires=9_999_999_999)
    assert path.endswith("/100x/exp:9999999999/photos/landscape.jpg")
    assert client.get(path).status_code == 200
    signature, _, rest = path[1:].partition("/")
    assert client.get(f"/{signature}/{rest.replace('exp:9999999999', 'exp:9999999998')}").status_code == 403
    assert client.get(f"/{signature}/{rest.replace('/exp:9999999999', '')}").status_code == 403
    for options in ("100x/exp:09999999999", "100x/exp:0", "100x/exp:1.5", "100x/exp:1800000000/blur:1"):
        payload = f"{options}/{LANDSCAPE}"
        response = client.get(f"/{PathSigner([TEST_KEY]).sign(payload)}/{payload}")
        assert response.status_code == 400, options


def test_the_client_takes_seconds_datetimes_and_timedeltas(signer: URLSigner) -> None:
    assert "/exp:1800000000/" in signer.path(LANDSCAPE, width=10, expires=1_800_000_000)
    moment = datetime(2027, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert f"/exp:{int(moment.timestamp())}/" in signer.path(LANDSCAPE, width=10, expires=moment)
    assert f"/exp:{int(moment.timestamp())}/" in signer.path(LANDSCAPE, width=10, expires=moment.replace(tzinfo=None))
    ahead = signer.path(LANDSCAPE, width=10, expires=timedelta(seconds=3601))
    seconds = int(ahead.split("/exp:")[1].split("/")[0])
    assert 0 <= seconds - time.time() - 3601 <= 2  # not rounded to a window: that is the templates' job
    for bad in ("tomorrow", 1.5, -5, True):
        with pytest.raises(ValueError):
            signer.path(LANDSCAPE, width=10, expires=bad)


@pytest.mark.parametrize(
    ("configured", "left", "expected"),
    [
        ("public, max-age=31536000, immutable", 90, "public, max-age=90"),
        ("public, max-age=60", 90, "public, max-age=60"),
        ("public", 90, "public, max-age=90"),
        ("public, s-maxage=1000, max-age=10", 90, "public, s-maxage=90, max-age=10"),
        ("public,max-age=500,immutable,stale-while-revalidate=30", 0, "public, max-age=0, stale-while-revalidate=30"),
    ],
)
def test_capped_cache_control(configured: str, left: int, expected: str) -> None:
    assert capped_cache_control(configured, left) == expected
