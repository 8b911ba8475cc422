"""The playground runs in development mode only: apps built with no key, served to a loopback host name."""

from __future__ import annotations

import html
import io
import re
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from starlette.testclient import TestClient

from tests.helpers import make_photo
from thumbsvc.app import create_app
from thumbsvc.config import Settings
from thumbsvc.decode import allowed_formats
from thumbsvc.filters import parse_watermarks

# What a media root's unreadable files show on their tiles (the service's public messages, and one of ours).
HEIC_REASON = "HEIC needs thumbsvc[heif]"
UNDECODABLE = "Source image could not be decoded"
UNSUPPORTED = "Unsupported image format"
# The first bytes of an iPhone HEIC (an ISO-BMFF ``ftyp`` box, brand heic): what identifies the format.
HEIC_HEADER = struct.pack(">I", 24) + b"ftypheic" + bytes(4) + b"mif1heic"

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


def make_unreadable_root(root: Path) -> Path:
    """Fill ``root`` with files the service cannot render, listed before and after one good photo:
    a HEIC (no plugin), text with a .jpg suffix, an empty PNG, and a JPEG cut off after its header."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "0-phone.heic").write_bytes(HEIC_HEADER + bytes(range(256)) * 8)
    (root / "1-notes.jpg").write_text("not an image, whatever its name says\n")
    (root / "2-empty.png").write_bytes(b"")
    (root / "3-good.jpg").write_bytes(make_photo((600, 450)))
    whole = make_photo((1200, 900))
    (root / "4-cut.jpg").write_bytes(whole[: len(whole) // 3])  # the header says 1200x900; the pixels stop early
    return root


# Two watermarks under the filters' media root: an opaque red square at the bottom-right corner, flush
# (so its pixels are at a known place), and a half-transparent one at the top left.
WATERMARKS = (
    "logo=marks/logo.png;gravity=south-east;margin=0;opacity=1;scale=0.25,"
    "stamp=marks/stamp.png;gravity=north-west;margin=0.02;opacity=0.5;scale=0.2"
)
RED = (255, 0, 0)
# The bordered PNG: its content, a 200x100 box at (50, 80), on a white border 400x300 in all.
BORDERED_BOX = (50, 80, 250, 180)


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def make_filters_root(root: Path) -> Path:
    """A media root for the filters: a landscape photo of four coloured quadrants, a PNG with a white
    border around its content, and the two watermarks' images."""
    (root / "marks").mkdir(parents=True)
    (root / "photo.jpg").write_bytes(make_photo((800, 600)))
    bordered = Image.new("RGB", (400, 300), (255, 255, 255))
    bordered.paste((20, 60, 200), BORDERED_BOX)
    (root / "bordered.png").write_bytes(png(bordered))
    (root / "marks" / "logo.png").write_bytes(png(Image.new("RGBA", (64, 64), (*RED, 255))))
    (root / "marks" / "stamp.png").write_bytes(png(Image.new("RGBA", (64, 32), (0, 0, 0, 255))))
    return root


def filters_settings(root: Path) -> Settings:
    """Development mode over ``make_filters_root``'s files, with its two watermarks defined."""
    return Settings(media_root=str(root), watermarks=tuple(parse_watermarks(WATERMARKS).values()), render_slots=2)


def heif_registered() -> bool:
    """Whether this environment has pillow-heif (the heif extra): then a HEIC is read, or refused as undecodable."""
    return "HEIF" in allowed_formats()


@pytest.fixture
def unreadable_root(tmp_path: Path) -> Path:
    return make_unreadable_root(tmp_path / "media")


def image_sources(page: str) -> list[str]:
    """Return the ``src`` of every ``<img>`` on a page, unescaped."""
    return [src.replace("&amp;", "&") for src in re.findall(r'<img[^>]*\ssrc="([^"]+)"', page)]


def element_text(page: str, element_id: str) -> str:
    """Return the text inside the element with this id (no nesting), unescaped."""
    match = re.search(rf'id="{element_id}"[^>]*>(.*?)</', page, re.S)
    assert match, element_id
    return html.unescape(match.group(1))
