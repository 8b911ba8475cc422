"""The example gallery in a real browser: placeholders are painted while the thumbnails are held back, then the images.

Django's runserver serves examples/django_site (its own settings, so in a subprocess) and the
real thumbsvc app runs under uvicorn in a thread, both on loopback. Chromium (Debian's, driven
by Playwright) loads the page while the test holds every thumbnail request; it checks what
the placeholders paint, then lets the thumbnails through. Skipped without /usr/bin/chromium
or playwright. Screenshots of both states go to test-artifacts/.
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from PIL import Image, ImageStat

from thumbsvc.app import create_app
from thumbsvc.config import SAMPLES_DIR, Settings
from thumbsvc.placeholders import thumbhash_average

CHROMIUM = "/usr/bin/chromium"
if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install -y chromium)", allow_module_level=True)
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install playwright)", exc_type=ImportError
)

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "examples" / "django_site"
KEY = "example-gallery-key"
ARTIFACTS = ROOT / "test-artifacts"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def service() -> Iterator[str]:
    """The real thumbsvc app with the example's key and the bundled samples, on a loopback port."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    app = create_app(Settings(keys=(KEY,), media_root=str(SAMPLES_DIR), render_slots=2))
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join(timeout=20)
    sock.close()


@pytest.fixture(scope="module")
def site(service: str) -> Iterator[str]:
    """``manage.py runserver`` of the example, signing URLs for the service above."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GALLERY_", "DJANGO_", "THUMBSVC_"))}
    env.update(GALLERY_THUMBSVC_URL=service, PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]))
    address = f"127.0.0.1:{free_port()}"
    process = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", "--noreload", address],
        cwd=SITE,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://{address}/"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                assert response.status == 200
                break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"runserver did not start: {process.communicate()[1].decode()[-2000:]}")
            time.sleep(0.2)
    yield url
    process.terminate()
    process.wait(timeout=20)
    assert process.stderr is not None
    process.stderr.close()


def element_pixels(element: Any) -> Image.Image:
    return Image.open(io.BytesIO(element.screenshot())).convert("RGB")


def mean_colour(image: Image.Image) -> list[float]:
    return [float(v) for v in ImageStat.Stat(image).mean]


def detail(image: Image.Image) -> float:
    """The largest standard deviation of a channel: 0 for a flat (or blank) picture."""
    return float(max(ImageStat.Stat(image).stddev))


def test_placeholders_are_painted_until_the_thumbnails_arrive(service: str, site: str) -> None:
    held: list[Any] = []
    released = threading.Event()

    def hold(route: Any) -> None:
        if released.is_set():
            route.continue_()
        else:
            held.append(route)

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 4000})  # every image in view (lazy loading)
            page.route(f"{service}/**", hold)
            page.goto(site, wait_until="domcontentloaded")
            images = page.locator("img[data-thumbhash]")
            assert images.count() == 12
            # The script paints every placeholder; the server wrote the images of the contain section itself.
            page.wait_for_function(
                "() => [...document.querySelectorAll('img[data-thumbhash]')]"
                ".every((img) => img.style.backgroundImage.startsWith('url(\"data:image/png'))",
                timeout=10_000,
            )
            assert held, "no thumbnail request was held"
            assert page.evaluate("() => [...document.images].filter((img) => img.naturalWidth > 0).length") == 0
            placeholders = []
            for index in range(images.count()):
                img = images.nth(index)
                shot = element_pixels(img)
                placeholders.append(shot)
                # Painted: not blank, not flat, and the colour of its hash.
                assert detail(shot) > 3, index
                expected = [255 * v for v in thumbhash_average(img.get_attribute("data-thumbhash") or "")[:3]]
                assert all(abs(a - b) < 40 for a, b in zip(mean_colour(shot), expected, strict=True)), index

            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=ARTIFACTS / "gallery-placeholders.png", full_page=True)
            released.set()
            for route in held:
                route.continue_()
            page.wait_for_function(
                "() => [...document.querySelectorAll('img[data-thumbhash]')]"
                ".every((img) => img.complete && img.naturalWidth > 0 && !img.style.backgroundImage)",
                timeout=30_000,
            )
            page.screenshot(path=ARTIFACTS / "gallery-loaded.png", full_page=True)
            for index in range(images.count()):
                img = images.nth(index)
                assert img.evaluate("(img) => getComputedStyle(img).backgroundColor") == "rgba(0, 0, 0, 0)"
                shot = element_pixels(img)
                difference = sum(
                    abs(a - b) for a, b in zip(mean_colour(shot), mean_colour(placeholders[index]), strict=True)
                )
                # The thumbnail has detail the 32-pixel placeholder cannot have.
                assert detail(shot) > detail(placeholders[index]) + 2 or difference > 5, index
        finally:
            browser.close()
