"""Hostile origins and files against the render path: what one request can make a process spend is bounded.

Each test is a class of attack from the hardening work: a stalled origin must tie up only its own
fetches (never a render slot, never readiness); a render past its deadline is abandoned; a tiny file
declaring a huge canvas is refused before decoding; a costly bad file is decoded once, not on every
request. Origins are real servers on loopback; files are made by the tests.
"""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import anyio.abc
import httpx
import pytest
from PIL import Image
from starlette.applications import Starlette
from starlette.testclient import TestClient

from tests.helpers import REPO, TEST_KEY, decode, make_photo
from tests.live import sample, serve_in_thread
from tests.origin import LoopbackOnlyBackend, OriginHandler, OriginServer, body
from thumbsvc.app import create_app
from thumbsvc.client import URLSigner
from thumbsvc.config import Settings
from thumbsvc.sources import Sources
from thumbsvc.sources.http import HttpSource

MB = 1_000_000


def loopback_app(settings: Settings) -> Starlette:
    """The app with the network edge for tests: the same loader, sockets to loopback only."""
    app = create_app(settings)
    thumbnailer = app.state.thumbnailer
    thumbnailer.sources = Sources(
        thumbnailer.sources.local,
        HttpSource(thumbnailer.sources.remote.policy, network_backend=LoopbackOnlyBackend()),
        gate=thumbnailer.sources.gate,
    )
    return app


def webp_canvas_bomb(width: int = 7000, height: int = 7000, frames: int = 3) -> bytes:
    """An animated WebP of a few 1x1 frames on a huge canvas: under 200 bytes, and libwebp's decoder
    allocates the whole canvas (twice) for it."""
    buffer = io.BytesIO()
    Image.new("RGBA", (1, 1), (255, 0, 0, 255)).save(buffer, "WEBP", lossless=True)
    vp8l = buffer.getvalue()[12:]  # the one VP8L chunk after RIFF....WEBP

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return kind + struct.pack("<I", len(payload)) + payload + (b"\0" if len(payload) & 1 else b"")

    def u24(value: int) -> bytes:
        return struct.pack("<I", value)[:3]

    header = chunk(b"VP8X", bytes([0x12]) + b"\0\0\0" + u24(width - 1) + u24(height - 1))
    anim = chunk(b"ANIM", b"\0\0\0\0" + struct.pack("<H", 0))
    anmf = b"".join(chunk(b"ANMF", u24(0) + u24(0) + u24(0) + u24(0) + u24(100) + b"\0" + vp8l) for _ in range(frames))
    riff = b"WEBP" + header + anim + anmf
    return b"RIFF" + struct.pack("<I", len(riff)) + riff


def animated_gif(frames: int, size: tuple[int, int]) -> bytes:
    images = [Image.effect_noise(size, 40 + index).convert("RGB") for index in range(frames)]
    buffer = io.BytesIO()
    images[0].save(buffer, "GIF", save_all=True, append_images=images[1:], duration=40, loop=0)
    return buffer.getvalue()


# -- a stalled origin ------------------------------------------------------------------------


class Stall:
    """An origin route that sends its headers and the first part of a JPEG, then waits until released."""

    def __init__(self, jpeg: bytes) -> None:
        self.jpeg = jpeg
        self.released = threading.Event()
        self.arrived = 0
        self.lock = threading.Lock()

    def __call__(self, handler: OriginHandler) -> None:
        with self.lock:
            self.arrived += 1
        handler.send_response(200)
        handler.send_header("Content-Type", "image/jpeg")
        handler.send_header("Content-Length", str(len(self.jpeg)))
        handler.end_headers()
        handler.wfile.write(self.jpeg[:1000])
        handler.wfile.flush()
        self.released.wait(30)
        handler.wfile.write(self.jpeg[1000:])


@pytest.fixture
def stalled_world(
    settings_factory: Callable[..., Settings],
) -> Iterator[tuple[str, OriginServer, OriginServer, Stall, URLSigner]]:
    jpeg = make_photo((640, 480))
    stall = Stall(jpeg)
    with OriginServer("127.0.0.2") as origin, OriginServer("127.0.0.3") as other:
        for index in range(12):
            origin.route(f"/stall/{index}.jpg", stall)
        other.route("/fine.jpg", body(jpeg))
        settings = settings_factory(
            allowed_sources=(origin.url("/"), other.url("/")),
            allow_private_networks=("127.0.0.2/32", "127.0.0.3/32"),
            fetch_concurrency=4,
            fetch_concurrency_per_host=2,
            queue_timeout_s=0.5,
            fetch_timeout_s=20,
            render_slots=2,
            queue_size=2,
        )
        app = loopback_app(settings)
        with serve_in_thread(app) as base:
            try:
                yield base, origin, other, stall, URLSigner(key=TEST_KEY)
            finally:
                stall.released.set()


def test_a_stalled_origin_ties_up_only_its_own_fetches(
    stalled_world: tuple[str, OriginServer, OriginServer, Stall, URLSigner],
) -> None:
    base, origin, _, stall, signer = stalled_world
    stalled = [signer.path(origin.url(f"/stall/{index}.jpg"), width=100) for index in range(12)]
    local = [signer.path("photos/landscape.jpg", width=w) for w in range(100, 110)]
    results: dict[str, tuple[int, float]] = {}

    async def get(client: httpx.AsyncClient, path: str) -> None:
        started = time.monotonic()
        response = await client.get(path)
        results[path] = (response.status_code, time.monotonic() - started)

    async def traffic(client: httpx.AsyncClient, tg: anyio.abc.TaskGroup) -> None:
        for path in stalled:
            tg.start_soon(get, client, path)
        with anyio.fail_after(10):
            while stall.arrived < 2:
                await anyio.sleep(0.01)
        # Two fetches hang at the origin, eight wait for their turn: local thumbnails and readiness
        # are untouched, because no download holds a render slot or a queue place.
        for path in local:
            response = await client.get(path)
            assert response.status_code == 200
            assert decode(response.content).width in range(100, 110)
        assert (await client.get("/readyz")).status_code == 200
        with anyio.fail_after(10):
            while sum(1 for path in stalled if path in results) < 10:
                await anyio.sleep(0.01)
        stall.released.set()

    async def main() -> None:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            async with anyio.create_task_group() as tg:
                await traffic(client, tg)
            metrics = (await client.get("/metrics")).text
        assert sample(metrics, "thumbsvc_rejected_total", reason="fetch_host_full") == 2
        assert sample(metrics, "thumbsvc_rejected_total", reason="fetch_wait") == 8
        assert sample(metrics, "thumbsvc_renders_total") == len(local) + 2

    anyio.run(main)
    statuses = sorted(status for status, _ in (results[path] for path in stalled))
    assert statuses == [200, 200] + [503] * 10
    # The two beyond every place were refused at once; the eight that waited, after the queue deadline.
    refused = sorted(seconds for status, seconds in (results[path] for path in stalled) if status == 503)
    assert refused[0] < 0.4
    assert all(seconds < 5 for seconds in refused)
    assert stall.arrived == 2  # nothing beyond the per-host limit reached the origin


def test_other_origins_keep_their_own_fetches(
    stalled_world: tuple[str, OriginServer, OriginServer, Stall, URLSigner],
) -> None:
    base, origin, other, stall, signer = stalled_world

    async def main() -> None:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client, anyio.create_task_group() as tg:
            for index in range(2):
                tg.start_soon(client.get, signer.path(origin.url(f"/stall/{index}.jpg"), width=80))
            with anyio.fail_after(10):
                while stall.arrived < 2:
                    await anyio.sleep(0.01)
            # The stalled host has taken its own share of the fetches, not everybody's.
            response = await client.get(signer.path(other.url("/fine.jpg"), width=90))
            assert response.status_code == 200
            assert decode(response.content).width == 90
            stall.released.set()

    anyio.run(main)


def test_a_full_render_queue_refuses_before_fetching_or_probing(
    settings_factory: Callable[..., Settings],
) -> None:
    """Under overload a request is refused before it costs a fetch or a header probe: the origin
    never hears of it, and the refusal comes at once."""
    jpeg = make_photo((640, 480))
    with OriginServer("127.0.0.2") as origin:
        origin.route("/photo.jpg", body(jpeg))
        settings = settings_factory(
            allowed_sources=(origin.url("/"),),
            allow_private_networks=("127.0.0.2/32",),
            render_slots=1,
            queue_size=1,
        )
        app = loopback_app(settings)
        thumbnailer = app.state.thumbnailer
        signer = URLSigner(key=TEST_KEY)
        release = threading.Event()
        with TestClient(app) as client:
            # Two renders hold the one slot and the one queue place.
            held = [client.portal.start_task_soon(thumbnailer.admission.run, release.wait, 10) for _ in range(2)]
            deadline = time.monotonic() + 10
            while thumbnailer.admission.admitted < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            started = time.monotonic()
            response = client.get(signer.path(origin.url("/photo.jpg"), width=120))
            refused_after = time.monotonic() - started
            release.set()
            for future in held:
                future.result(timeout=10)
            assert response.status_code == 503
            assert response.headers["retry-after"] == "1"
            assert refused_after < 1
            assert origin.seen == []  # nothing was fetched for it
            assert sample(client.get("/metrics").text, "thumbsvc_rejected_total", reason="queue_full") == 1
            # With the queue free again the same thumbnail renders.
            again = client.get(signer.path(origin.url("/photo.jpg"), width=120))
            assert again.status_code == 200
            assert decode(again.content).width == 120


# -- the render deadline -----------------------------------------------------------------------


def test_a_render_past_its_deadline_is_abandoned_with_503(
    client_factory: Callable[..., object], signer: URLSigner, put: Callable[[str, bytes], str]
) -> None:
    source = put("long.gif", animated_gif(60, (400, 300)))
    path = signer.path(source, width=300, format="webp")
    whole = client_factory(render_timeout_s=60)
    response = whole.get(path)  # type: ignore[attr-defined]
    assert response.status_code == 200
    full_s = sample(whole.get("/metrics").text, "thumbsvc_render_seconds_sum")  # type: ignore[attr-defined]
    client = client_factory(render_timeout_s=0.05)
    response = client.get(path)  # type: ignore[attr-defined]
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.headers["cache-control"] == "no-store"
    text = client.get("/metrics").text  # type: ignore[attr-defined]
    assert sample(text, "thumbsvc_rejected_total", reason="render_timeout") == 1
    # Abandoned between frames: it spent a fraction of what the whole render costs.
    assert sample(text, "thumbsvc_render_seconds_sum") < full_s / 2


# -- memory -------------------------------------------------------------------------------------

PROBE = """
import json, sys, time, resource
from pathlib import Path
from starlette.testclient import TestClient
from thumbsvc.app import create_app
from thumbsvc.client import URLSigner
from thumbsvc.config import Settings

def rss():
    with open("/proc/self/status") as handle:
        return next(int(line.split()[1]) * 1024 for line in handle if line.startswith("VmHWM:"))

root, name, key = sys.argv[1:4]
options = json.loads(sys.argv[4])
settings = Settings(keys=(key,), media_root=root, render_slots=1, **json.loads(sys.argv[5]))
with TestClient(create_app(settings)) as client:
    warm = client.get(URLSigner(key=key).path("warm.png", width=10))
    assert warm.status_code == 200, warm.text
    Path("/proc/self/clear_refs").write_text("5")
    before, cpu = rss(), time.process_time()
    response = client.get(URLSigner(key=key).path(name, **options))
    print(json.dumps({"status": response.status_code, "text": response.text,
                      "growth": rss() - before, "cpu": time.process_time() - cpu}))
"""


def probe(
    root: Path, name: str, options: dict[str, object], settings: dict[str, object] | None = None
) -> dict[str, object]:
    """Request ``name`` from a fresh process; return its status, body, peak RSS growth and CPU seconds."""
    buffer = io.BytesIO()
    Image.new("RGB", (20, 20)).save(buffer, "PNG")
    (root / "warm.png").write_bytes(buffer.getvalue())
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(root), name, TEST_KEY, json.dumps(options), json.dumps(settings or {})],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def test_a_tiny_file_declaring_a_huge_canvas_is_refused_before_decoding(tmp_path: Path) -> None:
    # A 188-byte animated WebP whose 7000x7000 canvas took a process to 787 MB and answered 200.
    bomb = webp_canvas_bomb()
    assert len(bomb) < 200
    (tmp_path / "bomb.webp").write_bytes(bomb)
    result = probe(tmp_path, "bomb.webp", {"width": 300})
    assert result["status"] == 413
    assert result["text"] == "Image too large to render at this size\n"
    assert int(result["growth"]) < 30 * MB  # type: ignore[call-overload]
    assert float(result["cpu"]) < 1.0  # type: ignore[arg-type]


def test_the_hard_ceiling_is_a_setting(
    client_factory: Callable[..., object], signer: URLSigner, put: Callable[[str, bytes], str]
) -> None:
    source = put("wide.png", make_photo((3000, 2000), fmt="PNG"))
    path = signer.path(source, width=600)
    assert client_factory().get(path).status_code == 200  # type: ignore[attr-defined]
    small = client_factory(max_render_memory=10 * MB)
    response = small.get(path)  # type: ignore[attr-defined]
    assert response.status_code == 413
    assert response.headers["cache-control"] == "public, max-age=60"
    assert sample(small.get("/metrics").text, "thumbsvc_decodes_total") == 0  # type: ignore[attr-defined]


# -- refusals are remembered ----------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_costly_bad_file_is_decoded_once(
    settings_factory: Callable[..., Settings], signer: URLSigner, put: Callable[[str, bytes], str]
) -> None:
    whole = make_photo((3000, 2000))
    source = put("cut.jpg", whole[: len(whole) * 3 // 4])  # decodes most of the way, then fails
    clock = Clock()
    app = create_app(settings_factory(refusal_cache_ttl_s=60), clock=clock)
    from starlette.testclient import TestClient

    with TestClient(app) as client:
        path = signer.path(source, width=400)
        for _ in range(5):
            response = client.get(path)
            assert response.status_code == 422
            assert response.text == "Source image could not be decoded\n"
        text = client.get("/metrics").text
        assert sample(text, "thumbsvc_decodes_total") == 1
        assert sample(text, "thumbsvc_cache_hits_total", cache="refusal") == 4
        clock.now += 61  # the memory is short: a fixed file is served again
        assert client.get(path).status_code == 422
        assert sample(client.get("/metrics").text, "thumbsvc_decodes_total") == 2


def test_a_source_refused_by_its_header_is_refused_for_every_size(
    settings_factory: Callable[..., Settings], signer: URLSigner, put: Callable[[str, bytes], str]
) -> None:
    source = put("notes.png", b"these are not the pixels you are looking for" * 100)
    from starlette.testclient import TestClient

    with TestClient(create_app(settings_factory())) as client:
        statuses = [client.get(signer.path(source, width=width)).status_code for width in (100, 200, 300)]
        text = client.get("/metrics").text
    assert statuses == [415, 415, 415]
    assert sample(text, "thumbsvc_cache_hits_total", cache="refusal") == 2  # the header was read once


def test_refusals_can_be_turned_off(
    client_factory: Callable[..., object], signer: URLSigner, put: Callable[[str, bytes], str]
) -> None:
    source = put("notes.png", b"not an image")
    client = client_factory(refusal_cache_ttl_s=0)
    for _ in range(3):
        assert client.get(signer.path(source, width=100)).status_code == 415  # type: ignore[attr-defined]
    text = client.get("/metrics").text  # type: ignore[attr-defined]
    assert sample(text, "thumbsvc_cache_hits_total", cache="refusal") == 0
