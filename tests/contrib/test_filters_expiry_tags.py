"""Filters and expiring URLs from the Django tags and the Jinja2 helpers: the client's names, one URL per window."""

from __future__ import annotations

from typing import Any

import jinja2
import pytest
from django.template import Context, Template
from django.test import override_settings
from starlette.testclient import TestClient

from tests.contrib.conftest import BASE_URL, KEY, fetch_image
from thumbsvc.client import URLSigner
from thumbsvc.contrib.jinja2 import install
from thumbsvc.contrib.sizes import output_size
from thumbsvc.contrib.thumbnails import ThumbnailTags
from thumbsvc.options import make_options

SIGNER = URLSigner(KEY, BASE_URL)
WINDOW_START = 1_800_000_100  # a multiple of 900 plus 100: inside a window


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def render(text: str, **context: Any) -> str:
    return Template("{% load thumbsvc %}" + text).render(Context(context))


def test_the_filters_by_the_clients_names_in_django(thumbsvc_client: TestClient) -> None:
    out = render(
        '{% thumbnail_url src 300 200 fit="cover" trim="10,#FFFFFF" rotate=90 flip="h" grayscale=True blur="2.5" '
        "sharpen=1 %}",
        src="photos/landscape.jpg",
    )
    expected = SIGNER.url(
        "photos/landscape.jpg",
        width=300,
        height=200,
        fit="cover",
        trim=(10, "#ffffff"),
        rotate=90,
        flip="h",
        grayscale=True,
        blur=2.5,
        sharpen=1,
    )
    assert out == expected
    image = fetch_image(thumbsvc_client, out)
    assert (image.mode, image.size) == ("L", (300, 200))


def test_a_bad_filter_value_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="rotate"):
        render('{% thumbnail_url "a.jpg" 100 rotate=45 %}')
    with pytest.raises(ValueError, match="grayscale"):
        render('{% thumbnail_url "a.jpg" 100 grayscale="perhaps" %}')


def test_expires_in_is_rounded_up_to_the_window_so_pages_repeat_their_urls() -> None:
    clock = Clock(WINDOW_START)
    tags = ThumbnailTags(SIGNER, clock=clock)
    first = tags.url("photos/landscape.jpg", 300, expires_in=3600)
    assert first.endswith(f"/exp:{1_800_000_000 + 900 + 3600}/photos/landscape.jpg")
    clock.now += 700  # the same window: the same URL, so a CDN keeps hitting
    assert tags.url("photos/landscape.jpg", 300, expires_in=3600) == first
    clock.now += 200  # the next window
    assert tags.url("photos/landscape.jpg", 300, expires_in=3600) != first
    exp = int(first.split("/exp:")[1].split("/")[0])
    assert exp - WINDOW_START >= 3600  # never shorter than asked


def test_every_tag_takes_expires_in_and_the_django_setting_rounds_it() -> None:
    with override_settings(THUMBSVC_EXPIRES_ROUND=60):
        img = render('{% thumbnail_img "photos/landscape.jpg" 300 200 fit="cover" expires_in=120 %}')
        srcset = render('{% thumbnail_srcset "photos/landscape.jpg" 300 expires_in=120 %}')
        picture = render('{% thumbnail_picture "photos/landscape.jpg" 300 200 fit="cover" expires_in=120 %}')
    for markup in (img, srcset, picture):
        expiries = {int(part.split("/")[0]) for part in markup.split("/exp:")[1:]}
        assert len(expiries) == 1
        assert next(iter(expiries)) % 60 == 0


def test_jinja2_takes_the_same_names() -> None:
    clock = Clock(WINDOW_START)
    env = install(jinja2.Environment(autoescape=True), ThumbnailTags(SIGNER, expires_round=300, clock=clock))
    out = env.from_string("{{ thumbnail_url('photos/landscape.jpg', 100, watermark='logo', expires_in=60) }}").render()
    assert out == SIGNER.url("photos/landscape.jpg", width=100, watermark="logo", expires=1_800_000_300)


def test_output_sizes_follow_rotation_and_give_up_on_trim() -> None:
    assert output_size(make_options(width=300, rotate=90), (1600, 1200)) == (300, 400)
    assert output_size(make_options(width=300, rotate=180), (1600, 1200)) == (300, 225)
    assert output_size(make_options(width=300, trim=10), (1600, 1200)) is None
    assert output_size(make_options(width=300, height=200, fit="cover", trim=10), (1600, 1200)) == (300, 200)
