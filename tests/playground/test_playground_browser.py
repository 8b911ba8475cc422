"""The playground in a real browser: Debian's Chromium driven by Playwright against a real uvicorn on loopback.

Skipped when ``/usr/bin/chromium`` or the ``playwright`` package is missing (``.ci/run`` installs both).
Screenshots of every view go to ``test-artifacts/``; docs/playground.jpg is a copy of one of them.
"""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import uvicorn

from tests.helpers import REPO
from tests.playground.conftest import (
    HEIC_REASON,
    RED,
    UNDECODABLE,
    UNSUPPORTED,
    filters_settings,
    heif_registered,
    make_filters_root,
    make_unreadable_root,
)
from thumbsvc.app import create_app
from thumbsvc.config import Settings
from thumbsvc.playground import TIMES

CHROMIUM = "/usr/bin/chromium"
if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install -y chromium)", allow_module_level=True)
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install playwright)", exc_type=ImportError
)

ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = REPO / "test-artifacts"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
# Chromium logs a failed fetch as a console error; only the tests that provoke one allow it.
HTTP_400 = "400"
# A refused image: Chromium's console line ("status of 422 (...)") and our log of the response ("HTTP 422: url").
REFUSED_IMAGE = ("415", "422")


class Server(uvicorn.Server):
    """uvicorn that says when it is listening (an event, not a polled flag)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.listening = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self.listening.set()


@contextmanager
def serve(settings: Settings) -> Iterator[str]:
    """Run the app on a free loopback port in a thread; yield its origin."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(settings), log_config=None, access_log=False, lifespan="on")
    server = Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        if not server.listening.wait(timeout=20):
            pytest.fail("uvicorn did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        sock.close()


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """The embedded development default."""
    with serve(Settings(render_slots=2)) as origin:
        yield origin


@pytest.fixture(scope="module")
def unreadable_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A media root of files the service cannot render, and one good photo."""
    root = make_unreadable_root(tmp_path_factory.mktemp("unreadable") / "media")
    with serve(Settings(media_root=str(root), render_slots=2)) as origin:
        yield origin


@pytest.fixture(scope="module")
def filters_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A photo of four coloured quadrants and two watermarks the service defines (logo, stamp)."""
    root = make_filters_root(tmp_path_factory.mktemp("filters") / "media")
    with serve(filters_settings(root)) as origin:
        yield origin


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


@dataclass
class Tab:
    """A page and what it logged: console errors and warnings, page errors, requests that left the service."""

    page: Any
    origin: str
    problems: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def assert_clean(self, *allowed: str) -> None:
        problems = [p for p in self.problems if not any(text in p for text in allowed)]
        assert problems == []
        assert self.foreign == []

    def requests_for(self, path: str) -> int:
        return sum(1 for url in self.requests if urlsplit(url).path == urlsplit(path).path)


@pytest.fixture
def open_tab(browser: Any, server: str) -> Iterator[Any]:
    contexts = []

    def open_tab(viewport: dict[str, int] = DESKTOP, *, origin: str = server, script: bool = True) -> Tab:
        context = browser.new_context(viewport=viewport, base_url=origin, java_script_enabled=script)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(15_000)
        tab = Tab(page, origin)
        page.on(
            "console", lambda m: tab.problems.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None
        )
        page.on("pageerror", lambda exc: tab.problems.append(f"page error: {exc}"))
        page.on("requestfailed", lambda r: tab.problems.append(f"request failed: {r.url} {r.failure}"))
        page.on("response", lambda r: tab.problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)

        def check_request(request: Any) -> None:
            if not request.url.startswith((origin + "/", "blob:", "data:")):
                tab.foreign.append(request.url)
            tab.requests.append(request.url)

        page.on("request", check_request)
        return tab

    yield open_tab
    for context in contexts:
        context.close()


def screenshot(tab: Tab, name: str, *, full_page: bool = True) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    tab.page.screenshot(path=str(path), full_page=full_page)
    return path


def wait_for_thumbnail(tab: Tab, previous: str | None = None) -> str:
    """Wait until the script has shown a thumbnail (a new one if ``previous``); return its signed path."""
    tab.page.wait_for_function(
        """previous => document.body.dataset.state === "ready"
            && document.getElementById("thumb").dataset.url !== previous""",
        arg=previous or "",
    )
    url: str = tab.page.get_attribute("#thumb", "data-url")
    return url


def images(tab: Tab) -> list[dict[str, Any]]:
    tab.page.wait_for_function("Array.from(document.images).every(image => image.complete)")
    found: list[dict[str, Any]] = tab.page.eval_on_selector_all(
        "img", "all => all.map(i => ({alt: i.alt, src: i.src, w: i.naturalWidth, h: i.naturalHeight}))"
    )
    return found


def shown_url(tab: Tab) -> str:
    return str(tab.page.text_content("#url"))


def test_playground_loads_every_image_and_measures_the_thumbnail(open_tab: Any) -> None:
    tab = open_tab()
    tab.page.goto("/")
    path = wait_for_thumbnail(tab)
    assert shown_url(tab) == tab.origin + path
    assert "/480x320/fit:cover/cat.jpg" in path
    loaded = images(tab)
    assert len(loaded) == 3 + 2  # three sample tiles, the original, the thumbnail
    assert all(image["w"] > 0 and image["h"] > 0 for image in loaded), loaded
    thumb = next(image for image in loaded if image["alt"] == "Thumbnail of cat.jpg")
    assert (thumb["w"], thumb["h"]) == (480, 320)
    assert tab.page.text_content("#m-size") == f"480 {TIMES} 320 px"
    assert re.fullmatch(r"[\d.]+ KB \([\d,]+ B\)", str(tab.page.text_content("#m-bytes")))
    assert tab.page.text_content("#m-type") == "image/jpeg"
    assert re.match(r"\d+ ms", str(tab.page.text_content("#m-time")))
    assert tab.page.is_visible("button[data-copy=url]")
    assert not tab.page.is_visible("#error")
    screenshot(tab, "playground-desktop.png")
    tab.assert_clean()


def test_changing_a_control_updates_the_image_the_url_and_the_snippets(open_tab: Any) -> None:
    tab = open_tab()
    page = tab.page
    page.goto("/")
    path = wait_for_thumbnail(tab)

    page.select_option("#fit", "contain")
    path = wait_for_thumbnail(tab, path)
    assert "/480x320/cat.jpg" in path and shown_url(tab) == tab.origin + path
    natural = page.eval_on_selector("#thumb", "i => [i.naturalWidth, i.naturalHeight]")
    assert natural[1] == 320 and natural[0] < 480  # contain keeps the 4:3 source inside 480x320

    page.fill("#w", "200")
    path = wait_for_thumbnail(tab, path)
    assert "/200x320/cat.jpg" in path
    assert page.eval_on_selector("#thumb", "i => i.naturalWidth") == 200

    page.select_option("#f", "webp")
    path = wait_for_thumbnail(tab, path)
    assert "/200x320/f:webp/cat.jpg" in path
    assert page.text_content("#m-type") == "image/webp"

    page.select_option("#dpr", "2")
    path = wait_for_thumbnail(tab, path)
    assert "/200x320/f:webp/dpr:2/cat.jpg" in path
    assert page.eval_on_selector("#thumb", "i => i.naturalWidth") == 400
    assert page.eval_on_selector("#thumb", "i => i.getBoundingClientRect().width") == 200  # shown at CSS size
    assert page.text_content("#django") == (
        '{% load thumbsvc %}\n{% thumbnail_url "cat.jpg" 200 320 format="webp" dpr=2 %}'
    )
    assert 'signer.url("cat.jpg", width=200, height=320, format="webp", dpr=2)' in str(page.text_content("#python"))

    page.click(".strip a[data-source='japanese-shop.jpg']")
    path = wait_for_thumbnail(tab, path)
    assert path.endswith("/200x320/f:webp/dpr:2/japanese-shop.jpg")
    assert page.input_value("#source") == "japanese-shop.jpg"
    assert page.get_attribute(".strip a[data-source='japanese-shop.jpg']", "aria-current") == "true"
    assert "japanese-shop.jpg" in str(page.get_attribute("#original", "src"))

    # The address bar carries the state: a reload (no script needed) shows the same thumbnail.
    assert "f=webp" in page.url and "dpr=2" in page.url and "source=japanese-shop.jpg" in page.url
    page.reload()
    assert wait_for_thumbnail(tab) == path
    assert page.input_value("#f") == "webp"
    assert all(image["w"] > 0 for image in images(tab))
    tab.assert_clean()


def test_clicking_the_original_sets_the_focal_point(open_tab: Any) -> None:
    tab = open_tab()
    page = tab.page
    page.goto("/?source=japanese-shop.jpg&w=320&h=320&fit=cover&f=webp&q=80&dpr=2")
    path = wait_for_thumbnail(tab)
    assert not page.is_visible("#marker")
    assert page.is_disabled("#fx")
    box = page.locator("#original").bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.45)
    path = wait_for_thumbnail(tab, path)

    assert page.input_value("#g") == "focal"
    focal = re.search(r"/g:([\d.]+):([\d.]+)/", path)
    assert focal is not None, path
    assert abs(float(focal[1]) - 0.3) < 0.01 and abs(float(focal[2]) - 0.45) < 0.01
    assert page.input_value("#fx") == focal[1] and page.input_value("#fy") == focal[2]
    assert f'focal="{focal[1]},{focal[2]}"' in str(page.text_content("#django"))
    assert f"gravity=({focal[1]}, {focal[2]})" in str(page.text_content("#python"))
    marker = page.locator("#marker").bounding_box()
    assert page.is_visible("#marker")
    assert abs(marker["x"] + marker["width"] / 2 - (box["x"] + box["width"] * 0.3)) < 3
    assert abs(marker["y"] + marker["height"] / 2 - (box["y"] + box["height"] * 0.45)) < 3
    screenshot(tab, "playground-focal.png", full_page=False)
    # The README's picture (docs/playground.jpg is a copy of this file).
    tab.page.screenshot(path=str(ARTIFACTS / "playground.jpg"), type="jpeg", quality=85)

    # The same from the keyboard: focus the original, arrow keys move the point.
    page.focus("#focus-area")
    page.keyboard.press("ArrowRight")
    path = wait_for_thumbnail(tab, path)
    assert page.input_value("#fx") == str(round(float(focal[1]) + 0.05, 3))
    assert f"/g:{page.input_value('#fx')}:{focal[2]}/" in path
    assert all(image["w"] > 0 for image in images(tab))
    tab.assert_clean()


def test_first_load_requests_the_thumbnail_once(open_tab: Any) -> None:
    # A spec no other test asks for, so the service has not rendered it yet.
    tab = open_tab()
    page = tab.page
    page.goto("/?source=craft-beer.jpg&w=317&h=211&fit=cover&g=south-east")
    path = wait_for_thumbnail(tab)
    assert "/317x211/fit:cover/g:south-east/craft-beer.jpg" in path
    assert tab.requests_for(path) == 1  # before, the page's <img> and the script's fetch asked at once
    timing = str(page.text_content("#m-time"))
    assert timing.endswith("rendered now") and "render" in timing, timing
    assert "shared a render in flight" not in timing
    assert page.eval_on_selector("#thumb", "i => [i.naturalWidth, i.src.startsWith('blob:')]") == [317, True]

    page.reload()
    assert wait_for_thumbnail(tab) == path
    assert tab.requests_for(path) == 2  # one more for one more load
    assert str(page.text_content("#m-time")).endswith("from the service's cache")
    tab.assert_clean()


def test_without_script_the_page_shows_its_thumbnail_itself(open_tab: Any) -> None:
    tab = open_tab(script=False)
    page = tab.page
    page.goto("/?source=cat.jpg&w=123&h=77&fit=cover")
    shown = images(tab)
    noscript = [image for image in shown if "/123x77/fit:cover/cat.jpg" in image["src"]]
    assert len(noscript) == 1 and (noscript[0]["w"], noscript[0]["h"]) == (123, 77)
    assert all(image["w"] > 0 for image in shown if image["src"]), shown
    tab.assert_clean()


# The thumbnail's pixel at (x, y), read from the very bytes the page shows (a same-origin blob: image).
PIXEL = """([x, y]) => {
  const image = document.getElementById("thumb");
  const canvas = document.createElement("canvas");
  canvas.width = image.naturalWidth;
  canvas.height = image.naturalHeight;
  const context = canvas.getContext("2d");
  context.drawImage(image, 0, 0);
  return Array.from(context.getImageData(x, y, 1, 1).data.slice(0, 3));
}"""


def near(pixel: list[int], colour: tuple[int, int, int], tolerance: int = 16) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, colour, strict=True))


def test_changing_a_filter_control_updates_the_thumbnail(open_tab: Any, filters_server: str) -> None:
    tab = open_tab(origin=filters_server)
    page = tab.page
    page.goto("/?source=photo.jpg&w=240&h=160&f=png")
    path = wait_for_thumbnail(tab)
    assert page.eval_on_selector("#thumb", "i => [i.naturalWidth, i.naturalHeight]") == [213, 160]
    assert near(page.evaluate(PIXEL, [20, 20]), (220, 30, 30))  # the photo's red top-left quadrant

    # A quarter turn clockwise: the 4:3 photo stands up (120x160 in the box), red goes to the top right.
    page.select_option("#rot", "90")
    path = wait_for_thumbnail(tab, path)
    assert "/240x160/f:png/rot:90/photo.jpg" in path and shown_url(tab) == tab.origin + path
    assert page.eval_on_selector("#thumb", "i => [i.naturalWidth, i.naturalHeight]") == [120, 160]
    assert near(page.evaluate(PIXEL, [100, 20]), (220, 30, 30))
    assert near(page.evaluate(PIXEL, [20, 20]), (30, 30, 220))

    page.check("#gray")
    path = wait_for_thumbnail(tab, path)
    assert "/rot:90/gray:1/photo.jpg" in path
    red, green, blue = page.evaluate(PIXEL, [100, 20])
    assert red == green == blue and abs(red - 87) <= 4  # red's luma

    page.fill("#blur", "2.5")
    path = wait_for_thumbnail(tab, path)
    assert "/rot:90/gray:1/blur:2.5/photo.jpg" in path

    page.select_option("#wm", "logo")  # the service's own watermark: a red square, flush at the bottom right
    path = wait_for_thumbnail(tab, path)
    assert "/rot:90/gray:1/blur:2.5/wm:logo/photo.jpg" in path
    assert page.evaluate(PIXEL, [115, 155]) == list(RED)
    assert page.text_content("#django") == (
        '{% load thumbsvc %}\n{% thumbnail_url "photo.jpg" 240 160 format="png" rotate=90 grayscale=True'
        ' blur=2.5 watermark="logo" %}'
    )
    assert 'rotate=90,\n    grayscale=True,\n    blur=2.5,\n    watermark="logo",' in str(page.text_content("#python"))
    assert all(pair in page.url for pair in ("rot=90", "gray=1", "blur=2.5", "wm=logo"))

    # A bad filter value is marked beside its field and keeps the last thumbnail; fixing it clears the mark.
    page.fill("#sharp", "20")
    page.wait_for_selector("#sharp-error", state="visible")
    assert "sharpen must be from 0.3 to 10" in str(page.text_content("#sharp-error"))
    assert page.get_attribute("#sharp", "aria-invalid") == "true"
    assert "stale" in str(page.get_attribute("#thumb", "class"))
    page.fill("#sharp", "1")
    path = wait_for_thumbnail(tab, path)
    assert "/blur:2.5/sharp:1/wm:logo/photo.jpg" in path
    assert page.get_attribute("#sharp", "aria-invalid") is None
    screenshot(tab, "playground-filters.png")
    tab.assert_clean(HTTP_400)


def field_error(tab: Tab, name: str) -> str | None:
    box = tab.page.locator(f"#{name}-error")
    return str(box.text_content()) if box.is_visible() else None


def test_a_bookmarked_state_keeps_its_valid_values_and_marks_bad_ones(open_tab: Any) -> None:
    tab = open_tab()
    page = tab.page
    page.goto("/?source=cat.jpg&w=300&fit=squash&q=500")
    path = wait_for_thumbnail(tab)
    # The valid width is kept and a thumbnail of everything valid is shown.
    assert "/300x/cat.jpg" in path
    assert page.eval_on_selector("#thumb", "i => i.naturalWidth") == 300
    assert page.input_value("#w") == "300"
    assert field_error(tab, "fit") == "fit must be one of contain, cover, fill, pad, not 'squash'"
    assert field_error(tab, "q") == "quality must be an integer from 1 to 100, not 500"
    assert page.get_attribute("#fit", "aria-invalid") == "true"
    assert page.get_attribute("#q", "aria-invalid") == "true"
    assert field_error(tab, "w") is None and page.get_attribute("#w", "aria-invalid") is None
    assert "could not be used" in str(page.text_content("#error")) and page.is_visible("#error")
    # The error is described to assistive technology by the field it belongs to.
    assert page.evaluate("document.getElementById('q').getAttribute('aria-describedby')") == "q-error"
    screenshot(tab, "playground-refused.png")

    # Live: a bad value typed is marked at once, next to its field; the last thumbnail stays, dimmed.
    with page.expect_response(lambda response: response.url.endswith("/_dev/sign")) as signing:
        page.fill("#q", "500")
    assert signing.value.status == 400
    # The answer marks only what the form now holds: its fit is a valid one, so that mark goes.
    page.wait_for_selector("#fit-error", state="hidden")
    assert page.get_attribute("#fit", "aria-invalid") is None
    assert field_error(tab, "q") == "quality must be an integer from 1 to 100, not 500"
    assert page.get_attribute("#q", "aria-invalid") == "true"
    assert "stale" in str(page.get_attribute("#thumb", "class"))
    page.fill("#w", "5000")
    page.wait_for_selector("#w-error", state="visible")
    assert "at most 4096 px a side" in str(field_error(tab, "w"))

    # Fixing them clears every mark and shows the new thumbnail; the address bar then holds a valid state.
    page.fill("#w", "300")
    page.fill("#q", "80")
    path = wait_for_thumbnail(tab, path)
    assert "/300x/q:80/cat.jpg" in path
    assert field_error(tab, "q") is None and field_error(tab, "w") is None
    assert page.evaluate("document.querySelectorAll('[aria-invalid]').length") == 0
    assert not page.is_visible("#error")
    assert "stale" not in str(page.get_attribute("#thumb", "class"))
    assert "q=80" in page.url and "squash" not in page.url
    tab.assert_clean(HTTP_400)


TILES = """() => Array.from(document.querySelectorAll(".strip a")).map((a) => {
  const box = a.getBoundingClientRect();
  const inner = a.firstElementChild;
  return {
    source: a.dataset.source, broken: a.classList.contains("broken"), text: a.textContent.trim(),
    reason: a.querySelector(".tile-reason") ? a.querySelector(".tile-reason").textContent : null,
    label: a.title, x: box.x, y: box.y, w: box.width, h: box.height,
    overflows: inner.scrollHeight > inner.clientHeight + 1 || inner.scrollWidth > inner.clientWidth + 1,
    image: a.querySelector("img") ? a.querySelector("img").naturalWidth : null,
  };
})"""


def assert_tidy(tiles: list[dict[str, Any]]) -> None:
    """Every tile is one box of the strip's height; no two overlap; nothing spills out of its box."""
    assert {round(tile["h"]) for tile in tiles} == {70}, tiles  # 64 px and a 3 px border
    for tile in tiles:
        assert not tile["overflows"], tile
    for i, a in enumerate(tiles):
        for b in tiles[i + 1 :]:
            beside = a["x"] + a["w"] <= b["x"] or b["x"] + b["w"] <= a["x"]
            above = a["y"] + a["h"] <= b["y"] or b["y"] + b["h"] <= a["y"]
            assert beside or above, (a, b)


def test_files_the_service_cannot_render_get_tidy_tiles(open_tab: Any, unreadable_server: str) -> None:
    tab = open_tab(origin=unreadable_server)
    page = tab.page
    page.goto("/")
    wait_for_thumbnail(tab)
    # The cut-off JPEG's header is fine, so it gets an <img>; the script turns it into a tile with the reason.
    page.wait_for_selector(".strip a[data-source='4-cut.jpg'] .tile-reason")
    tiles = {tile["source"]: tile for tile in page.evaluate(TILES)}
    heic = UNSUPPORTED if heif_registered() else HEIC_REASON
    expected = {"0-phone.heic": heic, "1-notes.jpg": UNSUPPORTED, "2-empty.png": UNSUPPORTED, "4-cut.jpg": UNDECODABLE}
    if heif_registered():
        del expected["0-phone.heic"]  # with the plugin this file fails differently: only its tidiness is checked
    for source, reason in expected.items():
        assert tiles[source]["broken"] and tiles[source]["reason"] == reason, tiles[source]
        assert tiles[source]["label"] == f"{source}: {reason}"
        assert tiles[source]["image"] is None  # no broken <img> left
    assert not tiles["3-good.jpg"]["broken"] and tiles["3-good.jpg"]["image"] == 96
    assert_tidy(list(tiles.values()))
    # The good photo is the default: its thumbnail is shown; the page has no broken image anywhere.
    assert page.input_value("#source") == "3-good.jpg"
    assert all(image["w"] > 0 for image in images(tab))
    screenshot(tab, "playground-unreadable.png")

    # Choosing an unreadable file explains it in place of the original and says why there is no thumbnail.
    page.click(".strip a[data-source='1-notes.jpg']")
    page.wait_for_selector("#original-problem", state="visible")
    assert page.text_content("#original-problem") == UNSUPPORTED
    assert not page.is_visible("#original")
    page.wait_for_selector("#error", state="visible")
    assert f"415: {UNSUPPORTED}" in str(page.text_content("#error"))
    # ... and one whose header is fine but whose pixels are not: the original's own failure is explained.
    page.click(".strip a[data-source='4-cut.jpg']")
    page.wait_for_function(
        "text => document.getElementById('original-problem').textContent === text"
        " && !document.getElementById('original-problem').hidden",
        arg=UNDECODABLE,
    )
    assert not page.is_visible("#original")
    tab.assert_clean(*REFUSED_IMAGE)


def test_unreadable_tiles_stay_in_their_boxes_without_script(open_tab: Any, unreadable_server: str) -> None:
    tab = open_tab(origin=unreadable_server, script=False)
    page = tab.page
    page.goto("/")
    page.wait_for_function("Array.from(document.images).every(image => image.complete)")
    tiles = page.evaluate(TILES)
    cut = next(tile for tile in tiles if tile["source"] == "4-cut.jpg")
    assert cut["image"] == 0 and not cut["broken"]  # a broken image, as the server could not know ...
    assert_tidy(tiles)  # ... whose alt text stays inside its own box
    screenshot(tab, "playground-unreadable-noscript.png")
    tab.assert_clean(*REFUSED_IMAGE)


def test_grid_view_renders_every_fit_and_gravity(open_tab: Any) -> None:
    tab = open_tab()
    page = tab.page
    page.goto("/?source=craft-beer.jpg&w=300&h=200&fit=cover&g=focal&fx=0.2&fy=0.6")
    wait_for_thumbnail(tab)
    page.click("#nav-grid")
    page.wait_for_url(re.compile(r"/_dev/grid\?"))
    cells = images(tab)
    assert len(cells) == 4 * 11  # four fits; eight compass points, centre, smart and the focal point
    assert all(cell["w"] > 0 for cell in cells), cells
    fits = [cell for cell in cells if "/fit:" in cell["src"]]
    assert len(fits) == 3 * 11 and all((cell["w"], cell["h"]) == (160, 160) for cell in fits)
    assert page.locator("table.grid th[scope=col]").all_text_contents() == ["contain", "cover", "fill", "pad"]
    assert page.locator("table.grid th[scope=row]").count() == 11
    screenshot(tab, "grid-desktop.png")

    page.click("img[alt='cover, north-east']")
    path = wait_for_thumbnail(tab)
    assert "/160x160/fit:cover/g:north-east/craft-beer.jpg" in path
    assert page.input_value("#g") == "north-east"
    tab.assert_clean()


@pytest.mark.parametrize("view", ["/", "/_dev/grid?source=cat.jpg"])
def test_views_fit_a_phone_screen(open_tab: Any, view: str) -> None:
    tab = open_tab(PHONE)
    page = tab.page
    page.goto(view)
    if view == "/":
        wait_for_thumbnail(tab)
    assert all(image["w"] > 0 for image in images(tab))
    # Nothing wider than the screen: no sideways scrolling.
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    name = "playground-phone.png" if view == "/" else "grid-phone.png"
    screenshot(tab, name)
    tab.assert_clean()


CONTRAST = """() => {
  const rgb = (text) => text.match(/[\\d.]+/g).map(Number);
  const channel = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
  const luminance = ([r, g, b]) => 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
  const background = (element) => {
    for (; element; element = element.parentElement) {
      const colour = rgb(getComputedStyle(element).backgroundColor);
      if (colour.length < 4 || colour[3] > 0) return colour;
    }
    return [255, 255, 255];
  };
  const low = [];
  for (const element of document.querySelectorAll("body *")) {
    const text = Array.from(element.childNodes).some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!text || !element.getClientRects().length) continue;
    const [a, b] = [luminance(rgb(getComputedStyle(element).color)), luminance(background(element))];
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    const label = `${element.tagName}#${element.id} "${element.textContent.trim().slice(0, 30)}"`;
    if (ratio < 4.5) low.push(`${label} ${ratio.toFixed(2)}`);
  }
  return low;
}"""

UNLABELLED = """() => Array.from(document.querySelectorAll("input:not([type=hidden]), select, button, a, [tabindex]"))
  .filter((e) => !(e.labels && e.labels.length) && !e.getAttribute("aria-label")
    && !e.getAttribute("aria-labelledby") && !e.textContent.trim() && !e.querySelector("img[alt]"))
  .map((e) => e.outerHTML.slice(0, 80))"""


@pytest.mark.parametrize("view", ["/", "/?source=cat.jpg&w=300&fit=squash&q=500", "/_dev/grid?source=cat.jpg&w=0"])
def test_views_are_labelled_and_readable(open_tab: Any, view: str) -> None:
    tab = open_tab()
    page = tab.page
    page.goto(view)
    if not view.startswith("/_dev/"):
        wait_for_thumbnail(tab)
        page.select_option("#g", "focal")  # enable every control
    assert page.evaluate(UNLABELLED) == []
    assert page.evaluate(CONTRAST) == []  # WCAG AA for normal text
    assert page.locator("h1").count() == 1
    assert page.evaluate("document.documentElement.lang") == "en"
    # Keyboard: the first Tab reaches the skip link.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
    tab.assert_clean()
