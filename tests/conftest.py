"""Shared fixtures: settings and apps, signed URLs, generated and corpus images."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.helpers import TEST_IMAGES, TEST_KEY, corpus_path, make_photo
from thumbsvc.app import create_app
from thumbsvc.client import URLSigner
from thumbsvc.config import Settings


@pytest.fixture(scope="session")
def corpus() -> Path:
    path = corpus_path()
    if path is None:
        pytest.skip("the shared image corpus is not available (set THUMBSVC_CORPUS)")
    return path


@pytest.fixture
def media_root(tmp_path: Path) -> Path:
    """A media root with generated photos and the committed test images."""
    root = tmp_path / "media"
    (root / "photos").mkdir(parents=True)
    (root / "photos" / "landscape.jpg").write_bytes(make_photo((1200, 900)))
    (root / "photos" / "portrait.png").write_bytes(make_photo((600, 800), fmt="PNG"))
    (root / "photos" / "small.webp").write_bytes(make_photo((160, 120), fmt="WEBP"))
    for image in TEST_IMAGES.glob("*.*"):
        if image.suffix != ".md":
            (root / image.name).write_bytes(image.read_bytes())
    return root


@pytest.fixture
def put(media_root: Path) -> Callable[[str, bytes], str]:
    """Write bytes under the media root; return the source name to sign."""

    def write(name: str, data: bytes) -> str:
        (media_root / name).write_bytes(data)
        return name

    return write


@pytest.fixture
def settings_factory(media_root: Path) -> Callable[..., Settings]:
    def factory(**overrides: Any) -> Settings:
        values: dict[str, Any] = {"keys": (TEST_KEY,), "media_root": str(media_root), "render_slots": 2}
        values.update(overrides)
        return Settings(**values)

    return factory


@pytest.fixture
def client_factory(settings_factory: Callable[..., Settings]) -> Iterator[Callable[..., TestClient]]:
    clients: list[TestClient] = []

    def factory(**overrides: Any) -> TestClient:
        client = TestClient(create_app(settings_factory(**overrides)))
        client.__enter__()
        clients.append(client)
        return client

    yield factory
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(client_factory: Callable[..., TestClient]) -> TestClient:
    return client_factory()


@pytest.fixture
def signer() -> URLSigner:
    return URLSigner(key=TEST_KEY)
