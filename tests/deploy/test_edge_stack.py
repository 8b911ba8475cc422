"""deploy/ for real: two ``thumbsvc serve`` processes behind HAProxy behind the nginx edge cache, on loopback.

The processes are started with the Dockerfile's start command from the Dockerfile's install; nginx and HAProxy
run deploy/'s own configuration files with only addresses and paths substituted.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.deploy.conftest import ImageInstall
from tests.deploy.stack import (
    NGINX_TEMPLATE,
    Stack,
    find_binary,
    free_port,
    nginx_main_config,
    render_template,
    start_stack,
)
from tests.helpers import TEST_KEY, corpus_path, decode
from thumbsvc.client import URLSigner
from thumbsvc.encoding import negotiate

pytestmark = pytest.mark.slow

NGINX = find_binary("nginx")
HAPROXY = find_binary("haproxy")
SAMPLES = Path(__file__).resolve().parents[2] / "thumbsvc" / "samples"
# A 6 MP camera photo: slow enough to render that 50 concurrent requests really overlap it.
CORPUS_PHOTO = "photos/sharp__2569067123_aca715a2ee_o.jpg"
ODD_NAME = "street at night + rain.jpg"


@pytest.fixture(scope="module")
def binaries() -> tuple[str, str]:
    if NGINX is None or HAPROXY is None:
        pytest.skip("nginx and haproxy are not installed (.ci/run installs Debian's)")
    return NGINX, HAPROXY


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bundled sample photo under three names, and a large corpus photo when the corpus is there."""
    root = tmp_path_factory.mktemp("media")
    sample = min(SAMPLES.glob("*.jpg"))
    shutil.copyfile(sample, root / "small.jpg")
    shutil.copyfile(sample, root / ODD_NAME)
    corpus = corpus_path()
    shutil.copyfile(corpus / CORPUS_PHOTO if corpus is not None else sample, root / "big.jpg")
    return root


@pytest.fixture(scope="module")
def stack_factory(
    binaries: tuple[str, str],
    image_install: ImageInstall,
    media: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[[], Stack]]:
    stacks: list[Stack] = []

    def factory() -> Stack:
        nginx, haproxy = binaries
        env = {
            **image_install.env,
            "THUMBSVC_KEY": TEST_KEY,
            "THUMBSVC_MEDIA_ROOT": str(media),
            "THUMBSVC_RENDER_SLOTS": "2",
        }
        argv = [image_install.executable(image_install.start_command[0]), *image_install.start_command[1:]]
        stack = start_stack(
            tmp_path_factory.mktemp("stack"), app_command=argv, app_env=env, nginx=nginx, haproxy=haproxy
        )
        stacks.append(stack)
        return stack

    yield factory
    for stack in stacks:
        stack.stop()


@pytest.fixture(scope="module")
def stack(stack_factory: Callable[[], Stack]) -> Stack:
    return stack_factory()


@pytest.fixture(scope="module")
def signer(stack: Stack) -> URLSigner:
    return URLSigner(TEST_KEY, stack.edge)


def test_first_request_misses_second_hits_without_a_render(stack: Stack, signer: URLSigner) -> None:
    url = signer.url("big.jpg", width=320, height=200, fit="cover")
    before, requests_before = stack.total_renders(), stack.origin_thumbnail_requests()
    with httpx.Client(timeout=30) as client:
        first = client.get(url)
        assert first.status_code == 200, stack.logs()
        assert first.headers["x-cache-status"] == "MISS"
        assert stack.total_renders() == before + 1
        assert stack.origin_thumbnail_requests() == requests_before + 1

        second = client.get(url)
        assert second.status_code == 200
        assert second.headers["x-cache-status"] == "HIT"
        assert stack.total_renders() == before + 1
        assert second.content == first.content
        assert second.headers["etag"] == first.headers["etag"]
        assert second.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert decode(second.content).size == (320, 200)

        revalidated = client.get(url, headers={"If-None-Match": first.headers["etag"]})
        assert revalidated.status_code == 304
        assert revalidated.headers["x-cache-status"] == "HIT"
        assert stack.total_renders() == before + 1
        # The edge answered both on its own: thumbsvc never saw them.
        assert stack.origin_thumbnail_requests() == requests_before + 1


def test_fifty_concurrent_cold_requests_render_once(stack: Stack, signer: URLSigner) -> None:
    url = signer.url("big.jpg", width=480, height=360, fit="cover", format="webp")
    before, requests_before = stack.total_renders(), stack.origin_thumbnail_requests()
    start = threading.Barrier(50, timeout=30)

    def fetch(client: httpx.Client) -> tuple[int, str, bytes]:
        start.wait()
        response = client.get(url)
        return response.status_code, response.headers.get("x-cache-status", ""), response.content

    limits = httpx.Limits(max_connections=50, max_keepalive_connections=50)
    with httpx.Client(timeout=60, limits=limits) as client, ThreadPoolExecutor(50) as pool:
        results = list(pool.map(lambda _: fetch(client), range(50)))

    assert [status for status, _, _ in results] == [200] * 50, stack.logs()
    assert len({body for _, _, body in results}) == 1
    assert decode(results[0][2]).size == (480, 360)
    statuses = sorted(cache for _, cache, _ in results)
    assert statuses.count("MISS") == 1, statuses
    assert stack.total_renders() == before + 1
    # Collapsed at the edge, not by thumbsvc's own single flight: one request reached a process.
    assert stack.origin_thumbnail_requests() == requests_before + 1


def test_f_auto_is_cached_per_accept_bucket(stack: Stack, signer: URLSigner) -> None:
    url = signer.url("small.jpg", width=200, format="auto")
    before, requests_before = stack.total_renders(), stack.origin_thumbnail_requests()
    browsers = {
        "avif": ["image/avif,image/webp,image/apng,image/*,*/*;q=0.8", "image/avif,image/webp,*/*"],
        "webp": ["image/webp,*/*", "image/avif;q=0,image/webp,image/png,image/*;q=0.8"],
        "jpeg": ["image/png,image/*;q=0.8,*/*;q=0.5", "*/*"],
    }
    with httpx.Client(timeout=30) as client:
        for expected, accepts in browsers.items():
            for number, accept in enumerate(accepts):
                response = client.get(url, headers={"Accept": accept})
                assert response.status_code == 200, stack.logs()
                assert response.headers["content-type"] == f"image/{expected}", accept
                assert response.headers["vary"] == "Accept"
                assert response.headers["x-cache-status"] == ("MISS" if number == 0 else "HIT"), accept
    assert stack.total_renders() == before + 3
    assert stack.origin_thumbnail_requests() == requests_before + 3


def test_errors_are_cached_briefly_or_not_at_all(stack: Stack, signer: URLSigner) -> None:
    missing = signer.url("no-such-photo.jpg", width=100)
    forged = missing.replace("/100x/", "/101x/")
    with httpx.Client(timeout=30) as client:
        first, second = client.get(missing), client.get(missing)
        assert (first.status_code, second.status_code) == (404, 404)
        assert second.headers["cache-control"] == "public, max-age=60"
        assert (first.headers["x-cache-status"], second.headers["x-cache-status"]) == ("MISS", "HIT")

        first, second = client.get(forged), client.get(forged)
        assert (first.status_code, second.status_code) == (403, 403)
        assert second.headers["cache-control"] == "no-store"
        assert second.headers["x-cache-status"] == "MISS"

        # A query string is refused by thumbsvc; the refusal is cached under its own key, not the clean URL's.
        clean = signer.url("big.jpg", width=64)
        assert client.get(clean + "?x=1").status_code == 400
        response = client.get(clean)
        assert response.status_code == 200
        assert response.headers["x-cache-status"] == "MISS"


def test_an_expiring_url_is_not_served_from_the_edge_after_its_time(stack: Stack, signer: URLSigner) -> None:
    # nginx keeps the thumbnail for the max-age thumbsvc capped at the URL's seconds left, then asks again
    # and gets the 410. Real time passes here: nginx's clock is the one that matters.
    expires = int(time.time()) + 3
    url = signer.url("small.jpg", width=150, expires=expires)
    with httpx.Client(timeout=30) as client:
        first = client.get(url)
        assert first.status_code == 200, stack.logs()
        assert first.headers["cache-control"] in {f"public, max-age={n}" for n in range(4)}
        assert "immutable" not in first.headers["cache-control"] and "expires" in first.headers
        second = client.get(url)
        assert (second.status_code, second.headers["x-cache-status"]) == (200, "HIT")
        time.sleep(max(0.0, expires + 1.2 - time.time()))
        after = client.get(url)
        assert after.status_code == 410, after.headers
        assert after.text == "This thumbnail URL has expired\n"
        again = client.get(url)  # the refusal itself may be kept briefly, never the image
        assert again.status_code == 410


def test_raw_path_reaches_thumbsvc_unchanged(stack: Stack, signer: URLSigner) -> None:
    # The signature covers the exact path bytes: nginx must pass percent-escapes through undecoded.
    url = signer.url(ODD_NAME, width=90)
    assert "%20" in url and "%2B" in url
    with httpx.Client(timeout=30) as client:
        response = client.get(url)
        assert response.status_code == 200, stack.logs()
        assert decode(response.content).width == 90
        # The same path decoded, or with a doubled slash, is another URL and its signature does not hold.
        assert client.get(url.replace("%20", "+")).status_code in (400, 403)
        assert client.get(url.replace("/90x/", "//90x/")).status_code in (400, 403)


ACCEPT_HEADERS = [
    "",
    "*/*",
    "image/*",
    "image/avif",
    "IMAGE/AVIF",
    "image/avif;q=0",
    "image/avif; q=0.0, image/webp",
    "image/avif;Q=0,image/webp;q=0.000",
    "image/avif;q=0.5",
    "image/avif;q=0.01,image/webp",
    "image/avif;level=1;q=0,image/webp;q=0.2",
    "image/avifx,image/webpx",
    "image/webp",
    "image/webp;q=0, image/png",
    "image/png,image/webp;q=0.8,*/*;q=0.5",
    "text/html,application/xhtml+xml,image/avif,image/webp,*/*;q=0.8",
    "image/jxl,image/avif,image/webp,image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5",
    "image/webp,image/avif;q=0",
]


def test_edge_accept_buckets_agree_with_thumbsvc_negotiation(
    binaries: tuple[str, str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    # The edge decides which cached variant an f:auto request gets; it must pick what thumbsvc would.
    nginx, _ = binaries
    workdir = tmp_path_factory.mktemp("buckets")
    port, probe_port = free_port(), free_port()
    include = workdir / "thumbsvc.conf"
    include.write_text(
        render_template(
            NGINX_TEMPLATE.read_text(),
            {
                "NGINX_PORT": f"127.0.0.1:{port}",
                "THUMBSVC_UPSTREAM": f"127.0.0.1:{free_port()}",  # never dialled
                "NGINX_CACHE_DIR": str(workdir / "cache"),
                "NGINX_CACHE_MAX_SIZE": "10m",
            },
        )
    )
    probe = (
        f"    server {{ listen 127.0.0.1:{probe_port}; location / {{ default_type text/plain; "
        'return 200 "$thumbsvc_accept_bucket|$thumbsvc_upstream_accept"; } }\n'
    )
    main = workdir / "nginx.conf"
    main.write_text(nginx_main_config(workdir, include, extra=probe))
    stack = Stack(workdir)
    stack.start("nginx", [nginx, "-p", str(workdir), "-e", str(workdir / "nginx-error.log"), "-c", str(main)], {})
    try:
        base = f"http://127.0.0.1:{probe_port}"
        stack.wait_until("nginx", lambda: httpx.get(f"{base}/", timeout=1).status_code == 200)
        with httpx.Client(base_url=base, timeout=10) as client:
            for accept in ACCEPT_HEADERS:
                auto = client.get("/SIG/300x/f:auto/a.jpg", headers={"Accept": accept}).text
                bucket, upstream_accept = auto.split("|")
                assert bucket == (negotiate(accept) or "other"), accept
                # The origin is asked with the bucket's canonical header, which negotiates to the same.
                assert negotiate(upstream_accept) == negotiate(accept), accept
                plain = client.get("/SIG/300x/f:webp/a.jpg", headers={"Accept": accept}).text
                assert plain == f"|{accept}", accept  # not f:auto: no bucket, Accept passed as it came
    finally:
        stack.stop()


@dataclass
class Outcome:
    started: float
    ended: float
    status: int | None
    error: str = ""


def test_killing_one_process_loses_no_request_after_haproxy_notices(
    stack_factory: Callable[[], Stack], media: Path
) -> None:
    stack = stack_factory()
    signer = URLSigner(TEST_KEY, stack.edge)
    outcomes: list[Outcome] = []
    lock = threading.Lock()
    stop = threading.Event()
    widths = iter(range(40, 4000))

    def driver() -> None:
        # Each request is a new thumbnail, so each one passes the edge cache and reaches a thumbsvc process.
        with httpx.Client(timeout=30) as client:
            while not stop.is_set():
                with lock:
                    width = next(widths)
                url = signer.url("small.jpg", width=width)
                started = time.monotonic()
                try:
                    status: int | None = client.get(url).status_code
                    error = ""
                except httpx.TransportError as exc:
                    status, error = None, repr(exc)
                with lock:
                    outcomes.append(Outcome(started, time.monotonic(), status, error))

    threads = [threading.Thread(target=driver) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.0)
        survivor_before = stack.renders(1)
        killed_at = time.monotonic()
        stack.kill_app(0)
        stack.wait_until("HAProxy to mark the killed process DOWN", lambda: stack.server_states()["thumbsvc1"] != "UP")
        noticed_at = time.monotonic()
        time.sleep(1.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)

    after_notice = [o for o in outcomes if o.started >= noticed_at]
    after_kill = [o for o in outcomes if o.started >= killed_at]
    in_flight = [o for o in outcomes if o.started < killed_at < o.ended]
    assert len(after_notice) >= 10, f"too few requests after HAProxy noticed: {len(after_notice)}"
    assert [o for o in after_notice if o.status != 200] == [], stack.logs()
    # Retries with redispatch cover the gap between the kill and HAProxy noticing it (and even the requests
    # in flight at the kill, sent again on an empty response): nothing started after the kill fails.
    assert [o for o in after_kill if o.status != 200] == [], f"noticed after {noticed_at - killed_at:.2f} s"
    assert len(in_flight) <= 4
    assert all(o.status == 200 for o in outcomes if o.ended < killed_at)
    # The survivor did the work.
    assert stack.renders(1) >= survivor_before + len([o for o in after_notice if o.status == 200])
    response = httpx.get(signer.url("small.jpg", width=33), timeout=30)
    assert response.status_code == 200
    assert decode(response.content).width == 33
