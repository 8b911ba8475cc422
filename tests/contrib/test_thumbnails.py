"""The framework-neutral core: source resolution, output sizes, argument parsing."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

import jinja2
import pytest

from tests.contrib.conftest import BASE_URL, KEY, Photo
from thumbsvc.client import URLSigner
from thumbsvc.contrib.sizes import output_size
from thumbsvc.contrib.thumbnails import Source, ThumbnailTags, resolve_source
from thumbsvc.options import make_options

SIGNER = URLSigner(KEY, BASE_URL)


@pytest.mark.parametrize(
    ("options", "source", "expected"),
    [
        ({"width": 300, "height": 200}, (1600, 1200), (267, 200)),
        ({"width": 300, "height": 200, "dpr": 2}, (1600, 1200), (533, 400)),
        ({"width": 300, "height": 200}, (100, 50), (100, 50)),
        ({"width": 300, "height": 200, "upscale": True}, (100, 50), (300, 150)),
        ({"width": 300, "height": 200}, None, None),
        ({}, (640, 480), (640, 480)),
        ({"width": 300, "height": 200, "fit": "cover"}, None, (300, 200)),
        ({"width": 300, "height": 200, "fit": "cover"}, (200, 150), (200, 133)),
        ({"width": 300, "height": 200, "fit": "fill"}, (200, 150), (200, 133)),
        ({"width": 300, "height": 200, "fit": "cover", "upscale": True}, (200, 150), (300, 200)),
        ({"width": 300, "height": 200, "fit": "pad"}, (200, 150), (300, 200)),
        ({"width": 300, "height": 200, "fit": "pad", "dpr": 1.5}, None, (450, 300)),
        ({"width": 300, "fit": "pad"}, None, None),
        ({"width": 300, "fit": "cover"}, (1600, 1200), (300, 225)),
        ({"height": 300, "fit": "fill"}, (1600, 1200), (400, 300)),
        ({"width": 400, "height": 400, "crop": (0, 0, 800, 600)}, (1600, 1200), (400, 300)),
        ({"width": 400, "height": 400, "crop": (1000, 0, 800, 600)}, (1600, 1200), None),
        ({"width": 400}, (0, 10), None),
    ],
)
def test_output_size(options: dict[str, Any], source: tuple[int, int] | None, expected: Any) -> None:
    assert output_size(make_options(**options), source) == expected


def test_resolve_source_kinds(photos: list[Photo]) -> None:
    assert resolve_source("photos/a.jpg") == Source("photos/a.jpg")
    assert resolve_source("https://example.com/a.jpg") == Source("https://example.com/a.jpg")
    assert resolve_source(PurePosixPath("photos/a.jpg")) == Source("photos/a.jpg")
    assert resolve_source(photos[0].image, prefix="media/") == Source("media/photos/landscape.jpg", (1600, 1200))
    assert resolve_source(photos[0].plain) == Source("photos/landscape.jpg")
    for empty in ("", "  ", None, jinja2.Undefined(), Photo().image):
        assert resolve_source(empty) is None
    for bad in (42, 1.5, object()):
        with pytest.raises(TypeError, match="thumbnail source"):
            resolve_source(bad)


def test_a_size_django_has_read_is_used(photos: list[Photo]) -> None:
    plain = photos[1].plain
    assert resolve_source(plain) == Source("photos/portrait.png")
    assert (plain.width, plain.height) == (900, 1200)  # reads the file once, as Django does
    assert resolve_source(plain) == Source("photos/portrait.png", (900, 1200))


def test_source_prefix_applies_to_file_fields_only(photos: list[Photo]) -> None:
    prefix = "https://bucket.example.com/media/"
    tags = ThumbnailTags(SIGNER, source_prefix=prefix)
    assert tags.url(photos[0].image, 100) == SIGNER.url(prefix + "photos/landscape.jpg", width=100)
    assert tags.url("photos/landscape.jpg", 100) == SIGNER.url("photos/landscape.jpg", width=100)


def test_arguments_as_templates_write_them() -> None:
    tags = ThumbnailTags(SIGNER)
    same = SIGNER.url("a.jpg", width=300, height=200, fit="cover", crop=(0, 0, 10, 10), quality=80, dpr=1.5)
    assert tags.url("a.jpg", "300", "200", fit="cover", crop="0,0,10,10", quality="80", dpr="1.5") == same
    assert tags.url("a.jpg", 300.0, 200, fit="cover", crop=[0, 0, 10, 10], quality=80, dpr=1.5) == same
    assert tags.url("a.jpg", "300x200", fit="cover", crop=(0, 0, 10, 10), quality=80, dpr=1.5) == same
    assert tags.url("a.jpg", 100, gravity="0.5,0.25") == SIGNER.url("a.jpg", width=100, gravity=(0.5, 0.25))
    assert tags.srcset("a.jpg", 100, widths="100w, 200w") == tags.srcset("a.jpg", 100, widths=[100, 200])
    assert tags.srcset("a.jpg", 100, densities="1x,2x") == tags.srcset("a.jpg", 100, densities=(1, 2))
    assert tags.srcset("a.jpg", 100, densities=2).endswith(" 2x")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"width": "300by200"}, "whole number"),
        ({"width": "300x200x1"}, "a size is"),
        ({"width": 300.5}, "whole number"),
        ({"width": 0}, "width must be an integer from 1"),
        ({"width": 100, "widths": "100,abc"}, "widths must be numbers"),
        ({"width": 100, "widths": [100.5]}, "whole numbers"),
        ({"width": 100, "widths": ""}, "must not be empty"),
        ({"height": 100, "widths": "100,200"}, "needs a width"),
        ({"width": 100, "focal": (0.5,)}, "focal point"),
        ({"width": 100, "focal": (2, 0.5)}, "focal point"),
        ({"width": 100, "source_width": "wide", "source_height": 10}, "source_width"),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ThumbnailTags(SIGNER).srcset("a.jpg", **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"presets": ["card"]}, TypeError),
        ({"presets": {"card": ["width"]}}, TypeError),
        ({"presets": {"card": {"colour": "red"}}}, ValueError),
        ({"presets": {"card": {"widths": "a,b"}}}, ValueError),
        ({"presets": {"card": {"densities": []}}}, ValueError),
        ({"defaults": {"fit": "squash"}}, ValueError),
        ({"densities": ()}, ValueError),
    ],
)
def test_bad_configuration(kwargs: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        ThumbnailTags(SIGNER, **kwargs)


def test_a_preset_holding_srcset_settings() -> None:
    tags = ThumbnailTags(SIGNER, presets={"hero": {"width": 800, "densities": "1,1.5", "sizes": "100vw"}})
    assert tags.srcset("a.jpg", preset="hero").endswith(" 1.5x")
    img = ThumbnailTags(SIGNER, presets={"hero": {"width": 800, "widths": [800, 1600], "sizes": "100vw"}})
    assert 'sizes="100vw"' in img.img("a.jpg", preset="hero")


def test_a_stored_size_that_is_missing_is_unknown(photos: list[Photo]) -> None:
    photo = photos[0]
    photo.image_width = None
    assert resolve_source(photo.image) == Source("photos/landscape.jpg")


def test_the_tags_are_rebuilt_only_when_its_settings_change() -> None:
    from django.test import override_settings

    from thumbsvc.contrib.django.conf import get_tags

    first = get_tags()
    with override_settings(USE_I18N=False):
        assert get_tags() is first
    with override_settings(THUMBSVC_PLACEHOLDER="a.jpg"):
        assert get_tags() is not first
        assert get_tags().placeholder == "a.jpg"
    assert get_tags().placeholder is None
