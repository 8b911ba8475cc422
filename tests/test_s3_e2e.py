"""Thumbnails from a private bucket through real uvicorn, moto (SigV4 enforced) on loopback as the S3 endpoint.

The first test runs ``thumbsvc serve`` in a child process configured only by its environment
(``THUMBSVC_*`` and the AWS chain's variables); the others run the app under uvicorn in a thread.
Every S3 request is counted at moto (its request log) and every byte sent back at a proxy in front.
"""

from __future__ import annotations

import asyncio
import http.client
import io
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.helpers import TEST_KEY, make_photo
from tests.live import serve_in_process, serve_in_thread
from tests.s3server import (
    BUCKET,
    CHAIN_VARIABLES,
    OTHER_BUCKET,
    CountingProxy,
    MotoS3,
    StallingServer,
    aws_environment,
    moto_s3,
    proxy_to,
)
from thumbsvc.app import create_app
from thumbsvc.client import URLSigner
from thumbsvc.config import Settings
from thumbsvc.signing import PathSigner

SIGNER = URLSigner(key=TEST_KEY)


@pytest.fixture(scope="module")
def s3() -> MotoS3:
    return moto_s3()


@pytest.fixture
def proxy(s3: MotoS3) -> Iterator[CountingProxy]:
    with proxy_to(s3.port) as counting:
        yield counting


@pytest.fixture
def aws_env(s3: MotoS3, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name in CHAIN_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    env = aws_environment(s3.key_id, s3.secret)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def settings(endpoint: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "keys": (TEST_KEY,),
        "allowed_sources": (f"s3://{BUCKET}/",),
        "s3_endpoint": endpoint,
        "render_slots": 2,
    }
    values.update(overrides)
    return Settings(**values)


def object_key(name: str = "cat.jpg") -> str:
    return f"e2e/{uuid.uuid4().hex[:12]}/{name}"


def test_a_thumbnail_from_a_private_bucket_through_thumbsvc_serve(
    s3: MotoS3, proxy: CountingProxy, aws_env: dict[str, str]
) -> None:
    key = object_key()
    s3.put(BUCKET, key, make_photo((400, 300)))
    env = {
        "THUMBSVC_KEY": TEST_KEY,
        "THUMBSVC_ALLOWED_SOURCES": f"s3://{BUCKET}/e2e/",
        "THUMBSVC_S3_ENDPOINT": proxy.endpoint,
        # Nothing cached: the conditional request below must go back to S3.
        "THUMBSVC_CACHE_BYTES": "0",
        "THUMBSVC_SOURCE_CACHE_BYTES": "0",
        "THUMBSVC_DECODED_CACHE_BYTES": "0",
        **aws_env,
    }
    path = SIGNER.path(f"s3://{BUCKET}/{key}", width=200, height=200, fit="cover")
    with serve_in_process(env) as (base, _):
        response = httpx.get(base + path, timeout=30)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "image/jpeg"
        assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert Image.open(io.BytesIO(response.content)).size == (200, 200)
        etag = response.headers["etag"]
        assert [r.method for r in s3.requests(key=key) if r.method != "PUT"] == ["HEAD", "GET"]

        sent = proxy.bytes_down
        again = httpx.get(base + path, headers={"If-None-Match": etag}, timeout=30)
        assert again.status_code == 304 and again.content == b""
        assert again.headers["etag"] == etag
        assert [r.method for r in s3.requests(key=key) if r.method != "PUT"] == ["HEAD", "GET", "HEAD"]
        assert proxy.bytes_down - sent < 2_000  # the HEAD's headers: no body

        s3.put(BUCKET, key, make_photo((400, 300), fmt="PNG"))  # the object changes: so does the ETag
        changed = httpx.get(base + path, headers={"If-None-Match": etag}, timeout=30)
        assert changed.status_code == 200 and changed.headers["etag"] != etag


def test_refused_credentials_are_502_and_never_remembered(
    s3: MotoS3, proxy: CountingProxy, aws_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    key = object_key()
    s3.put(BUCKET, key, make_photo((400, 300)))
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    path = SIGNER.path(f"s3://{BUCKET}/{key}", width=100)
    with serve_in_thread(create_app(settings(proxy.endpoint))) as base:
        for attempt in (1, 2):
            response = httpx.get(base + path, timeout=30)
            assert response.status_code == 502
            assert response.headers["cache-control"] == "no-store"
            assert response.text.strip() == "Origin error"
            assert s3.key_id not in response.text and BUCKET not in response.text and "127.0.0.1" not in response.text
            assert len(s3.requests("HEAD", key)) == attempt  # asked S3 again: nothing was cached


def test_a_bucket_off_the_allowlist_is_403_without_a_request(
    s3: MotoS3, proxy: CountingProxy, aws_env: dict[str, str]
) -> None:
    key = object_key()
    s3.put(BUCKET, key, make_photo((400, 300)))
    before = len(s3.requests())
    allowed = (f"s3://{OTHER_BUCKET}/", "*", BUCKET)
    with serve_in_thread(create_app(settings(proxy.endpoint, allowed_sources=allowed))) as base:
        response = httpx.get(base + SIGNER.path(f"s3://{BUCKET}/{key}", width=100), timeout=30)
    assert response.status_code == 403 and response.text.strip() == "Source not allowed"
    assert proxy.accepts == 0 and len(s3.requests()) == before


@pytest.mark.parametrize(
    ("case", "status"),
    [("missing", 404), ("too large", 413), ("dot segment", 400)],
)
def test_client_errors(s3: MotoS3, proxy: CountingProxy, aws_env: dict[str, str], case: str, status: int) -> None:
    key = object_key()
    s3.put(BUCKET, key, make_photo((1200, 900)))
    app = create_app(settings(proxy.endpoint, max_source_bytes=10_000))
    if case == "dot segment":
        # Signed by hand (the client refuses to), sent as it is (httpx would resolve the '..').
        payload = f"100x/s3%3A%2F%2F{BUCKET}/e2e/../{key}"
        path = f"/{PathSigner([TEST_KEY]).sign(payload)}/{payload}"
    else:
        path = SIGNER.path(f"s3://{BUCKET}/{key if case == 'too large' else object_key()}", width=100)
    with serve_in_thread(app) as base:
        connection = http.client.HTTPConnection(base.removeprefix("http://"), timeout=30)
        connection.request("GET", path)
        response = connection.getresponse()
        text = response.read().decode()
        connection.close()
    assert response.status == status, text
    assert response.headers["cache-control"] == "public, max-age=60"
    assert BUCKET not in text and "e2e" not in text
    assert "GET" not in [r.method for r in s3.requests(key=key)]


def test_a_stalling_endpoint_is_504_within_the_deadline(aws_env: dict[str, str]) -> None:
    server = StallingServer()
    try:
        app = create_app(settings(server.endpoint, fetch_timeout_s=1.0, connect_timeout_s=0.5))
        with serve_in_thread(app) as base:
            started = time.monotonic()
            response = httpx.get(base + SIGNER.path(f"s3://{BUCKET}/{object_key()}", width=100), timeout=30)
            elapsed = time.monotonic() - started
        assert response.status_code == 504 and response.headers["cache-control"] == "no-store"
        assert 0.9 < elapsed < 2.0
    finally:
        server.close()


def test_fifty_cold_requests_for_one_object_make_one_get(
    s3: MotoS3, proxy: CountingProxy, aws_env: dict[str, str]
) -> None:
    key = object_key()
    s3.put(BUCKET, key, make_photo((800, 600)))
    app = create_app(settings(proxy.endpoint, queue_size=64, queue_timeout_s=60.0))
    paths = [SIGNER.path(f"s3://{BUCKET}/{key}", width=width) for width in range(40, 90)]

    async def fetch_all(base: str) -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=len(paths))
        async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:
            return await asyncio.gather(*(client.get(path) for path in paths))

    with serve_in_thread(app) as base:
        responses = asyncio.run(fetch_all(base))
    assert [r.status_code for r in responses] == [200] * 50
    assert {Image.open(io.BytesIO(r.content)).width for r in responses} == set(range(40, 90))
    assert len(s3.requests("GET", key)) == 1
