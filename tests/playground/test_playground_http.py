"""The playground over HTTP: pages, signing, snippets that give the URL shown, and no playground with a key."""

from __future__ import annotations

import ast
import html
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import markupsafe
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

from tests.helpers import REPO, TEST_KEY, decode, make_photo
from tests.playground.conftest import (
    HEIC_REASON,
    LOCAL,
    UNDECODABLE,
    UNSUPPORTED,
    element_text,
    heif_registered,
    image_sources,
)
from thumbsvc import playground
from thumbsvc.app import create_app
from thumbsvc.client import URLSigner
from thumbsvc.config import Settings
from thumbsvc.playground import TIMES
from thumbsvc.service import Thumbnailer

SERVICE_CSP = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'none'"
SAMPLES = ["cat.jpg", "craft-beer.jpg", "japanese-shop.jpg"]


def sign(client: TestClient, **fields: Any) -> Any:
    return client.post("/_dev/sign", json={"source": "cat.jpg", **fields})


def test_page_lists_the_samples_and_every_image_on_it_loads(dev: TestClient) -> None:
    page = dev.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-store"
    assert page.headers.get_list("content-security-policy") == [playground.CSP]
    assert "script-src 'self'" in playground.CSP and "connect-src 'self'" in playground.CSP
    assert page.headers["x-content-type-options"] == "nosniff"
    for name in SAMPLES:
        assert f'<option value="{name}"' in page.text
    sources = image_sources(page.text)
    assert len(sources) == len(SAMPLES) + 2  # the sample strip, the original and the thumbnail
    # The thumbnail has one <img src>, inside <noscript>: with script, only the script fetches it (once).
    thumb = element_text(page.text, "url").removeprefix(LOCAL)
    assert sources.count(thumb) == 1
    assert re.search(rf'<noscript><img src="{re.escape(html.escape(thumb))}"', page.text)
    assert re.search(r'<img id="thumb"(?![^>]*\ssrc=)[^>]*\sdata-url="([^"]+)"', page.text)
    for src in sources:
        response = dev.get(src)
        assert response.status_code == 200, src
        assert response.headers["content-type"].startswith("image/")
        assert decode(response.content).width > 0
    # Nothing on the page comes from elsewhere: every reference is a path on this service.
    for attribute in ("src", "href", "action"):
        for value in re.findall(rf'\s{attribute}="([^"]*)"', page.text):
            assert value.startswith(("/", "?", "#")), value


def test_default_page_shows_a_cover_thumbnail_with_its_url_and_snippets(dev: TestClient) -> None:
    page = dev.get("/").text
    thumb = decode(dev.get(element_text(page, "url").removeprefix(LOCAL)).content)
    assert thumb.size == (480, 320)
    assert element_text(page, "django") == '{% load thumbsvc %}\n{% thumbnail_url "cat.jpg" 480 320 fit="cover" %}'
    assert 'signer.url("cat.jpg", width=480, height=320, fit="cover")' in element_text(page, "python")
    assert element_text(page, "source-info") == f"1000 {TIMES} 748 px · JPEG · 158.5 KB"


def test_page_takes_its_state_from_the_query(dev: TestClient) -> None:
    query = "source=craft-beer.jpg&w=300&h=300&fit=pad&g=focal&fx=0.25&fy=0.75&f=png&q=70&dpr=2&bg=%23112233&up=1"
    page = dev.get(f"/?{query}").text
    url = element_text(page, "url")
    assert "/300x300/fit:pad/g:0.25:0.75/f:png/q:70/dpr:2/bg:112233/up:1/craft-beer.jpg" in url
    assert '<option value="pad" selected>' in page
    assert '<option value="focal" selected>' in page
    assert re.search(r'<input id="fx" name="fx" [^>]*value="0.25"', page)
    assert not re.search(r'<input id="fx" [^>]*disabled', page)
    assert 'id="up" name="up" type="checkbox" value="1" checked>' in page
    assert "aria-invalid" not in page and 'id="error" class="error" role="alert" hidden' in page
    image = decode(dev.get(url.removeprefix(LOCAL)).content)
    assert (image.format, image.size) == ("PNG", (600, 600))
    assert image.convert("RGB").getpixel((0, 0)) == (0x11, 0x22, 0x33)  # padding in the background colour


def field_error(page: str, field: str) -> str | None:
    """Return the error shown next to a field, or None when its error box is hidden."""
    match = re.search(
        rf'<p class="field-error" id="{field}-error" data-field="{field}"( hidden)?>(.*?)</p>', page, re.S
    )
    assert match, field
    return None if match.group(1) else html.unescape(match.group(2))


def is_invalid(page: str, field: str) -> bool:
    tag = re.search(rf'<(?:input|select) id="{field}" [^>]*>', page)
    assert tag, field
    return 'aria-invalid="true"' in tag.group(0)


FIELDS = ("source", "w", "h", "dpr", "fit", "g", "fx", "fy", "f", "q", "bg")


@pytest.mark.parametrize(
    ("query", "errors", "path", "size"),
    [
        # The example: one bad fit and one bad quality cost neither the width nor each other.
        (
            "source=cat.jpg&w=300&fit=squash&q=500",
            {"fit": "fit must be one of contain, cover, fill, pad, not 'squash'", "q": "quality must be an integer"},
            "/300x/cat.jpg",
            (300, 224),
        ),
        ("source=cat.jpg&w=wide&h=200&fit=cover", {"w": "width must be a whole number, not 'wide'"}, "/x200/", None),
        ("source=cat.jpg&w=5000&h=100", {"w": "at most 4096 px a side"}, "/x100/cat.jpg", (134, 100)),
        ("source=cat.jpg&w=100&h=100&fit=cover&dpr=9", {"dpr": "dpr must be from 1 to 4"}, "/100x100/", (100, 100)),
        (
            "source=cat.jpg&w=90&h=90&fit=cover&g=focal&fx=2&fy=0.25&f=bmp&bg=red",
            {"fx": "focal x must be from 0 to 1, not '2'", "f": "format must be one of", "bg": "background must be"},
            "/90x90/fit:cover/g:0.5:0.25/cat.jpg",
            (90, 90),
        ),
        ("source=cat.jpg&w=80&g=sideways", {"g": "gravity must be one of"}, "/80x/cat.jpg", (80, 60)),
    ],
)
def test_a_bookmarked_state_keeps_its_valid_values_and_marks_each_bad_one(
    dev: TestClient, query: str, errors: dict[str, str], path: str, size: tuple[int, int] | None
) -> None:
    response = dev.get(f"/?{query}")
    assert response.status_code == 200
    page = response.text
    for field in FIELDS:
        shown = field_error(page, field)
        if field in errors:
            assert shown is not None and errors[field] in shown, (field, shown)
            assert is_invalid(page, field), field
        else:
            assert shown is None, (field, shown)
            assert not is_invalid(page, field), field
    summary = element_text(page, "error")
    assert "could not be used" in summary and "the thumbnail shows the rest" in summary
    assert 'id="error" class="error" role="alert" hidden' not in page
    # The page still shows a thumbnail of everything that was valid.
    url = element_text(page, "url")
    assert path in url, url
    if size is not None:
        assert decode(dev.get(url.removeprefix(LOCAL)).content).size == size


def test_a_bookmarked_state_keeps_valid_values_in_the_form(dev: TestClient) -> None:
    page = dev.get("/?source=craft-beer.jpg&w=300&h=abc&fit=squash&f=webp&q=500&dpr=2").text
    assert re.search(r'<input id="w" [^>]*value="300"', page)
    assert re.search(r'<input id="h" [^>]*value=""', page)  # refused: back to "auto", with the reason beside it
    assert '<option value="craft-beer.jpg" selected>' in page
    assert '<option value="webp" selected>' in page
    assert '<option value="2" selected>' in page
    assert '<option value="contain" selected>' in page  # the fit the thumbnail uses, beside why squash is not one
    assert re.search(r'<input id="q" [^>]*value=""', page)
    assert "/300x/f:webp/dpr:2/craft-beer.jpg" in element_text(page, "url")
    # The links carry the valid state only, so following one does not repeat the refusals.
    nav = re.search(r'id="nav-grid" href="([^"]+)"', page)
    assert nav and "q=" not in nav.group(1) and "squash" not in nav.group(1)


def test_a_source_the_client_refuses_is_marked_not_a_server_error(dev: TestClient) -> None:
    # Before, URLSigner's refusal escaped the handler: a 500 with a traceback in the log.
    page = dev.get("/?source=s3://bucket&w=100")
    assert page.status_code == 200
    assert field_error(page.text, "source") == "an S3 source needs a key after the bucket"
    assert "/100x/cat.jpg" in element_text(page.text, "url")  # the default image, with the valid width
    grid = dev.get("/_dev/grid?source=s3://bucket")
    assert grid.status_code == 200 and "an S3 source needs a key after the bucket" in grid.text
    refused = dev.post("/_dev/sign", content=b'{"source": "\\ud800.jpg"}', headers={"content-type": "application/json"})
    assert refused.status_code == 400
    assert list(refused.json()["errors"]) == ["source"]


def test_any_image_in_the_media_root_is_offered(nested_root: Path) -> None:
    app = create_app(Settings(media_root=str(nested_root), render_slots=2))
    with TestClient(app, base_url=LOCAL) as client:
        page = client.get("/").text
        select = re.split(r'<select id="source" [^>]*>', page)[1].split("</select>")[0]
        # Sorted, subfolders included, hidden entries and non-images left out; the first is the default.
        assert re.findall(r'<option value="([^"]*)"', select) == ["shoots/2024/beach day.png", "top.jpg"]
        assert '<option value="shoots/2024/beach day.png" selected>' in select
        assert "beach%20day.png" in element_text(page, "url")
        signed = client.post("/_dev/sign", json={"source": "top.jpg", "w": "90", "h": "90", "fit": "cover"}).json()
        assert signed["source_info"] == f"300 {TIMES} 400 px · JPEG · " + signed["source_info"].split(" · ")[2]
        assert decode(client.get(signed["path"]).content).size == (90, 90)


def test_an_empty_media_root_says_so(tmp_path: Path) -> None:
    with TestClient(create_app(Settings(media_root=str(tmp_path), render_slots=2)), base_url=LOCAL) as client:
        for path in ("/", "/_dev/grid"):
            page = client.get(path)
            assert page.status_code == 404
            assert page.text == "choose a source image (the media root has none)\n"


def test_tiles_say_why_the_service_cannot_render_a_file(unreadable_root: Path) -> None:
    with TestClient(create_app(Settings(media_root=str(unreadable_root), render_slots=2)), base_url=LOCAL) as client:
        page = client.get("/").text
        strip = page.split('aria-label="Samples">')[1].split("</ul>")[0]
        tiles = dict(re.findall(r'data-source="([^"]+)"[^>]*>(.*?)</a></li>', strip, re.S))
        assert list(tiles) == ["0-phone.heic", "1-notes.jpg", "2-empty.png", "3-good.jpg", "4-cut.jpg"]

        def reason(name: str) -> str | None:
            found = re.search(r'<span class="tile-reason">(.*?)</span>', tiles[name])
            return html.unescape(found.group(1)) if found else None

        # Decided from the header (describe): no <img> is offered for these, so no broken image.
        if heif_registered():  # the heif extra is installed: this file's header is simply not a whole HEIC
            assert reason("0-phone.heic") not in (None, HEIC_REASON)
        else:
            assert reason("0-phone.heic") == HEIC_REASON
        assert reason("1-notes.jpg") == UNSUPPORTED
        assert reason("2-empty.png") == UNSUPPORTED
        assert "<img" not in tiles["0-phone.heic"] + tiles["1-notes.jpg"] + tiles["2-empty.png"]
        # Readable headers get an image; a cut-off file is found only when its pixels fail (the script says why).
        assert reason("3-good.jpg") is None and "<img" in tiles["3-good.jpg"]
        assert reason("4-cut.jpg") is None and "<img" in tiles["4-cut.jpg"]
        cut = re.search(r'<img src="([^"]+)"', tiles["4-cut.jpg"])
        assert cut is not None
        refused = client.get(html.unescape(cut.group(1)))
        assert (refused.status_code, refused.text) == (422, UNDECODABLE + "\n")  # what the script shows on the tile
        # The first image the service can read is the default, so a first visit shows a thumbnail.
        assert '<option value="3-good.jpg" selected>' in page
        assert decode(client.get(element_text(page, "url").removeprefix(LOCAL)).content).size == (480, 320)


def test_an_unreadable_source_is_explained_not_shown_broken(unreadable_root: Path) -> None:
    with TestClient(create_app(Settings(media_root=str(unreadable_root), render_slots=2)), base_url=LOCAL) as client:
        reason = UNSUPPORTED if heif_registered() else HEIC_REASON
        page = client.get("/?source=0-phone.heic&w=100").text
        original = re.search(r'<img id="original"[^>]*>', page)
        assert original and " src=" not in original.group(0) and " hidden" in original.group(0)
        assert element_text(page, "original-problem") == reason or heif_registered()
        assert element_text(page, "source-info").startswith("cannot read this source: ")
        signed = client.post("/_dev/sign", json={"source": "0-phone.heic", "w": "100"}).json()
        assert signed["source_problem"] == element_text(page, "original-problem")
        assert client.post("/_dev/sign", json={"source": "3-good.jpg"}).json()["source_problem"] == ""
        good = re.search(r'<img id="original" src="([^"]+)"', client.get("/?source=3-good.jpg").text)
        assert good and client.get(html.unescape(good.group(1))).status_code == 200


def test_the_strip_describes_at_most_its_tiles(tmp_path: Path) -> None:
    # Describing a source reads it (into the source cache) and its header: bounded by the strip, not the root.
    root = tmp_path / "many"
    root.mkdir()
    photo = make_photo((64, 48))
    for i in range(playground.MAX_SAMPLE_STRIP + 8):
        (root / f"photo-{i:02}.jpg").write_bytes(photo)
    with TestClient(create_app(Settings(media_root=str(root), render_slots=2)), base_url=LOCAL) as client:
        page = client.get("/").text
        assert page.count('<li><a href="/?') == playground.MAX_SAMPLE_STRIP
        assert page.count('<option value="photo-') == playground.MAX_SAMPLE_STRIP + 8
        metrics = client.get("/metrics").text
        assert f'thumbsvc_cache_entries{{cache="source"}} {playground.MAX_SAMPLE_STRIP}.0' in metrics
        client.get("/?source=photo-19.jpg")  # one past the strip: described too, being shown
        metrics = client.get("/metrics").text
        assert f'thumbsvc_cache_entries{{cache="source"}} {playground.MAX_SAMPLE_STRIP + 1}.0' in metrics


def test_names_are_escaped_by_the_templates(tmp_path: Path) -> None:
    root = tmp_path / "odd"
    root.mkdir()
    name = """<b onmouseover="x()">'&amp;.jpg"""
    (root / name).write_bytes(make_photo((64, 48)))
    (root / "<i>.heic").write_bytes(b"")
    with TestClient(create_app(Settings(media_root=str(root), render_slots=2)), base_url=LOCAL) as client:
        for path in ("/", "/_dev/grid?w=40&h=40", "/?source=%3Cscript%3Ealert(1)%3C/script%3E"):
            page = client.get(path).text
            assert "<b " not in page and "<i>" not in page and "<script>" not in page, path
            assert 'onmouseover="' not in page, path
        page = client.get("/").text
        escaped = str(markupsafe.escape(name))  # the name as text and in attributes, escaped exactly once
        assert page.count(escaped) >= 5 and html.escape(escaped) not in page
        assert element_text(page, "django").startswith('{% load thumbsvc %}\n{% thumbnail_url "<b onmouseover=\\"x()')


def test_the_html_lives_in_templates() -> None:
    # Pages and fragments are Jinja2 templates with autoescape; the module builds no markup of its own.
    source = (REPO / "thumbsvc" / "playground.py").read_text(encoding="utf-8")
    assert not re.search(r"<(a|img|li|td|th|tr|option|input|form|div|p|ul|span|table|script|nav)[\s>]", source)
    assert "string.Template" not in source and "import html" not in source
    environment = playground.load_templates()
    assert environment.autoescape is True
    names = set(environment.list_templates())
    assert {"base.html", "playground.html", "grid.html", "form.html", "strip.html", "nav.html", "options.html"} <= names


# Run in a fresh interpreter where jinja2 (and markupsafe) cannot be imported, as after `pip install thumbsvc`.
WITHOUT_JINJA2 = """
import importlib.abc, json, sys

tried = []

class HideJinja2(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("jinja2", "markupsafe"):
            tried.append(name)
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, HideJinja2())

from starlette.testclient import TestClient
from thumbsvc.app import create_app
from thumbsvc.client import URLSigner
from thumbsvc.config import Settings

settings = Settings(render_slots=2)
with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
    index, grid = client.get("/"), client.get("/_dev/grid")
    thumb = client.get(URLSigner(settings.dev_key).url("cat.jpg", width=64, height=64, fit="cover"))
    print(json.dumps({
        "index": [index.status_code, index.headers["content-type"], index.text],
        "grid": [grid.status_code, grid.text],
        "thumb": [thumb.status_code, thumb.headers["content-type"], len(thumb.content)],
        "sign": client.post("/_dev/sign", json={"source": "cat.jpg"}).status_code,
        "tried": tried,
        "loaded": sorted(m for m in sys.modules if m.partition(".")[0] in ("jinja2", "markupsafe")),
    }))
"""


def test_development_mode_serves_thumbnails_without_jinja2() -> None:
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_JINJA2], capture_output=True, text=True, timeout=120, check=False, cwd=REPO
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    status, content_type, text = seen["index"]
    assert status == 200 and content_type.startswith("text/plain")
    assert 'pip install "thumbsvc[playground]"' in text
    assert seen["grid"] == [200, text]
    assert seen["thumb"][:2] == [200, "image/jpeg"] and seen["thumb"][2] > 0
    assert seen["sign"] in (403, 404, 405)  # not mounted: the thumbnail route's answer
    assert "jinja2" in seen["tried"]  # the playground asked for it, and went on without it
    assert seen["loaded"] == []


@pytest.mark.parametrize(
    ("fields", "size", "kind"),
    [
        ({"w": "300", "h": "200", "fit": "cover", "dpr": "2", "f": "webp", "q": "80"}, (600, 400), "WEBP"),
        ({"w": "200", "h": "", "fit": "contain"}, (200, 150), "JPEG"),
        ({"w": "", "h": "100", "fit": "contain", "f": "png"}, (134, 100), "PNG"),
        ({"w": "120", "h": "120", "fit": "pad", "bg": "#FFAA00"}, (120, 120), "JPEG"),
        ({"w": "160", "h": "90", "fit": "fill", "dpr": "1.5"}, (240, 135), "JPEG"),
        ({"w": "120", "h": "120", "fit": "cover", "g": "focal", "fx": "0.9", "fy": "0.1"}, (120, 120), "JPEG"),
        ({"w": "2000", "h": "2000", "fit": "contain", "up": "1"}, (2000, 1496), "JPEG"),
    ],
)
def test_sign_returns_a_url_of_exactly_that_thumbnail(
    dev: TestClient, fields: dict[str, str], size: tuple[int, int], kind: str
) -> None:
    response = sign(dev, **fields)
    assert response.status_code == 200
    assert response.headers.get_list("content-security-policy") == [playground.CSP]
    signed = response.json()
    assert signed["url"] == LOCAL + signed["path"]
    image = decode(dev.get(signed["path"]).content)
    assert (image.format, image.size) == (kind, size)
    original = decode(dev.get(signed["original"]).content)
    assert original.size == (960, 718)  # the preview of the 1000 x 748 source
    assert signed["source_info"].startswith(f"1000 {TIMES} 748 px · JPEG")


@pytest.mark.parametrize(
    "fields",
    [
        {"w": "300", "h": "200", "fit": "cover"},
        {"w": "300"},
        {"h": "120", "fit": "contain", "f": "auto"},
        {},
        {"w": "64", "h": "64", "fit": "cover", "g": "focal", "fx": "0.123", "fy": "1"},
        {"w": "64", "h": "48", "fit": "cover", "g": "north-east", "dpr": "1.5", "q": "55", "f": "avif"},
        {"w": "64", "h": "64", "fit": "pad", "bg": "#20232a80", "f": "png", "up": "1", "dpr": "3"},
        {"source": 'odd "name" \\ with: colon.jpg', "w": "10"},
    ],
)
def test_snippets_are_code_that_gives_the_url_shown(
    dev: TestClient, dev_settings: Settings, fields: dict[str, str]
) -> None:
    signed = sign(dev, **fields).json()
    # The Python snippet, run with the service's key, returns exactly the URL shown.
    module = ast.parse(signed["python"])
    assert isinstance(module.body[-1], ast.Expr)
    call = module.body[-1].value
    assert isinstance(call, ast.Call)
    args = [ast.literal_eval(arg) for arg in call.args]
    kwargs = {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords}
    assert URLSigner(dev_settings.dev_key, base_url=LOCAL).url(*args, **kwargs) == signed["url"]
    compile(signed["python"], "snippet", "exec")


def test_django_tags_give_the_urls_shown(dev: TestClient, dev_settings: Settings) -> None:
    pytest.importorskip("django")
    pytest.importorskip("thumbsvc.contrib.django.templatetags.thumbsvc")
    cases = [
        {"w": "300", "h": "200", "fit": "cover", "g": "smart", "f": "webp", "q": "80", "dpr": "2"},
        {"w": "300"},
        {"h": "120"},
        {},
        {"w": "64", "h": "64", "fit": "cover", "g": "focal", "fx": "0.123", "fy": "1"},
        {"w": "64", "h": "64", "fit": "pad", "bg": "#20232a80", "f": "png", "up": "1", "dpr": "1.5"},
        {"source": 'odd "name" \\ with: colon.jpg', "w": "10"},
    ]
    signed = [sign(dev, **case).json() for case in cases]
    # Django's settings are process-wide (and the contrib tests configure their own): render in a fresh process.
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
    payload = json.dumps([dev_settings.dev_key, LOCAL, [s["django"] for s in signed]])
    done = subprocess.run(
        [sys.executable, "-c", script], input=payload, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    rendered = json.loads(done.stdout)
    assert [text.strip() for text in rendered] == [s["url"] for s in signed]


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"w": "abc"}, "w", "width must be a whole number"),
        ({"w": "-5"}, "w", "width must be a whole number"),
        ({"w": "0"}, "w", "width must be an integer from 1 to 16384"),
        ({"fit": "squash"}, "fit", "fit must be one of contain, cover, fill, pad"),
        ({"g": "up"}, "g", "gravity must be one of"),
        ({"g": "focal", "fx": "1.5", "fy": "0"}, "fx", "focal x must be from 0 to 1, not '1.5'"),
        ({"g": "focal", "fx": "0", "fy": "nan"}, "fy", "focal y must be from 0 to 1, not 'nan'"),
        ({"g": "focal", "fx": "left", "fy": "0"}, "fx", "focal x must be a number"),
        ({"f": "bmp"}, "f", "format must be one of"),
        ({"q": "0"}, "q", "quality must be an integer from 1 to 100"),
        ({"dpr": "5"}, "dpr", "dpr must be from 1 to 4"),
        ({"bg": "red"}, "bg", "background must be '#rrggbb' or '#rrggbbaa'"),
        ({"w": "3000", "dpr": "2"}, "w", "at most 4096 px a side"),
        ({"h": "3000", "dpr": "2"}, "h", "at most 4096 px a side"),
        ({"source": ""}, "source", "choose a source image"),
    ],
)
def test_sign_refuses_a_bad_spec_with_the_reason(
    dev: TestClient, fields: dict[str, str], field: str, message: str
) -> None:
    response = dev.post("/_dev/sign", json={"source": "cat.jpg", "w": "100", **fields})
    assert response.status_code == 400
    answer = response.json()
    assert message in answer["error"]
    assert list(answer["errors"]) == [field]  # the script shows it next to this field, and only there
    assert message in answer["errors"][field]


def test_sign_names_every_bad_field_at_once(dev: TestClient) -> None:
    response = dev.post("/_dev/sign", json={"source": "cat.jpg", "w": "300", "fit": "squash", "q": "500"})
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert set(errors) == {"fit", "q"}
    assert errors["fit"] == "fit must be one of contain, cover, fill, pad, not 'squash'"
    assert errors["q"] == "quality must be an integer from 1 to 100, not 500"


def test_sign_takes_only_a_json_object(dev: TestClient) -> None:
    # A cross-site form can post text/plain without a preflight; JSON needs one, which nothing here answers.
    assert (
        dev.post("/_dev/sign", content=b'{"source": "cat.jpg"}', headers={"content-type": "text/plain"}).status_code
        == 415
    )
    form = dev.post("/_dev/sign", data={"source": "cat.jpg"})  # what a cross-site <form> could send
    assert (form.status_code, form.json()) == (415, {"error": "send the form as application/json"})
    assert dev.post("/_dev/sign", content=b'{"source": "cat.jpg"}').status_code == 415  # no Content-Type at all
    # JSON, but not a JSON object of fields: 400 with a message, and no field to mark.
    for body in (b"{", b"not json", b'["cat.jpg"]', b'"cat.jpg"'):
        refused = dev.post("/_dev/sign", content=body, headers={"content-type": "application/json"})
        assert refused.status_code == 400, body
        assert refused.json() == {"error": "send a JSON object of form fields"}, body
    assert dev.post("/_dev/sign", json={"source": "x" * 20_000}).status_code == 413
    assert dev.get("/_dev/sign").status_code in (403, 405)  # the thumbnail route takes GET: a bad signature


def test_grid_shows_every_fit_and_gravity(dev: TestClient) -> None:
    page = dev.get("/_dev/grid?source=craft-beer.jpg&w=48&h=48")
    assert page.status_code == 200
    assert page.headers.get_list("content-security-policy") == [playground.CSP]
    assert "<script" not in page.text
    cells = image_sources(page.text)
    assert len(cells) == 4 * 10
    sizes = {}
    for src in cells:
        response = dev.get(src)
        assert response.status_code == 200, src
        sizes[src] = decode(response.content).size
    assert sum(1 for src, size in sizes.items() if "fit:cover" in src and size == (48, 48)) == 10
    assert sum(1 for src, size in sizes.items() if "fit:pad" in src and size == (48, 48)) == 10
    assert sum(1 for src, size in sizes.items() if "fit:" not in src and size == (48, 32)) == 10  # contain
    assert len({src.split("/", 2)[2] for src in cells}) == 40  # 40 different specs
    with_focal = dev.get("/_dev/grid?source=craft-beer.jpg&w=48&h=48&g=focal&fx=0.1&fy=0.9").text
    assert len(image_sources(with_focal)) == 4 * 11
    assert '<th scope="row">focal point 0.1, 0.9</th>' in with_focal
    # A refused size is marked beside its field; the grid keeps its own size for it and still renders.
    refused = dev.get("/_dev/grid?source=craft-beer.jpg&w=0&h=48&q=500")
    assert refused.status_code == 200
    assert "width must be an integer from 1 to 16384, not 0" in element_text(refused.text, "w-error")
    assert "quality must be an integer from 1 to 100, not 500" in refused.text
    cells = image_sources(refused.text)
    assert len(cells) == 4 * 10 and all("/160x48/" in src for src in cells)


def test_static_files_are_served_with_their_types(dev: TestClient) -> None:
    script = dev.get("/_dev/static/playground.js")
    assert script.status_code == 200
    assert script.headers["content-type"] == "text/javascript; charset=utf-8"
    assert dev.get("/_dev/static/playground.css").headers["content-type"] == "text/css; charset=utf-8"
    assert dev.get("/_dev/static/nothing.js").status_code == 404
    assert dev.get("/_dev/static/..%2Fplayground.py").status_code in (403, 404)


def test_thumbnails_keep_the_service_policy(dev: TestClient) -> None:
    path = sign(dev, w="20").json()["path"]
    assert dev.get(path).headers.get_list("content-security-policy") == [SERVICE_CSP]
    assert dev.get("/healthz").headers.get_list("content-security-policy") == [SERVICE_CSP]


@pytest.mark.parametrize("host", ["evil.example", "127.0.0.1.nip.io", "10.0.0.8", "example.localhost.com"])
@pytest.mark.parametrize("path", ["/", "/_dev/grid", "/_dev/static/playground.js"])
def test_only_loopback_host_names_reach_the_playground(dev: TestClient, host: str, path: str) -> None:
    # A page on a rebound DNS name would otherwise reach the development key (DNS rebinding).
    assert dev.get(path, headers={"host": host}).status_code == 403
    assert dev.post("/_dev/sign", json={"source": "cat.jpg"}, headers={"host": host}).status_code == 403


@pytest.mark.parametrize("host", ["localhost:8000", "127.0.0.1", "127.1.2.3:80", "[::1]:8000", "app.localhost"])
def test_loopback_host_names_are_served(dev: TestClient, host: str) -> None:
    assert dev.get("/", headers={"host": host}).status_code == 200


def test_mounted_under_a_prefix() -> None:
    outer = Starlette(routes=[Mount("/img", app=create_app(Settings(render_slots=2)))])
    with TestClient(outer, base_url=LOCAL) as client:
        page = client.get("/img/").text
        assert 'href="/img/_dev/static/playground.css"' in page
        assert 'data-sign="/img/_dev/sign"' in page
        for src in image_sources(page):
            assert src.startswith("/img/")
            assert client.get(src).status_code == 200
        signed = client.post("/img/_dev/sign", json={"source": "cat.jpg", "w": "40"}).json()
        assert signed["path"].startswith("/img/")
        assert signed["url"] == LOCAL + signed["path"]
        assert 'base_url="http://127.0.0.1/img"' in signed["python"]
        assert decode(client.get(signed["path"]).content).width == 40


def test_with_a_key_there_is_no_playground() -> None:
    settings = Settings(keys=(TEST_KEY,), render_slots=2)
    assert playground.routes(Thumbnailer(settings), settings) == []
    with TestClient(create_app(settings), base_url=LOCAL) as client:
        index = client.get("/")
        assert index.status_code == 200
        assert index.headers["content-type"].startswith("text/plain")
        assert "<form" not in index.text
        assert index.headers.get_list("content-security-policy") == [SERVICE_CSP]
        for path in ("/_dev/sign", "/_dev/grid", "/_dev/static/playground.js", "/_dev/static/playground.css"):
            assert client.get(path).status_code in (403, 404), path
        response = client.post("/_dev/sign", json={"source": "cat.jpg", "w": "100"})
        assert response.status_code in (403, 404, 405)
        assert "path" not in response.text
