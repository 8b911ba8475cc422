"""examples/django_site renders a gallery whose every image loads from thumbsvc at the size its attributes claim.

The example runs in its own process (it has its own Django settings); the page it serves is
fetched with Django's test client there, and every URL in it from the real service here.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from tests.contrib.conftest import fetch_image, parse_elements, parse_srcset
from thumbsvc.app import create_app
from thumbsvc.config import SAMPLES_DIR, Settings
from thumbsvc.placeholders import compute

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "examples" / "django_site"
KEY = "example-gallery-key"  # the example's default, as in docs/django.md

RENDER = """
import django
from django.core.management import call_command
from django.test import Client
django.setup()
call_command("check", fail_level="WARNING")
response = Client().get("/")
assert response.status_code == 200, response.status_code
print(response.content.decode())
"""


@pytest.fixture(scope="module")
def page() -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GALLERY_", "DJANGO_"))}
    env.update(DJANGO_SETTINGS_MODULE="gallery_site.settings", GALLERY_THUMBSVC_URL="http://testserver")
    env["PYTHONPATH"] = os.pathsep.join([str(SITE), str(ROOT), env.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, "-c", RENDER], cwd=SITE, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_every_image_of_the_gallery_loads_at_its_size(page: str) -> None:
    app = create_app(Settings(keys=(KEY,), media_root=str(SAMPLES_DIR), render_slots=2))
    elements = parse_elements(page)
    imgs = [attrs for tag, attrs in elements if tag == "img"]
    sources = [attrs for tag, attrs in elements if tag == "source"]
    assert len(imgs) == 16 and len(sources) == 8
    with TestClient(app, base_url="http://testserver") as client:
        for img in imgs:
            served = fetch_image(client, img["src"] or "")
            if "width" in img:
                assert served.size == (int(img["width"] or 0), int(img["height"] or 0)), img
            for url, descriptor in parse_srcset(img.get("srcset") or ""):
                if descriptor.endswith("w"):
                    assert fetch_image(client, url).width == int(descriptor[:-1])
                else:
                    fetch_image(client, url)
        for source in sources:
            for url, _ in parse_srcset(source["srcset"] or ""):
                image = fetch_image(client, url, accept="image/avif,image/webp,*/*")
                assert f"image/{(image.format or '').lower()}" == source["type"]
        for tag, attrs in elements:
            if tag == "a":
                assert fetch_image(client, attrs["href"] or "").width == 1000  # 1600 wide, never upscaled
    # Exact attributes wherever the size is known: every cover thumbnail, and contain from the image fields.
    assert sum("width" in img for img in imgs) == 15


def test_the_gallerys_stored_thumbhashes_are_those_of_its_images(page: str) -> None:
    """gallery/photos.py stores hashes as a project would: they must be what compute() gives for the files."""
    painted = [attrs for tag, attrs in parse_elements(page) if tag == "img" and "data-thumbhash" in attrs]
    assert len(painted) == 12  # three photos with files, in four sections; the missing file gets none
    for img in painted:
        name = (img["src"] or "").rsplit("/", 1)[1]
        assert img["data-thumbhash"] == compute(SAMPLES_DIR / name).thumbhash, name
        assert (img["style"] or "").startswith("background-")
    assert '<script src="/static/thumbsvc/thumbhash.js" defer>' in page
