"""examples/django_site with its photos in a private bucket (django-storages' S3 backend), served by thumbsvc from moto.

The page is rendered in the example's own process with ``GALLERY_S3_BUCKET`` set, under an audit
hook that fails on any network call: the tags build ``s3://bucket/media/<name>`` sources from
``THUMBSVC_SOURCE_PREFIX`` and the field names, never asking the storage. Every image URL in it is
then fetched from the real service, which reads the objects from moto (SigV4 enforced).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from starlette.testclient import TestClient

from tests.contrib.conftest import fetch_image, parse_elements, parse_srcset
from tests.contrib.test_example_site import KEY, ROOT, SITE
from tests.s3server import BUCKET, CHAIN_VARIABLES, MotoS3, aws_environment, moto_s3
from thumbsvc.app import create_app
from thumbsvc.config import SAMPLES_DIR, Settings

RENDER = """
import sys
import django
from django.core.management import call_command
from django.core.files.storage import default_storage
from django.conf import settings
from django.test import Client
django.setup()
call_command("check", fail_level="WARNING")
network = []
sys.addaudithook(lambda event, args: network.append(event) if event.startswith(("socket.", "http.client")) else None)
response = Client().get("/")
assert response.status_code == 200, response.status_code
assert not [e for e in network if e in ("socket.connect", "socket.getaddrinfo", "http.client.connect")], network
from django.utils.functional import empty
assert default_storage._wrapped is empty  # the page never even made the storage
default_storage._setup()
print("STORAGE=" + type(default_storage._wrapped).__module__)
print("PREFIX=" + settings.THUMBSVC_SOURCE_PREFIX)
print("PAGE=" + response.content.decode())
"""


@pytest.fixture(scope="module")
def s3() -> MotoS3:
    server = moto_s3()
    for name in ("cat.jpg", "craft-beer.jpg", "japanese-shop.jpg"):
        server.put(BUCKET, f"media/{name}", (SAMPLES_DIR / name).read_bytes())
    return server


def test_the_gallery_from_a_private_bucket(s3: MotoS3, monkeypatch: pytest.MonkeyPatch) -> None:
    aws = aws_environment(s3.key_id, s3.secret)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GALLERY_", "DJANGO_", "AWS_"))}
    env.update(aws)
    env.update(
        DJANGO_SETTINGS_MODULE="gallery_site.settings",
        GALLERY_THUMBSVC_URL="http://testserver",
        GALLERY_S3_BUCKET=BUCKET,
        GALLERY_S3_ENDPOINT=s3.endpoint,
    )
    env["PYTHONPATH"] = os.pathsep.join([str(SITE), str(ROOT), env.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, "-c", RENDER], cwd=SITE, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "\nSTORAGE=storages.backends.s3\n" in out and f"\nPREFIX=s3://{BUCKET}/media/\n" in out
    page = out.split("\nPAGE=", 1)[1]
    assert f"s3%3A%2F%2F{BUCKET}/media/cat.jpg" in page

    for name in CHAIN_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in aws.items():
        monkeypatch.setenv(name, value)
    settings = Settings(
        keys=(KEY,), allowed_sources=(f"s3://{BUCKET}/media/",), s3_endpoint=s3.endpoint, render_slots=2
    )
    elements = parse_elements(page)
    imgs = [attrs for tag, attrs in elements if tag == "img"]
    assert len(imgs) == 16
    before = len(s3.requests("GET"))
    with TestClient(create_app(settings), base_url="http://testserver") as client:
        for img in imgs:
            served = fetch_image(client, img["src"] or "")
            if "width" in img:
                assert served.size == (int(img["width"] or 0), int(img["height"] or 0)), img
            for url, _ in parse_srcset(img.get("srcset") or ""):
                fetch_image(client, url)
    # Three objects, fetched once each while the source cache holds them.
    assert {r.path for r in s3.requests("GET")[before:]} == {
        f"/{BUCKET}/media/{n}" for n in ("cat.jpg", "craft-beer.jpg", "japanese-shop.jpg")
    }
