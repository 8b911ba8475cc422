"""django-thumbor's ``thumbor_url`` tag, unchanged (its real package), against thumbsvc's thumbor URLs.

A site that used django-thumbor points ``THUMBOR_SERVER`` at thumbsvc and gives the service its
``THUMBOR_SECURITY_KEY`` as ``THUMBSVC_THUMBOR_KEY`` (docs/migrating.md).
"""

from __future__ import annotations

import importlib
import io
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from django.template import Context, Engine
from django.test import override_settings
from PIL import Image
from starlette.testclient import TestClient

from tests.contrib.conftest import BASE_URL
from thumbsvc.app import create_app
from thumbsvc.config import Settings

THUMBOR_KEY = "django-thumbor-key"


@pytest.fixture(scope="module")
def django_thumbor() -> Iterator[ModuleType]:
    pytest.importorskip("django_thumbor")
    # django-thumbor reads its settings when it is imported.
    with override_settings(
        THUMBOR_SERVER=BASE_URL, THUMBOR_SECURITY_KEY=THUMBOR_KEY, THUMBOR_MEDIA_URL="", MEDIA_URL="/media/"
    ):
        for name in [name for name in sys.modules if name.startswith("django_thumbor")]:
            del sys.modules[name]
        yield importlib.import_module("django_thumbor")


@pytest.fixture(scope="module")
def service(media_root: Path) -> Iterator[TestClient]:
    settings = Settings(keys=("native-key",), media_root=str(media_root), thumbor_key=(THUMBOR_KEY,))
    with TestClient(create_app(settings), base_url=BASE_URL) as client:
        yield client


def render(text: str) -> str:
    engine = Engine(libraries={"thumbor_tags": "django_thumbor.templatetags.thumbor_tags"})
    return engine.from_string("{% load thumbor_tags %}" + text).render(Context({"box": ((10, 10), (110, 85))}))


@pytest.mark.parametrize(
    ("tag", "size"),
    [
        ('{% thumbor_url "photos/landscape.jpg" width=300 height=200 %}', (300, 200)),
        ('{% thumbor_url "/media/photos/landscape.jpg" width=300 height=200 smart=True %}', (300, 200)),
        ('{% thumbor_url "photos/portrait.png" width=200 height=200 fit_in=True %}', (150, 200)),
        ('{% thumbor_url "photos/landscape.jpg" width=100 filters="format(webp):quality(70)" %}', (100, 75)),
        ('{% thumbor_url "photos/small.jpg" crop=box %}', (100, 75)),
    ],
)
def test_the_thumbor_url_tag_works_unchanged(
    django_thumbor: ModuleType, service: TestClient, tag: str, size: tuple[int, int]
) -> None:
    url = render(tag)
    assert url.startswith(BASE_URL + "/")
    answer = service.get(url)
    assert answer.status_code == 200, answer.text
    assert Image.open(io.BytesIO(answer.content)).size == size
