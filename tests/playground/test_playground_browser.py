"""The playground in a real browser: Debian's Chromium driven by Playwright against a real uvicorn on loopback.

Skipped when ``/usr/bin/chromium`` or the ``playwright`` package is missing (``.ci/run`` installs both).
Screenshots of every view go to ``test-artifacts/``; docs/playground.png is one of them.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from tests.helpers import REPO
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
# Chromium logs a failed fetch as a console error; only the test that provokes one allows it.
HTTP_400 = "400"


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """The embedded development default on a free loopback port, in a thread."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(Settings(render_slots=2)), log_config=None, access_log=False, lifespan="on")
    uvicorn_server = uvicorn.Server(config)
    thread = threading.Thread(target=uvicorn_server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not uvicorn_server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("uvicorn did not start")
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    uvicorn_server.should_exit = True
    thread.join(timeout=20)
    sock.close()


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

    def assert_clean(self, allowed: str | None = None) -> None:
        problems = [p for p in self.problems if allowed is None or allowed not in p]
        assert problems == []
        assert self.foreign == []


@pytest.fixture
def open_tab(browser: Any, server: str) -> Iterator[Any]:
    contexts = []

    def open_tab(viewport: dict[str, int] = DESKTOP) -> Tab:
        context = browser.new_context(viewport=viewport, base_url=server)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(15_000)
        tab = Tab(page, server)
        page.on(
            "console", lambda m: tab.problems.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None
        )
        page.on("pageerror", lambda exc: tab.problems.append(f"page error: {exc}"))
        page.on("requestfailed", lambda r: tab.problems.append(f"request failed: {r.url} {r.failure}"))
        page.on("response", lambda r: tab.problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)

        def check_request(request: Any) -> None:
            if not request.url.startswith((server + "/", "blob:", "data:")):
                tab.foreign.append(request.url)

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


def test_a_refused_spec_is_explained_and_cleared(open_tab: Any) -> None:
    tab = open_tab()
    page = tab.page
    page.goto("/")
    path = wait_for_thumbnail(tab)
    page.fill("#w", "5000")
    page.wait_for_selector("#error", state="visible")
    assert "at most 4096 px a side" in str(page.text_content("#error"))
    assert "stale" in str(page.get_attribute("#thumb", "class"))
    page.fill("#w", "300")
    path = wait_for_thumbnail(tab, path)
    assert "/300x320/fit:cover/cat.jpg" in path
    assert not page.is_visible("#error")
    assert "stale" not in str(page.get_attribute("#thumb", "class"))
    tab.assert_clean(allowed=HTTP_400)


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


@pytest.mark.parametrize("view", ["/", "/_dev/grid?source=cat.jpg"])
def test_views_are_labelled_and_readable(open_tab: Any, view: str) -> None:
    tab = open_tab()
    page = tab.page
    page.goto(view)
    if view == "/":
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
