"""The playground's filter controls over HTTP: trim, rotate, flip, grayscale, blur, sharpen and the service's
watermarks, with the same field errors as the other controls and snippets that give the URL shown."""

from __future__ import annotations

import ast
import html
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from PIL import Image, ImageFilter, ImageStat
from starlette.testclient import TestClient

from tests.helpers import decode
from tests.playground.conftest import (
    BORDERED_BOX,
    LOCAL,
    RED,
    element_text,
    filters_settings,
    make_filters_root,
)
from thumbsvc.app import create_app
from thumbsvc.client import URLSigner
from thumbsvc.config import Settings

# Everything at once: turned a quarter clockwise, mirrored, grey, softened, sharpened, marked.
ALL = "source=photo.jpg&w=240&h=160&f=png&rot=90&flip=h&gray=1&blur=0.5&sharp=1&wm=logo"
ALL_PATH = "/240x160/f:png/rot:90/flip:h/gray:1/blur:0.5/sharp:1/wm:logo/photo.jpg"


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return filters_settings(make_filters_root(tmp_path_factory.mktemp("filters") / "media"))


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), base_url=LOCAL) as client:
        yield client


def field_error(page: str, name: str) -> str | None:
    match = re.search(rf'<p class="field-error" id="{name}-error" data-field="{name}"( hidden)?>(.*?)</p>', page, re.S)
    assert match, name
    return None if match.group(1) else html.unescape(match.group(2))


def options_of(page: str, select: str) -> list[str]:
    match = re.search(rf'<select id="{select}" [^>]*>(.*?)</select>', page, re.S)
    assert match, select
    return re.findall(r'<option value="([^"]*)"', match.group(1))


def thumbnail(client: TestClient, page_or_path: str) -> Image.Image:
    path = page_or_path if page_or_path.startswith("/") else element_text(page_or_path, "url").removeprefix(LOCAL)
    response = client.get(path)
    assert response.status_code == 200, response.text
    return decode(response.content)


def laplacian_variance(image: Image.Image) -> float:
    edges = image.convert("L").filter(ImageFilter.Kernel((3, 3), (0, 1, 0, 1, -4, 1, 0, 1, 0), 1, 128))
    return float(ImageStat.Stat(edges).var[0])


def test_the_form_has_a_control_for_each_filter_and_lists_the_services_watermarks(client: TestClient) -> None:
    page = client.get("/?source=photo.jpg").text
    for name in ("trim", "trimc", "blur", "sharp"):
        assert re.search(rf'<input id="{name}" name="{name}" [^>]*value=""', page), name
    assert re.search(r'<input id="gray" name="gray" type="checkbox" value="1">', page)
    assert options_of(page, "rot") == ["", "90", "180", "270"]
    assert options_of(page, "flip") == ["", "h", "v", "hv"]
    assert options_of(page, "wm") == ["", "logo", "stamp"]  # THUMBSVC_WATERMARKS' names, in its order
    # The preview is an image: f:json (facts) is not offered, whatever the client takes.
    assert "json" not in options_of(page, "f")
    assert options_of(page, "f") == ["", "jpeg", "png", "webp", "avif", "gif", "auto"]


def test_without_watermarks_the_select_offers_none(dev: TestClient) -> None:
    page = dev.get("/").text
    assert options_of(page, "wm") == [""]
    assert "none defined: THUMBSVC_WATERMARKS names them" in page
    refused = dev.post("/_dev/sign", json={"source": "cat.jpg", "wm": "logo"})
    assert refused.status_code == 400
    assert refused.json()["errors"] == {"wm": "the service defines no watermarks (THUMBSVC_WATERMARKS)"}


def test_a_bookmarked_filter_state_gives_its_thumbnail_url_and_snippets(client: TestClient, settings: Settings) -> None:
    page = client.get(f"/?{ALL}").text
    url = element_text(page, "url")
    assert url.endswith(ALL_PATH), url
    assert element_text(page, "django") == (
        '{% load thumbsvc %}\n{% thumbnail_url "photo.jpg" 240 160 format="png" rotate=90 flip="h" grayscale=True'
        ' blur=0.5 sharpen=1 watermark="logo" %}'
    )
    python = element_text(page, "python")
    for argument in ("rotate=90", 'flip="h"', "grayscale=True", "blur=0.5", "sharpen=1", 'watermark="logo"'):
        assert argument in python, argument
    # The form shows the state it was given.
    assert '<option value="90" selected>' in page and '<option value="h" selected>' in page
    assert '<option value="logo" selected>' in page
    assert re.search(r'<input id="gray" [^>]* checked>', page)
    assert re.search(r'<input id="blur" [^>]*value="0.5"', page) and re.search(
        r'<input id="sharp" [^>]*value="1"', page
    )
    assert "aria-invalid" not in page

    shown = thumbnail(client, page)
    # The 800x600 photo turned a quarter is 600x800: contained in 240x160 it is 120x160.
    assert (shown.format, shown.size) == ("PNG", (120, 160))
    image = shown.convert("RGB")
    # Its red top-left quadrant went to the top right, and the mirror brought it back to the top left;
    # in grey, red is lighter than blue (luma 87 against 52).
    top_left, top_right = image.getpixel((20, 20)), image.getpixel((100, 20))
    assert top_left[0] == top_left[1] == top_left[2] and top_right[0] == top_right[1] == top_right[2]
    assert abs(top_left[0] - 87) <= 3 and abs(top_right[0] - 52) <= 3
    # The watermark is last, not greyed: a red square of a quarter of the shorter side, flush at the bottom right.
    assert image.getpixel((115, 155)) == RED
    assert image.getpixel((85, 125)) != RED


def test_snippets_with_filters_give_the_url_shown(client: TestClient, settings: Settings) -> None:
    cases = [
        {"w": "240", "h": "160", "trim": "10"},
        {"w": "240", "trim": "0", "trimc": "#FFFFFF", "rot": "270", "flip": "hv"},
        {"w": "240", "h": "160", "fit": "cover", "gray": "1", "blur": "12", "f": "webp"},
        {"w": "100", "sharp": "0.3", "wm": "stamp", "dpr": "2"},
        {"h": "90", "rot": "180", "flip": "v", "blur": "2.5", "sharp": "10", "wm": "logo", "up": "1"},
    ]
    signed = []
    for case in cases:
        response = client.post("/_dev/sign", json={"source": "photo.jpg", **case})
        assert response.status_code == 200, response.json()
        signed.append(response.json())
        assert client.get(signed[-1]["path"]).status_code == 200
    assert "/trim:0:ffffff/rot:270/flip:hv/" in signed[1]["url"]
    assert 'trim=(0, "#ffffff")' in signed[1]["python"] and 'trim="0,#ffffff"' in signed[1]["django"]
    signer = URLSigner(settings.dev_key, base_url=LOCAL)
    for answer in signed:
        call = ast.parse(answer["python"]).body[-1]
        assert isinstance(call, ast.Expr) and isinstance(call.value, ast.Call)
        args = [ast.literal_eval(arg) for arg in call.value.args]
        kwargs = {kw.arg: ast.literal_eval(kw.value) for kw in call.value.keywords}
        assert signer.url(*args, **kwargs) == answer["url"]
    # The Django tags, rendered by Django in a fresh process (its settings are process-wide), give them too.
    pytest.importorskip("django")
    script = """
import json, sys
import django
from django.conf import settings
key, base_url, templates = json.loads(sys.stdin.read())
settings.configure(
    INSTALLED_APPS=["thumbsvc.contrib.django"],
    TEMPLATES=[{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}],
    THUMBSVC_KEY=key, THUMBSVC_BASE_URL=base_url, THUMBSVC_RAISE_ERRORS=True,
)
django.setup()
from django.template import engines
print(json.dumps([engines["django"].from_string(t).render({}) for t in templates]))
"""
    payload = json.dumps([settings.dev_key, LOCAL, [answer["django"] for answer in signed]])
    done = subprocess.run(
        [sys.executable, "-c", script], input=payload, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert [text.strip() for text in json.loads(done.stdout)] == [answer["url"] for answer in signed]


@pytest.mark.parametrize(
    ("fields", "path"),
    [
        ({"trim": "10"}, "/x/trim:10/bordered.png"),
        ({"trim": "10", "trimc": "#ffffff"}, "/x/trim:10:ffffff/bordered.png"),
    ],
)
def test_trim_gives_the_content_box(client: TestClient, fields: dict[str, str], path: str) -> None:
    signed = client.post("/_dev/sign", json={"source": "bordered.png", **fields}).json()
    assert signed["path"].endswith(path)
    left, top, right, bottom = BORDERED_BOX
    assert thumbnail(client, signed["path"]).size == (right - left, bottom - top)


def test_blur_and_sharpen_change_the_thumbnail_as_they_say(client: TestClient) -> None:
    def rendered(**fields: str) -> Image.Image:
        signed = client.post("/_dev/sign", json={"source": "photo.jpg", "w": "200", **fields}).json()
        return thumbnail(client, signed["path"])

    plain = laplacian_variance(rendered())
    assert laplacian_variance(rendered(blur="3")) < plain / 2
    assert laplacian_variance(rendered(sharp="2")) > plain


@pytest.mark.parametrize(
    ("query", "errors", "path"),
    [
        (
            "trim=300&trimc=red&rot=90",
            {"trim": "trim's threshold must be an integer from 0 to 255, not 300", "trimc": "trim's colour must be"},
            "/240x160/rot:90/photo.jpg",
        ),
        ("trim=ten&gray=1", {"trim": "trim must be a whole number, not 'ten'"}, "/240x160/gray:1/photo.jpg"),
        ("trimc=%23ffffff&flip=v", {"trimc": "a trim colour needs a trim threshold"}, "/240x160/flip:v/photo.jpg"),
        (
            "rot=45&flip=x&blur=2",
            {"rot": "rotate must be one of 90, 180, 270", "flip": "flip must be one of h, v, hv"},
            "/240x160/blur:2/photo.jpg",
        ),
        (
            "blur=2.55&sharp=20&wm=logo",
            {"blur": "blur has at most one decimal place, not 2.55", "sharp": "sharpen must be from 0.3 to 10"},
            "/240x160/wm:logo/photo.jpg",
        ),
        (
            "blur=0.1&sharp=soft&rot=180",
            {"blur": "blur must be from 0.3 to 50", "sharp": "sharpen must be a number, not 'soft'"},
            "/240x160/rot:180/photo.jpg",
        ),
        (
            "wm=brand&sharp=1",
            {"wm": "watermark must be one of logo, stamp (THUMBSVC_WATERMARKS), not 'brand'"},
            "/240x160/sharp:1/photo.jpg",
        ),
        (
            "f=json&gray=1",
            {"f": "the playground previews images: json (the facts of a thumbnail) is for the client"},
            "/240x160/gray:1/photo.jpg",
        ),
    ],
)
def test_a_bad_filter_value_is_marked_and_keeps_the_rest(
    client: TestClient, query: str, errors: dict[str, str], path: str
) -> None:
    page = client.get(f"/?source=photo.jpg&w=240&h=160&{query}").text
    for name in ("trim", "trimc", "rot", "flip", "blur", "sharp", "wm", "f"):
        shown = field_error(page, name)
        if name in errors:
            assert shown is not None and errors[name] in shown, (name, shown)
            assert re.search(rf'<(?:input|select) id="{name}" [^>]*aria-invalid="true"', page), name
        else:
            assert shown is None, (name, shown)
    assert "could not be used" in element_text(page, "error")
    url = element_text(page, "url")
    assert url.endswith(path), url
    thumbnail(client, page)  # what is shown renders
    # Live, /_dev/sign names the same fields, each with the same message.
    fields = dict(pair.split("=") for pair in query.replace("%23", "#").split("&"))
    answer = client.post("/_dev/sign", json={"source": "photo.jpg", "w": "240", "h": "160", **fields})
    assert answer.status_code == 400
    refused = answer.json()["errors"]
    assert set(refused) == set(errors)
    assert all(message in refused[name] for name, message in errors.items())


def test_the_grid_keeps_the_filters(client: TestClient) -> None:
    grid = client.get("/_dev/grid?source=photo.jpg&w=80&h=80&gray=1&rot=90&wm=stamp&trim=5").text
    cells = re.findall(r'<td><a href="[^"]*"><img src="([^"]+)"', grid)
    assert len(cells) == 4 * 10 and all("/trim:5/rot:90/gray:1/wm:stamp/photo.jpg" in cell for cell in cells)
    for name, value in (("gray", "1"), ("rot", "90"), ("wm", "stamp"), ("trim", "5")):
        assert f'<input type="hidden" name="{name}" value="{value}">' in grid
    image = thumbnail(client, cells[0].replace("&amp;", "&"))
    pixel: Any = image.convert("RGB").getpixel((image.width // 2, image.height // 2))
    assert pixel[0] == pixel[1] == pixel[2]


def test_nav_links_carry_the_filters(client: TestClient) -> None:
    page = client.get(f"/?{ALL}").text
    nav = re.search(r'id="nav-grid" href="([^"]+)"', page)
    assert nav is not None
    link = html.unescape(nav.group(1))
    for pair in ("rot=90", "flip=h", "gray=1", "blur=0.5", "sharp=1", "wm=logo"):
        assert pair in link, pair
