"""The example gallery's page as Chromium lays it out: thumbnails in rows, sections side by side where there is room.

Its stylesheet once made every thumbnail outside the cards a block of its own, so each section was
one column of images down the page. The page is rendered by the example's Django project, its
images served by a real thumbsvc on loopback, and measured in Debian's Chromium (skipped without it).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.contrib.test_example_site import KEY, RENDER, ROOT, SITE
from tests.live import serve_in_thread
from thumbsvc.app import create_app
from thumbsvc.config import SAMPLES_DIR, Settings

CHROMIUM = "/usr/bin/chromium"
if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install -y chromium)", allow_module_level=True)
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install playwright)", exc_type=ImportError
)
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]

# Where each section and each of its thumbnails is drawn (their <img>, or a <picture>'s).
MEASURE = """() => [...document.querySelectorAll("section")].map(section => ({
    box: section.getBoundingClientRect().toJSON(),
    images: [...section.querySelectorAll(":scope > img, :scope > picture, figure")]
        .map(image => image.getBoundingClientRect().toJSON()),
}))"""


@pytest.fixture(scope="module")
def page_html() -> Iterator[str]:
    """The gallery page, its thumbnail URLs pointing at a live thumbsvc."""
    app = create_app(Settings(keys=(KEY,), media_root=str(SAMPLES_DIR), render_slots=2))
    with serve_in_thread(app) as base:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GALLERY_", "DJANGO_"))}
        env.update(DJANGO_SETTINGS_MODULE="gallery_site.settings", GALLERY_THUMBSVC_URL=base)
        env["PYTHONPATH"] = os.pathsep.join([str(SITE), str(ROOT), env.get("PYTHONPATH", "")])
        done = subprocess.run(
            [sys.executable, "-c", RENDER], cwd=SITE, env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        yield done.stdout


def layout(html: str, width: int) -> tuple[list[dict[str, Any]], int]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": 900})
            page.set_content(html, wait_until="load")
            # Lazy images below the fold load only when scrolled to: load them all, so every thumbnail
            # is measured at its own size (an image not yet loaded is 0x0 and fits anywhere).
            page.evaluate("document.querySelectorAll('img').forEach(image => { image.loading = 'eager'; })")
            page.wait_for_function("[...document.images].every(image => image.complete && image.naturalWidth > 0)")
            return page.evaluate(MEASURE), page.evaluate("document.documentElement.scrollWidth")
        finally:
            browser.close()


def rows(boxes: list[dict[str, float]]) -> int:
    return len({round(box["top"]) for box in boxes})


def test_on_a_wide_screen_thumbnails_sit_in_rows_and_sections_side_by_side(page_html: str) -> None:
    sections, scroll_width = layout(page_html, 1280)
    cards, squares, whole, formats = sections
    assert scroll_width <= 1280
    for section in (squares, whole, formats):
        assert len(section["images"]) == 4
        assert all(image["width"] > 0 for image in section["images"]), section
        assert rows(section["images"]) < 4, section  # not one thumbnail per line
    assert rows(cards["images"]) < 4
    # Two sections share a row; the cards span the page above them.
    assert round(squares["box"]["top"]) == round(whole["box"]["top"])
    assert squares["box"]["right"] <= whole["box"]["left"]
    assert cards["box"]["width"] > squares["box"]["width"] + whole["box"]["width"]


def test_on_a_phone_the_sections_follow_each_other_within_the_screen(page_html: str) -> None:
    sections, scroll_width = layout(page_html, 390)
    assert scroll_width <= 390
    tops = [section["box"]["top"] for section in sections]
    assert tops == sorted(tops) and len(set(tops)) == 4
    assert rows(sections[1]["images"]) < 4  # the 160 px squares still go two by two
