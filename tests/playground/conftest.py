"""The playground runs in development mode only: apps built with no key, served to a loopback host name."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from tests.helpers import make_photo
from thumbsvc.app import create_app
from thumbsvc.config import Settings

# The playground answers only to loopback host names (the development key signs whatever it is asked).
LOCAL = "http://127.0.0.1"


@pytest.fixture(scope="module")
def dev_settings() -> Settings:
    """The embedded default: no key, the bundled samples as the media root."""
    return Settings(render_slots=2)


@pytest.fixture(scope="module")
def dev(dev_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(dev_settings), base_url=LOCAL) as client:
        yield client


@pytest.fixture
def nested_root(tmp_path: Path) -> Path:
    """A media root with images in subfolders, a hidden file and a file that is not an image."""
    root = tmp_path / "media"
    (root / "shoots" / "2024").mkdir(parents=True)
    (root / ".cache").mkdir()
    (root / "shoots" / "2024" / "beach day.png").write_bytes(make_photo((400, 300), fmt="PNG"))
    (root / "top.jpg").write_bytes(make_photo((300, 400)))
    (root / ".hidden.jpg").write_bytes(make_photo((10, 10)))
    (root / ".cache" / "x.jpg").write_bytes(make_photo((10, 10)))
    (root / "notes.txt").write_text("not an image")
    return root


def image_sources(page: str) -> list[str]:
    """Return the ``src`` of every ``<img>`` on a page, unescaped."""
    return [src.replace("&amp;", "&") for src in re.findall(r'<img[^>]*\ssrc="([^"]+)"', page)]


def element_text(page: str, element_id: str) -> str:
    """Return the text inside the element with this id (no nesting), unescaped."""
    match = re.search(rf'id="{element_id}"[^>]*>(.*?)</', page, re.S)
    assert match, element_id
    return (
        match.group(1).replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"').replace("&#x27;", "'")
    ).replace("&amp;", "&")
