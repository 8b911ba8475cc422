"""The playground over HTTP: pages, signing, snippets that give the URL shown, and no playground with a key."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

from tests.helpers import TEST_KEY, decode
from tests.playground.conftest import LOCAL, element_text, image_sources
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
    assert 'id="fx" name="fx" type="number" min="0" max="1" step="0.001" inputmode="decimal" value="0.25">' in page
    assert 'id="up" name="up" type="checkbox" value="1" checked>' in page
    image = decode(dev.get(url.removeprefix(LOCAL)).content)
    assert (image.format, image.size) == ("PNG", (600, 600))
    assert image.convert("RGB").getpixel((0, 0)) == (0x11, 0x22, 0x33)  # padding in the background colour


def test_a_bad_query_shows_the_reason_and_the_defaults(dev: TestClient) -> None:
    page = dev.get("/?source=cat.jpg&w=wide&h=200")
    assert page.status_code == 200
    assert '<p id="error" class="error" role="alert">width must be a whole number' in page.text
    assert "/480x320/fit:cover/cat.jpg" in element_text(page.text, "url")


def test_any_image_in_the_media_root_is_offered(nested_root: Path) -> None:
    app = create_app(Settings(media_root=str(nested_root), render_slots=2))
    with TestClient(app, base_url=LOCAL) as client:
        page = client.get("/").text
        select = page.split('id="source" name="source">')[1].split("</select>")[0]
        # Sorted, subfolders included, hidden entries and non-images left out; the first is the default.
        assert re.findall(r'<option value="([^"]*)"', select) == ["shoots/2024/beach day.png", "top.jpg"]
        assert '<option value="shoots/2024/beach day.png" selected>' in select
        assert "beach%20day.png" in element_text(page, "url")
        signed = client.post("/_dev/sign", json={"source": "top.jpg", "w": "90", "h": "90", "fit": "cover"}).json()
        assert signed["source_info"] == f"300 {TIMES} 400 px · JPEG · " + signed["source_info"].split(" · ")[2]
        assert decode(client.get(signed["path"]).content).size == (90, 90)


def test_an_empty_media_root_says_so(tmp_path: Path) -> None:
    with TestClient(create_app(Settings(media_root=str(tmp_path), render_slots=2)), base_url=LOCAL) as client:
        page = client.get("/")
        assert page.status_code == 404
        assert page.text == "choose a source image (the media root has none)\n"
        assert client.get("/_dev/grid").status_code == 400


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
    ("fields", "message"),
    [
        ({"w": "abc"}, "width must be a whole number"),
        ({"w": "-5"}, "width must be a whole number"),
        ({"fit": "squash"}, "fit must be one of contain, cover, fill, pad"),
        ({"g": "up"}, "gravity must be one of"),
        ({"g": "focal", "fx": "1.5", "fy": "0"}, "a focal point is (x, y) with 0 <= x, y <= 1"),
        ({"g": "focal", "fx": "left", "fy": "0"}, "focal x must be a number"),
        ({"f": "bmp"}, "format must be one of"),
        ({"q": "0"}, "quality must be an integer from 1 to 100"),
        ({"dpr": "5"}, "dpr must be from 1 to 4"),
        ({"bg": "red"}, "background must be '#rrggbb' or '#rrggbbaa'"),
        ({"w": "3000", "dpr": "2"}, "at most 4096 px a side"),
        ({"source": ""}, "choose a source image"),
    ],
)
def test_sign_refuses_a_bad_spec_with_the_reason(dev: TestClient, fields: dict[str, str], message: str) -> None:
    response = dev.post("/_dev/sign", json={"source": "cat.jpg", "w": "100", **fields})
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_sign_takes_only_a_json_object(dev: TestClient) -> None:
    # A cross-site form can post text/plain without a preflight; JSON needs one, which nothing here answers.
    assert (
        dev.post("/_dev/sign", content=b'{"source": "cat.jpg"}', headers={"content-type": "text/plain"}).status_code
        == 415
    )
    assert dev.post("/_dev/sign", content=b"{", headers={"content-type": "application/json"}).status_code == 400
    assert dev.post("/_dev/sign", json=["cat.jpg"]).status_code == 400
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
    assert dev.get("/_dev/grid?w=0").status_code == 400


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
