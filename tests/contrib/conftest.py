"""Django configured once for the contrib tests, a model with image fields, and the real thumbsvc app.

The model's storage counts every call made to it, so tests can prove that rendering
thumbnails never touches storage.
"""

from __future__ import annotations

import io
import shutil
import tempfile
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import django
import pytest
from django.conf import settings
from PIL import Image, ImageDraw
from starlette.testclient import TestClient

from thumbsvc.app import create_app
from thumbsvc.config import Settings

KEY = "contrib-test-key"
BASE_URL = "http://testserver"
MEDIA_ROOT = Path(tempfile.mkdtemp(prefix="thumbsvc-contrib-"))
ODD_NAME = 'photos/it\'s "<odd>" & more.jpg'

# name -> pixel size of the generated images in the media root
IMAGES = {
    "photos/landscape.jpg": (1600, 1200),
    "photos/portrait.png": (900, 1200),
    "photos/small.jpg": (200, 150),
    ODD_NAME: (640, 480),
}

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="contrib-tests",
        INSTALLED_APPS=["thumbsvc.contrib.django"],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        TEMPLATES=[
            {"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True},
            {
                "BACKEND": "django.template.backends.jinja2.Jinja2",
                "APP_DIRS": False,
                "OPTIONS": {"environment": "thumbsvc.contrib.django.jinja2.environment", "autoescape": True},
            },
        ],
        MEDIA_ROOT=str(MEDIA_ROOT),
        USE_TZ=True,
        THUMBSVC_KEY=KEY,
        THUMBSVC_BASE_URL=BASE_URL,
        THUMBSVC_RAISE_ERRORS=True,
    )
    django.setup()

from django.core.files.storage import FileSystemStorage  # noqa: E402 - needs configured settings
from django.db import connection, models  # noqa: E402


class CountingStorage(FileSystemStorage):
    """A file system storage that records the name of every method called on it."""

    calls: list[str] = []  # noqa: RUF012 - shared on purpose: one log for every instance

    def _record(self, name: str) -> None:
        self.calls.append(name)

    def open(self, name: str, mode: str = "rb") -> Any:
        self._record("open")
        return super().open(name, mode)

    def save(self, name: Any, content: Any, max_length: int | None = None) -> Any:
        self._record("save")
        return super().save(name, content, max_length)

    def path(self, name: str) -> str:
        self._record("path")
        return super().path(name)

    def exists(self, name: str) -> bool:
        self._record("exists")
        return super().exists(name)

    def url(self, name: str | None) -> str:
        self._record("url")
        return super().url(name)

    def size(self, name: str) -> int:
        self._record("size")
        return super().size(name)

    def delete(self, name: str) -> None:
        self._record("delete")
        super().delete(name)

    def listdir(self, path: str) -> Any:
        self._record("listdir")
        return super().listdir(path)

    def get_modified_time(self, name: str) -> Any:
        self._record("get_modified_time")
        return super().get_modified_time(name)


STORAGE = CountingStorage()


class Photo(models.Model):
    title = models.CharField(max_length=200)
    image = models.ImageField(storage=STORAGE, width_field="image_width", height_field="image_height")
    image_width = models.PositiveIntegerField(null=True)
    image_height = models.PositiveIntegerField(null=True)
    plain = models.ImageField(storage=STORAGE, blank=True)  # stores no dimensions
    focal_x = models.FloatField(null=True)
    focal_y = models.FloatField(null=True)
    thumbhash = models.CharField(max_length=64, blank=True, default="")  # base64, as placeholders.compute gives it
    average = models.CharField(max_length=9, blank=True, default="")

    class Meta:
        app_label = "thumbsvc"

    @property
    def focal_point(self) -> tuple[float, float] | None:
        return None if self.focal_x is None or self.focal_y is None else (self.focal_x, self.focal_y)


def make_image(size: tuple[int, int], fmt: str) -> bytes:
    """Return an encoded picture with gradients and shapes (so encoders have real work)."""
    width, height = size
    image = Image.linear_gradient("L").resize(size).convert("RGB")
    draw = ImageDraw.Draw(image)
    draw.ellipse((width // 4, height // 4, 3 * width // 4, 3 * height // 4), fill=(200, 40, 40))
    draw.rectangle((0, 0, width // 8, height // 8), fill=(20, 90, 200))
    out = io.BytesIO()
    image.save(out, format=fmt, quality=85)
    return out.getvalue()


@pytest.fixture(scope="session", autouse=True)
def media_root() -> Iterator[Path]:
    for name, size in IMAGES.items():
        path = MEDIA_ROOT / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(make_image(size, "PNG" if name.endswith(".png") else "JPEG"))
    yield MEDIA_ROOT
    shutil.rmtree(MEDIA_ROOT, ignore_errors=True)


@pytest.fixture(scope="session")
def photo_table() -> Iterator[type[Photo]]:
    with connection.schema_editor() as editor:
        editor.create_model(Photo)
    yield Photo
    with connection.schema_editor() as editor:
        editor.delete_model(Photo)


@pytest.fixture
def photos(photo_table: type[Photo]) -> Iterator[list[Photo]]:
    """Saved photos, read back from the database as a view would."""
    for name, (width, height) in IMAGES.items():
        Photo.objects.create(
            title=f'{name} "quoted" <b>',
            image=name,
            image_width=width,
            image_height=height,
            plain=name,
            focal_x=0.25,
            focal_y=0.75,
        )
    yield list(Photo.objects.order_by("pk"))
    Photo.objects.all().delete()


@pytest.fixture(scope="session")
def thumbsvc_client(media_root: Path) -> Iterator[TestClient]:
    """The real service, verifying with the key the templates sign with."""
    app = create_app(Settings(keys=(KEY,), media_root=str(media_root), render_slots=2))
    with TestClient(app, base_url=BASE_URL) as client:
        yield client


def fetch_image(client: TestClient, url: str, accept: str = "*/*") -> Image.Image:
    """GET a thumbnail URL from the service, assert 200, return the decoded image."""
    assert url.startswith(BASE_URL + "/"), url
    response = client.get(url, headers={"accept": accept})
    assert response.status_code == 200, (url, response.status_code, response.text)
    image = Image.open(io.BytesIO(response.content))
    image.load()
    return image


class Elements(HTMLParser):
    """Collect start tags as (tag, attributes) with entity-decoded values; fail on stray text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        if data.strip():
            self.text.append(data.strip())


def parse_elements(markup: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = Elements()
    parser.feed(markup)
    parser.close()
    return parser.found


def parse_srcset(value: str) -> list[tuple[str, str]]:
    """Return (url, descriptor) pairs; thumbnail URLs hold no commas or spaces."""
    entries = []
    for entry in value.split(", "):
        url, descriptor = entry.split(" ")
        entries.append((url, descriptor))
    return entries
