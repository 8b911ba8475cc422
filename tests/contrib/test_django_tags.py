"""The Django tags, rendered from real templates, and every URL they write fetched from the real service."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import pytest
from django.template import Context, Template
from django.test import override_settings
from starlette.testclient import TestClient

from tests.contrib.conftest import (
    BASE_URL,
    IMAGES,
    KEY,
    MEDIA_ROOT,
    ODD_NAME,
    Photo,
    fetch_image,
    parse_elements,
    parse_srcset,
)
from thumbsvc.client import URLSigner
from thumbsvc.contrib.django.conf import get_tags

SIGNER = URLSigner(KEY, BASE_URL)


def render(text: str, **context: Any) -> str:
    return Template("{% load thumbsvc %}" + text).render(Context(context))


def only(markup: str, tag: str) -> dict[str, str | None]:
    found = [attrs for name, attrs in parse_elements(markup) if name == tag]
    assert len(found) == 1, markup
    return found[0]


def test_thumbnail_url_is_the_clients_url_and_serves_the_box(thumbsvc_client: TestClient) -> None:
    tag = '{% thumbnail_url src 300 200 fit="cover" gravity="smart" format="webp" %}'
    out = render(tag, src="photos/landscape.jpg")
    expected = SIGNER.url("photos/landscape.jpg", width=300, height=200, fit="cover", gravity="smart", format="webp")
    assert out == expected
    image = fetch_image(thumbsvc_client, out)
    assert (image.format, image.size) == ("WEBP", (300, 200))


def test_thumbnail_url_as_variable_and_size_string() -> None:
    out = render('{% thumbnail_url src "300x200" fit="cover" as thumb %}[{{ thumb }}]', src="photos/small.jpg")
    assert out == "[" + SIGNER.url("photos/small.jpg", width=300, height=200, fit="cover") + "]"
    assert render('{% thumbnail_url src "x120" %}', src="a.jpg") == SIGNER.url("a.jpg", height=120)
    assert render("{% thumbnail_url src None 120 %}", src="a.jpg") == SIGNER.url("a.jpg", height=120)


def test_thumbnail_url_takes_dpr_crop_background_upscale(thumbsvc_client: TestClient) -> None:
    out = render(
        '{% thumbnail_url src 100 100 fit="pad" crop="0,0,800,600" dpr=2 background="#00ff00" upscale=True %}',
        src="photos/landscape.jpg",
    )
    assert out == SIGNER.url(
        "photos/landscape.jpg",
        width=100,
        height=100,
        fit="pad",
        crop=(0, 0, 800, 600),
        dpr=2,
        background="#00ff00",
        upscale=True,
    )
    assert "/crop:0:0:800:600/dpr:2/bg:00ff00/up:1/" in out
    image = fetch_image(thumbsvc_client, out).convert("RGB")
    assert image.size == (200, 200)
    assert image.getpixel((100, 2)) == pytest.approx((0, 255, 0), abs=8)  # padding above the 4:3 picture


def test_srcset_by_widths_serves_each_width(thumbsvc_client: TestClient) -> None:
    source = Photo(image="photos/landscape.jpg").image  # size unknown: descriptors are the widths asked for
    out = render('{% thumbnail_srcset src 300 200 widths="320,640,960" fit="cover" %}', src=source)
    entries = parse_srcset(out)
    assert [descriptor for _, descriptor in entries] == ["320w", "640w", "960w"]
    for url, descriptor in entries:
        image = fetch_image(thumbsvc_client, url)
        assert image.width == int(descriptor[:-1])
        assert image.height == round(image.width * 200 / 300)


def test_srcset_by_densities_serves_each_density(thumbsvc_client: TestClient, photos: list[Photo]) -> None:
    out = render('{% thumbnail_srcset p.image 240 densities="1,2,3" %}', p=photos[0])  # 1600x1200, contain
    entries = parse_srcset(out)
    assert [descriptor for _, descriptor in entries] == ["1x", "2x", "3x"]
    for url, descriptor in entries:
        density = float(descriptor[:-1])
        assert fetch_image(thumbsvc_client, url).size == (round(240 * density), round(180 * density))


def test_srcset_drops_variants_the_source_cannot_tell_apart(thumbsvc_client: TestClient, photos: list[Photo]) -> None:
    small = photos[2]  # 200x150: 2x and 3x of a 150 px box are both the whole source
    out = render('{% thumbnail_srcset p.image 150 densities="1,2,3" %}', p=small)
    entries = parse_srcset(out)
    assert [descriptor for _, descriptor in entries] == ["1x", "2x"]
    assert fetch_image(thumbsvc_client, entries[1][0]).size == (200, 150)
    widths = parse_srcset(render('{% thumbnail_srcset p.image 100 widths="100,180,400,800" %}', p=small))
    assert [descriptor for _, descriptor in widths] == ["100w", "180w", "200w"]
    assert fetch_image(thumbsvc_client, widths[2][0]).width == 200


FIT_CASES = [
    (fit, name, box)
    for fit in ("cover", "fill", "pad", "contain")
    for name in ("photos/landscape.jpg", "photos/portrait.png", "photos/small.jpg")
    for box in ((300, 200), (250, 250))
]


@pytest.mark.parametrize(("fit", "name", "box"), FIT_CASES)
def test_img_attributes_are_the_served_size(
    thumbsvc_client: TestClient, photos: list[Photo], fit: str, name: str, box: tuple[int, int]
) -> None:
    photo = next(p for p in photos if p.image.name == name)
    markup = render("{% thumbnail_img p.image w h fit=fit alt=p.title %}", p=photo, w=box[0], h=box[1], fit=fit)
    img = only(markup, "img")
    width, height = int(img["width"] or 0), int(img["height"] or 0)
    source_w, source_h = IMAGES[name]
    # The size the DESIGN promises, worked out here independently of the service.
    if fit == "pad":
        assert (width, height) == box
    elif fit in ("cover", "fill"):
        shrink = min(1.0, source_w / box[0], source_h / box[1])
        assert (width, height) == (round(box[0] * shrink), round(box[1] * shrink))
    else:
        scale = min(1.0, box[0] / source_w, box[1] / source_h)
        assert (width, height) == (round(source_w * scale), round(source_h * scale))
    assert img["alt"] == photo.title
    assert (img["loading"], img["decoding"]) == ("lazy", "async")
    assert fetch_image(thumbsvc_client, img["src"] or "").size == (width, height)
    # A source too small for any 2x variant leaves only the src, and no srcset.
    for url, descriptor in parse_srcset(img["srcset"]) if "srcset" in img else []:
        density = float(descriptor[:-1])
        served = fetch_image(thumbsvc_client, url).size
        # Each density is the 1x size times the density, to the rounding pixel, unless the source is too small.
        fits_source = fit == "pad" or (round(width * density) <= source_w and round(height * density) <= source_h)
        if fits_source:
            assert abs(served[0] - width * density) <= 1 and abs(served[1] - height * density) <= 1
        else:
            assert served[0] <= width * density and served[1] <= height * density


def test_img_by_widths_has_sizes_and_width_descriptors(thumbsvc_client: TestClient, photos: list[Photo]) -> None:
    markup = render('{% thumbnail_img p.image 400 300 fit="cover" widths="400,800" %}', p=photos[0])
    img = only(markup, "img")
    assert (img["width"], img["height"]) == ("400", "300")
    assert img["sizes"] == "(max-width: 400px) 100vw, 400px"
    for url, descriptor in parse_srcset(img["srcset"] or ""):
        assert fetch_image(thumbsvc_client, url).size == (int(descriptor[:-1]), int(descriptor[:-1]) * 3 // 4)
    custom = only(render('{% thumbnail_img p.image 400 widths="400,800" sizes="50vw" %}', p=photos[0]), "img")
    assert custom["sizes"] == "50vw"
    # The src is the size asked for even when no width of the srcset is.
    apart = only(render('{% thumbnail_img p.image 300 200 fit="cover" widths="640,960" %}', p=photos[0]), "img")
    assert (apart["width"], apart["height"]) == ("300", "200")
    assert fetch_image(thumbsvc_client, apart["src"] or "").size == (300, 200)
    assert [d for _, d in parse_srcset(apart["srcset"] or "")] == ["640w", "960w"]


def test_img_contain_without_a_known_source_size_has_no_width_or_height(thumbsvc_client: TestClient) -> None:
    img = only(render("{% thumbnail_img src 300 200 %}", src="photos/portrait.png"), "img")
    assert "width" not in img and "height" not in img
    assert fetch_image(thumbsvc_client, img["src"] or "").size == (150, 200)
    tag = "{% thumbnail_img src 300 200 source_width=900 source_height=1200 %}"
    told = only(render(tag, src="photos/portrait.png"), "img")
    assert (told["width"], told["height"]) == ("150", "200")


def test_img_from_a_field_without_stored_dimensions(thumbsvc_client: TestClient, photos: list[Photo]) -> None:
    photo = photos[1]  # portrait 900x1200, but `plain` keeps no width/height fields
    contain = only(render("{% thumbnail_img p.plain 300 200 %}", p=photo), "img")
    assert "width" not in contain
    cover = only(render('{% thumbnail_img p.plain 300 200 fit="cover" %}', p=photo), "img")
    assert (cover["width"], cover["height"]) == ("300", "200")
    assert fetch_image(thumbsvc_client, cover["src"] or "").size == (300, 200)


def test_focal_point_from_the_model(thumbsvc_client: TestClient, photos: list[Photo]) -> None:
    out = render('{% thumbnail_url p.image 200 200 fit="cover" focal=p.focal_point %}', p=photos[0])
    assert "/g:0.25:0.75/" in out
    assert fetch_image(thumbsvc_client, out).size == (200, 200)
    # No focal point in the model: the gravity stands.
    photo = photos[0]
    photo.focal_x = None
    assert "/g:north/" in render('{% thumbnail_url p.image 200 200 gravity="north" focal=p.focal_point %}', p=photo)


def test_picture_has_a_source_per_format_and_a_fallback(thumbsvc_client: TestClient, photos: list[Photo]) -> None:
    markup = render('{% thumbnail_picture p.image 300 200 fit="cover" formats="avif,webp" alt="x" %}', p=photos[0])
    assert markup.startswith("<picture><source ") and markup.endswith("></picture>")
    elements = parse_elements(markup)
    assert [tag for tag, _ in elements] == ["picture", "source", "source", "img"]
    for (_, attrs), (media_type, pil_format) in zip(
        elements[1:3], [("image/avif", "AVIF"), ("image/webp", "WEBP")], strict=True
    ):
        assert attrs["type"] == media_type
        for url, descriptor in parse_srcset(attrs["srcset"] or ""):
            image = fetch_image(thumbsvc_client, url)
            assert image.format == pil_format
            assert image.size == (300 * int(descriptor[0]), 200 * int(descriptor[0]))
    img = elements[3][1]
    assert (img["width"], img["height"], img["alt"]) == ("300", "200", "x")
    assert fetch_image(thumbsvc_client, img["src"] or "").format == "JPEG"


def test_picture_rejects_an_unknown_format() -> None:
    with pytest.raises(ValueError, match="formats"):
        render('{% thumbnail_picture src 300 200 formats="avif,bmp" %}', src="a.jpg")


@override_settings(
    THUMBSVC_DEFAULTS={"format": "webp", "quality": 70},
    THUMBSVC_PRESETS={"card": {"width": 400, "height": 300, "fit": "cover", "widths": [400, 800]}},
)
def test_presets_and_defaults(thumbsvc_client: TestClient, photos: list[Photo]) -> None:
    img = only(render('{% thumbnail_img p.image preset="card" %}', p=photos[0]), "img")
    assert (img["width"], img["height"]) == ("400", "300")
    assert "/400x300/fit:cover/f:webp/q:70/" in (img["src"] or "")
    assert [d for _, d in parse_srcset(img["srcset"] or "")] == ["400w", "800w"]
    assert fetch_image(thumbsvc_client, img["src"] or "").format == "WEBP"
    # The tag's own arguments win over the preset, which wins over the defaults.
    url = render('{% thumbnail_url p.image 200 preset="card" format="png" %}', p=photos[0])
    assert "/200x300/fit:cover/f:png/q:70/" in url
    assert fetch_image(thumbsvc_client, url).size == (200, 300)


@pytest.mark.parametrize("tag", ["thumbnail_url", "thumbnail_srcset", "thumbnail_img", "thumbnail_picture"])
@pytest.mark.parametrize("value", ["", None, "   ", "missing"])
def test_empty_values_render_nothing(photos: list[Photo], tag: str, value: Any) -> None:
    photo = photos[0]
    photo.image = None
    src = photo.image if value == "missing" else value
    assert render("[{% " + tag + " src 300 200 %}]", src=src) == "[]"
    assert render("[{% " + tag + " nothing.at.all 300 200 %}]") == "[]"


@override_settings(THUMBSVC_PLACEHOLDER="photos/small.jpg")
def test_empty_values_use_the_placeholder(thumbsvc_client: TestClient) -> None:
    img = only(render('{% thumbnail_img src 100 100 fit="cover" %}', src=""), "img")
    assert "/photos/small.jpg" in (img["src"] or "")
    assert fetch_image(thumbsvc_client, img["src"] or "").size == (100, 100)
    assert render('{% thumbnail_url src 50 placeholder="" %}', src=None) == ""


def test_bad_arguments_raise_when_raise_errors_is_on() -> None:
    with pytest.raises(ValueError, match="fit must be one of"):
        render('{% thumbnail_img src 300 200 fit="squash" %}', src="a.jpg")
    with pytest.raises(ValueError, match="unknown thumbnail preset"):
        render('{% thumbnail_url src preset="nope" %}', src="a.jpg")
    with pytest.raises(TypeError, match="unknown thumbnail option"):
        render('{% thumbnail_url src 300 colour="red" %}', src="a.jpg")
    with pytest.raises(TypeError, match="densities, not dpr"):
        render("{% thumbnail_img src 300 dpr=2 %}", src="a.jpg")
    with pytest.raises(TypeError, match="only picture takes formats"):
        render('{% thumbnail_img src 300 formats="webp" %}', src="a.jpg")
    with pytest.raises(TypeError, match="not int"):
        render("{% thumbnail_url 42 300 %}")


@override_settings(THUMBSVC_RAISE_ERRORS=None, DEBUG=False)
def test_bad_arguments_log_and_render_nothing_in_production(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="thumbsvc.contrib"):
        out = render('[{% thumbnail_img src 300 200 fit="squash" %}]', src="a.jpg")
    assert out == "[]"
    assert "fit must be one of" in caplog.text


@override_settings(THUMBSVC_RAISE_ERRORS=None, DEBUG=True)
def test_raise_errors_follows_debug() -> None:
    with pytest.raises(ValueError):
        render('{% thumbnail_img src 300 200 fit="squash" %}', src="a.jpg")


def test_escaping_of_sources_and_attributes(thumbsvc_client: TestClient) -> None:
    alt = 'He said "hi" <script>alert(1)</script> & left'
    markup = render(
        '{% thumbnail_img src 320 240 fit="cover" alt=alt class=cls title=alt %}',
        src=ODD_NAME,
        alt=alt,
        cls='a" onerror="x',
    )
    assert "<script" not in markup and 'onerror="x' not in markup
    elements = parse_elements(markup)
    assert [tag for tag, _ in elements] == ["img"]
    img = elements[0][1]
    assert img["alt"] == alt and img["title"] == alt and img["class"] == 'a" onerror="x'
    assert set(img) == {"src", "srcset", "width", "height", "alt", "loading", "decoding", "class", "title"}
    assert fetch_image(thumbsvc_client, img["src"] or "").size == (320, 240)
    for url, _ in parse_srcset(img["srcset"] or ""):
        fetch_image(thumbsvc_client, url)
    # thumbnail_url is escaped by the template engine like any value, and still a valid URL once unescaped.
    attr = render('<a href="{% thumbnail_url src 64 %}">', src=ODD_NAME)
    href = only(attr, "a")["href"] or ""
    assert href == SIGNER.url(ODD_NAME, width=64)
    assert fetch_image(thumbsvc_client, href).width == 64


def test_values_marked_safe_are_written_as_they_are() -> None:
    markup = render("{% thumbnail_img src 32 alt=alt|safe %}", src="a.jpg", alt="Tom &amp; Jerry")
    assert 'alt="Tom &amp; Jerry"' in markup
    assert only(markup, "img")["alt"] == "Tom & Jerry"


def test_markup_stays_escaped_with_autoescape_off() -> None:
    markup = render(
        "{% autoescape off %}{% thumbnail_img src 32 32 alt=alt %}{% endautoescape %}", src=ODD_NAME, alt='"<x>'
    )
    assert only(markup, "img")["alt"] == '"<x>'


def test_attribute_names_are_checked() -> None:
    # Template keywords are \w+ only; a name from Python or Jinja2 could carry anything.
    with pytest.raises(ValueError, match="not an HTML attribute name"):
        get_tags().img("a.jpg", 32, **{'x" onload="y': "1"})


def test_boolean_and_none_attributes() -> None:
    img = only(render("{% thumbnail_img src 32 loading=None ismap=True data_id=7 %}", src="a.jpg"), "img")
    assert "loading" not in img
    assert img["ismap"] is None and "ismap" in img
    assert img["data-id"] == "7"


def test_a_gallery_page(thumbsvc_client: TestClient, photos: list[Photo]) -> None:
    page = render(
        "{% for p in photos %}<figure>{% thumbnail_img p.image 240 180 fit='cover' focal=p.focal_point alt=p.title %}"
        "<figcaption>{{ p.title }}</figcaption></figure>{% endfor %}",
        photos=photos,
    )
    imgs = [attrs for tag, attrs in parse_elements(page) if tag == "img"]
    assert len(imgs) == len(photos)
    for img in imgs:
        expected = (int(img["width"] or 0), int(img["height"] or 0))
        assert fetch_image(thumbsvc_client, img["src"] or "").size == expected


@pytest.mark.corpus
def test_exif_rotated_photo_needs_its_upright_size(corpus: Path, thumbsvc_client: TestClient, photo_table: Any) -> None:
    """Django's width_field holds the stored size (1200x1800) of a photo shown upright as 1800x1200."""
    name = "corpus/exiforient__Landscape_6.jpg"
    target = MEDIA_ROOT / name
    target.parent.mkdir(exist_ok=True)
    shutil.copyfile(corpus / "orientation" / "exiforient__Landscape_6.jpg", target)
    photo = Photo(image=name)  # Django reads the size once, as it does when a file is saved
    assert (photo.image_width, photo.image_height) == (1200, 1800)
    stored = only(render("{% thumbnail_img p.image 300 300 %}", p=photo), "img")
    assert (stored["width"], stored["height"]) == ("200", "300")  # transposed: the caveat in docs/django.md
    assert fetch_image(thumbsvc_client, stored["src"] or "").size == (300, 200)
    told = only(render("{% thumbnail_img p.image 300 300 source_width=1800 source_height=1200 %}", p=photo), "img")
    assert (told["width"], told["height"]) == ("300", "200")
    assert fetch_image(thumbsvc_client, told["src"] or "").size == (300, 200)
