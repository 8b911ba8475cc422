"""thumbhash= on thumbnail_img and thumbnail_picture, in Django and Jinja2, and manage.py thumbsvc_placeholders."""

from __future__ import annotations

import base64
import io
import logging
from typing import Any

import jinja2
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.template import Context, Template
from django.test import override_settings
from PIL import Image

from tests.contrib.conftest import BASE_URL, IMAGES, KEY, MEDIA_ROOT, Photo, parse_elements
from thumbsvc.client import URLSigner
from thumbsvc.contrib.jinja2 import install
from thumbsvc.contrib.thumbnails import ThumbnailTags
from thumbsvc.placeholders import (
    compute,
    hex_colour,
    thumbhash,
    thumbhash_average,
    thumbhash_data_uri,
    thumbhash_to_rgba,
)

ALPHA = base64.b64encode(thumbhash(4, 2, bytes((255, 0, 0, 255, 0, 0, 255, 60)) * 4)).decode()


@pytest.fixture(scope="module")
def opaque(media_root: Any) -> str:
    return compute(MEDIA_ROOT / "photos" / "landscape.jpg").thumbhash


def render(text: str, **context: Any) -> str:
    return Template("{% load thumbsvc %}" + text).render(Context(context))


def imgs(markup: str) -> list[dict[str, str | None]]:
    return [attrs for tag, attrs in parse_elements(markup) if tag == "img"]


def png_pixels(uri: str) -> tuple[int, int, bytes]:
    image = Image.open(io.BytesIO(base64.b64decode(uri.removeprefix("data:image/png;base64,"))))
    image.load()
    return image.width, image.height, image.convert("RGBA").tobytes()


def test_thumbhash_paints_the_average_colour_and_carries_the_hash(opaque: str) -> None:
    (img,) = imgs(render('{% thumbnail_img src 320 240 fit="cover" thumbhash=h alt="" %}', src="a.jpg", h=opaque))
    colour = hex_colour(thumbhash_average(opaque))
    assert img["style"] == f"background-color:{colour}"
    assert img["data-thumbhash"] == opaque
    assert img["src"] == URLSigner(KEY, BASE_URL).url("a.jpg", width=320, height=240, fit="cover")
    assert (img["width"], img["height"], img["loading"]) == ("320", "240", "lazy")


def test_the_hash_is_written_in_its_canonical_form(opaque: str) -> None:
    (img,) = imgs(render("{% thumbnail_img src 320 thumbhash=h %}", src="a.jpg", h=opaque.rstrip("=") + "  "))
    assert img["data-thumbhash"] == opaque


def test_thumbhash_image_paints_the_decoded_image(opaque: str) -> None:
    (img,) = imgs(render("{% thumbnail_img src 320 240 thumbhash=h thumbhash_image=True %}", src="a.jpg", h=opaque))
    style = img["style"] or ""
    colour = hex_colour(thumbhash_average(opaque))
    uri = thumbhash_data_uri(opaque)
    parts = [f"background-color:{colour}", f"background-image:url({uri})", "background-size:cover"]
    assert style == ";".join([*parts, "background-position:center"])
    assert png_pixels(uri) == thumbhash_to_rgba(opaque)


def test_a_hash_with_alpha_paints_a_translucent_colour_or_only_its_image() -> None:
    (img,) = imgs(render("{% thumbnail_img src 320 thumbhash=h %}", src="a.png", h=ALPHA))
    assert img["style"] == f"background-color:{hex_colour(thumbhash_average(ALPHA), alpha=True)}"
    assert len(img["style"] or "") == len("background-color:#rrggbbaa")
    (img,) = imgs(render("{% thumbnail_img src 320 thumbhash=h thumbhash_image=True %}", src="a.png", h=ALPHA))
    assert (img["style"] or "").startswith("background-image:url(data:image/png;base64,")


@override_settings(THUMBSVC_THUMBHASH_IMAGE=True)
def test_the_setting_makes_the_image_the_default(opaque: str) -> None:
    (img,) = imgs(render("{% thumbnail_img src 320 thumbhash=h %}", src="a.jpg", h=opaque))
    assert "background-image:url(data:image/png;base64," in (img["style"] or "")
    (img,) = imgs(render("{% thumbnail_img src 320 thumbhash=h thumbhash_image=False %}", src="a.jpg", h=opaque))
    assert "background-image" not in (img["style"] or "")


def test_picture_puts_the_placeholder_on_its_img(opaque: str) -> None:
    out = render('{% thumbnail_picture src 300 200 fit="cover" thumbhash=h %}', src="a.jpg", h=opaque)
    elements = parse_elements(out)
    assert [tag for tag, _ in elements] == ["picture", "source", "source", "img"]
    assert all("style" not in attrs and "data-thumbhash" not in attrs for tag, attrs in elements if tag != "img")
    assert elements[-1][1]["data-thumbhash"] == opaque


def test_the_callers_style_follows_the_placeholders_and_is_escaped(opaque: str) -> None:
    out = render('{% thumbnail_img src 320 thumbhash=h style="border: 1px solid \\"red\\"" %}', src="a.jpg", h=opaque)
    (img,) = imgs(out)
    assert img["style"] == f'background-color:{hex_colour(thumbhash_average(opaque))};border: 1px solid "red"'
    assert "&quot;red&quot;" in out


def test_empty_hashes_add_nothing_and_the_placeholder_source_gets_none(opaque: str) -> None:
    for empty in ("", None):
        (img,) = imgs(render("{% thumbnail_img src 320 thumbhash=h %}", src="a.jpg", h=empty))
        assert "style" not in img and "data-thumbhash" not in img
    (img,) = imgs(render('{% thumbnail_img src 320 thumbhash=h placeholder="b.jpg" %}', src="", h=opaque))
    assert "b.jpg" in (img["src"] or "") and "style" not in img and "data-thumbhash" not in img


def test_bad_hashes_raise_like_other_bad_arguments() -> None:
    with pytest.raises(ValueError, match="ThumbHash"):
        render("{% thumbnail_img src 320 thumbhash=h %}", src="a.jpg", h="not a hash")
    with pytest.raises(ValueError, match="ThumbHash"):
        render("{% thumbnail_picture src 320 thumbhash=h %}", src="a.jpg", h="AAAA")
    with pytest.raises(TypeError, match="only img and picture take thumbhash"):
        render("{% thumbnail_url src 320 thumbhash=h %}", src="a.jpg", h="AAAA")
    with pytest.raises(TypeError, match="only img and picture take thumbhash"):
        render("{% thumbnail_srcset src 320 thumbhash_image=True %}", src="a.jpg")


@override_settings(THUMBSVC_RAISE_ERRORS=None, DEBUG=False)
def test_bad_hashes_log_and_render_nothing_in_production(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="thumbsvc.contrib"):
        out = render("[{% thumbnail_img src 320 thumbhash=h %}]", src="a.jpg", h="not a hash")
    assert out == "[]"
    assert "not a ThumbHash" in caplog.text or "is base64 text" in caplog.text


def test_jinja2_takes_the_same_arguments(opaque: str) -> None:
    env = install(jinja2.Environment(autoescape=True), ThumbnailTags(URLSigner(KEY, BASE_URL)))
    out = env.from_string(
        "{{ thumbnail_img('a.jpg', 320, 240, thumbhash=h, alt='x') }}"
        "{{ thumbnail_picture('a.jpg', 320, 240, thumbhash=h, thumbhash_image=True) }}"
    ).render(h=opaque)
    first, second = imgs(out)
    assert first["data-thumbhash"] == second["data-thumbhash"] == opaque
    assert first["style"] == f"background-color:{hex_colour(thumbhash_average(opaque))}"
    assert "background-image:url(data:image/png;base64," in (second["style"] or "")


def test_tags_given_the_hash_the_model_stores(photos: list[Photo]) -> None:
    call_command("thumbsvc_placeholders", "thumbsvc.Photo", "image", "thumbhash", stdout=io.StringIO())
    photo = Photo.objects.get(image="photos/portrait.png")
    (img,) = imgs(render("{% thumbnail_img p.image 300 300 thumbhash=p.thumbhash %}", p=photo))
    assert img["data-thumbhash"] == compute(MEDIA_ROOT / "photos" / "portrait.png").thumbhash
    assert (img["width"], img["height"]) == ("225", "300")


# manage.py thumbsvc_placeholders


def test_the_command_stores_a_hash_and_colour_for_each_row(photos: list[Photo]) -> None:
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "thumbsvc_placeholders", "thumbsvc.Photo", "image", "thumbhash", average_field="average", stdout=out, stderr=err
    )
    stored = {p.image.name: (p.thumbhash, p.average) for p in Photo.objects.all()}
    expected = {}
    for name in IMAGES:
        found = compute(MEDIA_ROOT / name)
        expected[name] = (found.thumbhash, found.average)
    assert stored == expected
    assert len(out.getvalue().splitlines()) == len(IMAGES) and err.getvalue() == ""
    # Rows that have a hash are left alone unless --all.
    out = io.StringIO()
    call_command("thumbsvc_placeholders", "thumbsvc.Photo", "image", "thumbhash", stdout=out)
    assert out.getvalue() == ""
    call_command("thumbsvc_placeholders", "thumbsvc.Photo", "image", "thumbhash", "--all", stdout=out)
    assert len(out.getvalue().splitlines()) == len(IMAGES)


def test_the_command_dry_run_saves_nothing(photos: list[Photo]) -> None:
    out = io.StringIO()
    call_command("thumbsvc_placeholders", "thumbsvc.Photo", "plain", "thumbhash", "--dry-run", stdout=out)
    assert len(out.getvalue().splitlines()) == len(IMAGES)
    assert set(Photo.objects.values_list("thumbhash", flat=True)) == {""}


def test_the_command_reports_unreadable_images_and_fails(photos: list[Photo]) -> None:
    broken = MEDIA_ROOT / "photos" / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    # (Sizes given, or saving the row would read the file.)
    Photo.objects.create(title="broken", image="photos/broken.jpg", image_width=10, image_height=10)
    Photo.objects.create(title="gone", image="photos/gone.jpg", image_width=10, image_height=10)
    Photo.objects.create(title="no file", image="")
    out, err = io.StringIO(), io.StringIO()
    try:
        with pytest.raises(CommandError, match="2 image"):
            call_command("thumbsvc_placeholders", "thumbsvc.Photo", "image", "thumbhash", stdout=out, stderr=err)
    finally:
        broken.unlink()
    assert "photos/broken.jpg" in err.getvalue() and "photos/gone.jpg" in err.getvalue()
    assert len(out.getvalue().splitlines()) == len(IMAGES)  # the others were stored all the same
    assert Photo.objects.exclude(thumbhash="").count() == len(IMAGES)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope.Photo", "image", "thumbhash"], "no model"),
        (["thumbsvc.Photo", "image", "hash"], "no field named 'hash'"),
    ],
)
def test_the_command_names_a_wrong_model_or_field(photo_table: type[Photo], args: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        call_command("thumbsvc_placeholders", *args, stdout=io.StringIO())


def test_computing_at_upload_time_leaves_the_upload_intact(photo_table: type[Photo]) -> None:
    """docs/django.md's pattern: compute(photo.image) on a new upload, then save() stores the whole file."""
    data = (MEDIA_ROOT / "photos" / "portrait.png").read_bytes()
    photo = Photo(title="upload", image=SimpleUploadedFile("upload.png", data))
    photo.thumbhash = compute(photo.image).thumbhash
    photo.save()
    try:
        stored = Photo.objects.get(pk=photo.pk)
        assert (MEDIA_ROOT / stored.image.name).read_bytes() == data
        assert stored.thumbhash == compute(MEDIA_ROOT / "photos" / "portrait.png").thumbhash
        assert (stored.image_width, stored.image_height) == (900, 1200)
    finally:
        (MEDIA_ROOT / photo.image.name).unlink()
        photo.delete()
