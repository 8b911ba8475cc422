"""The Jinja2 globals: standalone, and through Django's Jinja2 backend."""

from __future__ import annotations

import jinja2
import pytest
from django.template import engines
from django.test import override_settings
from starlette.testclient import TestClient

from tests.contrib.conftest import BASE_URL, KEY, ODD_NAME, Photo, fetch_image, parse_elements, parse_srcset
from thumbsvc.client import URLSigner
from thumbsvc.contrib.jinja2 import install
from thumbsvc.contrib.thumbnails import ThumbnailTags


@pytest.fixture
def env() -> jinja2.Environment:
    presets = {"square": {"width": 150, "height": 150, "fit": "cover"}}
    tags = ThumbnailTags(URLSigner(KEY, BASE_URL), presets=presets)
    return install(jinja2.Environment(autoescape=True), tags)


def test_url_and_srcset(env: jinja2.Environment, thumbsvc_client: TestClient) -> None:
    out = env.from_string(
        "<img src=\"{{ thumbnail_url(src, 300, 200, fit='cover') }}\" "
        "srcset=\"{{ thumbnail_srcset(src, 300, 200, fit='cover', densities='1,2') }}\">"
    ).render(src="photos/landscape.jpg")
    (_, img), *_ = parse_elements(out)
    assert fetch_image(thumbsvc_client, img["src"] or "").size == (300, 200)
    sizes = [fetch_image(thumbsvc_client, url).size for url, _ in parse_srcset(img["srcset"] or "")]
    assert sizes == [(300, 200), (600, 400)]


def test_img_and_picture_are_markup(env: jinja2.Environment, thumbsvc_client: TestClient) -> None:
    out = env.from_string("{{ thumbnail_img(src, preset='square', alt=alt, class_='thumb') }}").render(
        src=ODD_NAME, alt='"quoted" <b>'
    )
    (tag, img), *rest = parse_elements(out)
    assert (tag, rest) == ("img", [])
    assert (img["alt"], img["class"], img["width"], img["height"]) == ('"quoted" <b>', "thumb", "150", "150")
    assert fetch_image(thumbsvc_client, img["src"] or "").size == (150, 150)
    picture = env.from_string("{{ thumbnail_picture(src, 120, 90, formats=['webp']) }}").render(src=ODD_NAME)
    assert [tag for tag, _ in parse_elements(picture)] == ["picture", "source", "img"]


def test_url_is_escaped_by_the_environment(env: jinja2.Environment) -> None:
    out = env.from_string('<a href="{{ thumbnail_url(src, 64) }}">').render(src=ODD_NAME)
    assert "&#39;" in out or "&#x27;" in out
    (_, attrs), *_ = parse_elements(out)
    assert attrs["href"] == URLSigner(KEY, BASE_URL).url(ODD_NAME, width=64)


def test_empty_values(env: jinja2.Environment) -> None:
    for helper in ("thumbnail_url", "thumbnail_srcset", "thumbnail_img", "thumbnail_picture"):
        assert env.from_string("[{{ " + helper + "(src, 100) }}]").render(src="") == "[]"
        assert env.from_string("[{{ " + helper + "(src, 100) }}]").render(src=None) == "[]"
        assert env.from_string("[{{ " + helper + "(missing, 100) }}]").render() == "[]"


def test_django_jinja2_backend_follows_settings(thumbsvc_client: TestClient, photos: list[Photo]) -> None:
    template = engines["jinja2"].from_string("{{ thumbnail_img(p.image, 200, 200, alt=p.title) }}")
    img = parse_elements(template.render({"p": photos[0]}))[0][1]
    assert (img["width"], img["height"]) == ("200", "150")
    assert fetch_image(thumbsvc_client, img["src"] or "").size == (200, 150)
    with override_settings(THUMBSVC_DEFAULTS={"format": "png"}):
        img = parse_elements(template.render({"p": photos[0]}))[0][1]
    assert "/f:png/" in (img["src"] or "")
    assert fetch_image(thumbsvc_client, img["src"] or "").format == "PNG"
