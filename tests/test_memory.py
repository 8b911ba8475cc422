"""The render memory estimate (thumbsvc/memory.py) and the memory budget it feeds.

The estimate is checked three ways: as a pure function (where the bytes go, by format), against
the peak resident-set growth of real renders of large PNG and WebP sources in fresh processes,
and through the running app: with a small budget, two large sources never render at once while
small ones still share the render slots.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.helpers import REPO, decode, make_photo
from tests.live import sample, serve_in_thread
from thumbsvc import pipeline
from thumbsvc.app import create_app
from thumbsvc.client import URLSigner
from thumbsvc.config import Settings
from thumbsvc.decode import Limits, open_image
from thumbsvc.errors import UnprocessableSource
from thumbsvc.memory import Header, coefficient_bytes, read_header, render_bytes
from thumbsvc.options import RenderOptions, make_options
from thumbsvc.pipeline import Job, render

MB = 1_000_000
MIB = 1 << 20
SAMPLING_420 = ((2, 2), (1, 1), (1, 1))
SAMPLING_422 = ((2, 1), (1, 1), (1, 1))
SAMPLING_444 = ((1, 1), (1, 1), (1, 1))


def jpeg(size: tuple[int, int] = (6000, 4000), **kwargs: object) -> Header:
    values: dict[str, object] = {"format": "JPEG", "size": size, "mode": "RGB", "sampling": SAMPLING_420}
    values.update(kwargs)
    return Header(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("sampling", "bytes_per_pixel"), [(SAMPLING_420, 3), (SAMPLING_422, 4), (SAMPLING_444, 6), (((1, 1),), 2)]
)
def test_a_progressive_jpeg_buffers_every_coefficient(
    sampling: tuple[tuple[int, int], ...], bytes_per_pixel: int
) -> None:
    header = jpeg(progressive=True, sampling=sampling)
    assert coefficient_bytes(header) == 6000 * 4000 * bytes_per_pixel
    assert coefficient_bytes(jpeg(progressive=False, sampling=sampling)) == 0


def test_coefficient_blocks_are_rounded_up_per_component() -> None:
    # 17x9 at 4:2:0: luma 3x2 blocks, each chroma plane (9x5) 2x1 blocks.
    assert coefficient_bytes(jpeg((17, 9), progressive=True)) == (6 + 2 + 2) * 128


def test_a_baseline_jpeg_costs_its_decode_at_the_dct_scale() -> None:
    header = jpeg()
    costs = [render_bytes(header, eighths=e, size=(150, 100)) for e in (8, 4, 3, 2, 1)]
    assert costs == sorted(costs, reverse=True)
    # Full size: 4 bytes a pixel; at 4/8, a quarter of that; at 3/8, 9/64.
    assert 96 * MB <= costs[0] < 110 * MB
    assert 24 * MB <= costs[1] < 32 * MB
    assert 13 * MB <= costs[2] < 20 * MB


def test_a_progressive_jpeg_costs_its_coefficients_and_its_decode_at_every_scale() -> None:
    baseline, progressive = jpeg(), jpeg(progressive=True)
    for eighths in (4, 3, 2, 1):
        extra = render_bytes(progressive, eighths=eighths, size=(150, 100)) - render_bytes(
            baseline, eighths=eighths, size=(150, 100)
        )
        assert 66 * MB <= extra <= 72 * MB  # the 72 MB buffer, less the resample work that comes after it
    at_half = render_bytes(progressive, eighths=4, size=(1200, 800))
    assert at_half == 3 * MB + 72 * MB + 24 * MB


@pytest.mark.parametrize(
    ("header", "low", "high"),
    [
        (Header("PNG", (4000, 3000), "RGB"), 4, 5),
        (Header("PNG", (4000, 3000), "RGBA", alpha=True), 8, 9),  # plus the premultiplied copy
        (Header("PNG", (4000, 3000), "P"), 5, 6),  # the palette image and its RGB conversion
        (Header("WEBP", (4000, 3000), "RGB"), 16, 18),  # libwebp's canvases and the frame's copy
        (Header("AVIF", (4000, 3000), "RGB"), 10, 11),
    ],
)
def test_bytes_per_source_pixel_by_format(header: Header, low: float, high: float) -> None:
    per_pixel = render_bytes(header, size=(150, 112)) / (4000 * 3000)
    assert low <= per_pixel <= high


def test_a_large_output_costs_more_and_webp_with_alpha_most() -> None:
    header = Header("PNG", (4000, 3000), "RGBA", alpha=True)
    small = render_bytes(header, size=(400, 300), kind="png")
    large = render_bytes(header, size=(4000, 3000), kind="png")
    webp = render_bytes(header, size=(4000, 3000), kind="webp")
    assert small < large < webp
    assert webp - large == 4000 * 3000 * (28 - 8)


def test_an_animation_keeps_every_output_frame() -> None:
    header = Header("GIF", (800, 600), "P", frames=20)
    one = render_bytes(header, size=(400, 300), kind="gif")
    twenty = render_bytes(header, size=(400, 300), kind="gif", frames=20)
    assert twenty - one == 20 * 400 * 300 * 7


def jpeg_bytes(size: tuple[int, int], **save: object) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 80, 40)).save(buffer, "JPEG", **save)
    return buffer.getvalue()


@pytest.mark.parametrize(("subsampling", "sampling"), [(2, SAMPLING_420), (1, SAMPLING_422), (0, SAMPLING_444)])
def test_the_header_tells_progressive_and_subsampling(subsampling: int, sampling: object) -> None:
    image = open_image(jpeg_bytes((640, 480), progressive=True, subsampling=subsampling), Limits())
    header = read_header(image)
    assert (header.format, header.size, header.mode, header.progressive) == ("JPEG", (640, 480), "RGB", True)
    assert header.sampling == sampling
    assert not read_header(open_image(jpeg_bytes((64, 48)), Limits())).progressive


def test_the_header_tells_alpha_and_frames() -> None:
    buffer = io.BytesIO()
    frames = [Image.new("RGBA", (40, 30), (i * 60, 0, 0, 128)) for i in range(3)]
    frames[0].save(buffer, "PNG", save_all=True, append_images=frames[1:])
    header = read_header(open_image(buffer.getvalue(), Limits()))
    assert (header.format, header.alpha, header.frames) == ("PNG", True, 3)


def planned(data: bytes, options: RenderOptions) -> Job:
    """The job after the pipeline's header steps: nothing decoded, the estimates made."""
    return pipeline.run(Job(data, options, Limits()), pipeline.HEADER_STEPS)


def test_a_request_is_estimated_at_the_scale_it_decodes_at(corpus: Path) -> None:
    data = (corpus / "photos" / "lepton__slrhills.jpg").read_bytes()  # 4608x3456 baseline
    job = planned(data, make_options(width=150, height=150, fit="cover"))
    assert (job.eighths, job.factor) == (3, 3)  # the shared 3/8 decode, box-reduced to its own 1/8
    assert job.finish_bytes < 6 * MB < 8 * MB < job.decode_bytes  # 576x432 reduced, against 1728x1296 decoded
    wide = planned(data, make_options(width=1200))
    assert wide.finish_bytes > job.finish_bytes


def test_the_estimate_of_a_png_reads_no_pixels() -> None:
    # Pillow looks for a PNG's orientation (an eXIf chunk may follow the pixels) by decoding it all:
    # the estimate must not, or every request would decode its PNG twice, once outside a render slot.
    buffer = io.BytesIO()
    Image.new("RGB", (2000, 1500), (10, 120, 200)).save(buffer, "PNG")
    data = buffer.getvalue()
    data = data[: data.index(b"IDAT") + 200]  # the header intact, the pixels cut short
    options = make_options(width=300)
    assert 12 * MB < planned(data, options).decode_bytes < 20 * MB
    with pytest.raises(UnprocessableSource):
        render(data, options, Limits())


def test_a_render_from_a_shared_frame_is_not_charged_for_a_decode(corpus: Path) -> None:
    data = (corpus / "photos" / "immich__craft-beer.jpg").read_bytes()  # 24 MP progressive
    coefficients = coefficient_bytes(read_header(open_image(data, Limits())))
    assert coefficients > 60 * MIB
    charged = {}
    for width, height in ((150, 150), (400, 300), (1200, 900)):
        job = planned(data, make_options(width=width, height=height))
        assert job.decode_bytes > coefficients  # every coefficient, whatever the size asked for
        charged[width] = job.finish_bytes
        assert job.finish_bytes < job.decode_bytes / 2  # no coefficients, no decode of its own
    assert charged[150] < charged[400] < charged[1200] < 48 * MIB
    assert charged[150] < 8 * MIB


# -- the estimate against real renders ------------------------------------------------------

# What a render may take beyond its estimate: the allocator's rounding, page granularity.
SLACK_BYTES = 4 * MIB
# The estimate must be a bound, but not a blanket: a real render reaches at least this share of it.
MIN_SHARE = 0.7
CASES = [
    ("rgb.png", 1200, 900, "contain", "jpeg"),
    ("rgba.png", 1200, 900, "contain", "png"),
    ("rgb.webp", 400, 300, "contain", "jpeg"),
    ("rgba.webp", 1200, 900, "contain", "webp"),
    ("progressive.jpg", 1200, 900, "contain", "jpeg"),
]


@pytest.fixture(scope="module")
def large_sources(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 MP PNG, WebP and progressive JPEG sources made from a corpus photo, opaque and with alpha."""
    folder = tmp_path_factory.mktemp("large")
    with Image.open(corpus / "photos" / "lepton__slrhills.jpg") as opened:
        opened.draft("RGB", (2304, 1728))
        rgb = opened.convert("RGB").resize((4000, 3000), Image.Resampling.BILINEAR)
    rgba = rgb.copy()
    rgba.putalpha(Image.linear_gradient("L").resize(rgb.size))
    rgb.save(folder / "rgb.png", compress_level=1)
    rgba.save(folder / "rgba.png", compress_level=1)
    rgb.save(folder / "rgb.webp", quality=70, method=0)
    rgba.save(folder / "rgba.webp", quality=70, method=0)
    rgb.save(folder / "progressive.jpg", quality=85, progressive=True)
    return folder


@pytest.mark.calibration
@pytest.mark.parametrize(("name", "width", "height", "fit", "fmt"), CASES)
def test_the_estimate_bounds_a_real_render_in_a_fresh_process(
    large_sources: Path, name: str, width: int, height: int, fit: str, fmt: str
) -> None:
    source = large_sources / name
    options = make_options(width=width, height=height, fit=fit, format=fmt)
    expected = planned(source.read_bytes(), options).decode_bytes
    probe = subprocess.run(
        [sys.executable, "-m", "tests.memory_probe", str(source), str(width), str(height), fit, fmt],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if probe.returncode == 3:
        pytest.skip("the kernel cannot reset the peak resident set (/proc/self/clear_refs)")
    assert probe.returncode == 0, probe.stderr
    growth = json.loads(probe.stdout)["growth_bytes"]
    assert growth <= expected + SLACK_BYTES, f"{name}: render peaked {growth / MIB:.1f} MiB over {expected / MIB:.1f}"
    assert growth >= MIN_SHARE * expected, (
        f"{name}: render peaked {growth / MIB:.1f} MiB, far below {expected / MIB:.1f}"
    )


# -- the budget, through the running app ----------------------------------------------------


def most_renders_at_once(base: str, paths: list[str], clients: int) -> tuple[int, list[int]]:
    """Request every path from ``clients`` threads while another polls /metrics; return the most
    renders seen in progress at once, and the statuses."""
    statuses: list[int] = []
    seen: list[float] = []
    done = threading.Event()
    lock = threading.Lock()
    todo = list(paths)

    def poll() -> None:
        with httpx.Client(base_url=base) as client:
            while not done.is_set():
                seen.append(sample(client.get("/metrics").text, "thumbsvc_renders_in_progress"))

    def work() -> None:
        with httpx.Client(base_url=base, timeout=60) as client:
            while True:
                with lock:
                    if not todo:
                        return
                    path = todo.pop()
                response = client.get(path)
                decode(response.content)
                statuses.append(response.status_code)

    poller = threading.Thread(target=poll)
    poller.start()
    workers = [threading.Thread(target=work) for _ in range(clients)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    done.set()
    poller.join()
    return int(max(seen)), statuses


def test_a_small_budget_keeps_large_sources_apart_while_small_ones_share_the_slots(
    settings_factory: Callable[..., Settings], signer: URLSigner, media_root: Path
) -> None:
    large = make_photo((3000, 2000), fmt="PNG")
    small = make_photo((1600, 1200))
    for index in range(2):
        (media_root / f"large-{index}.png").write_bytes(large)
        (media_root / f"small-{index}.jpg").write_bytes(small)
    options = make_options(width=1200, height=900)
    large_bytes = planned(large, options).decode_bytes
    small_bytes = planned(small, options).decode_bytes
    budget = 2 * small_bytes  # two small renders fit; two large ones (each larger than two small) do not
    assert large_bytes > small_bytes
    settings = settings_factory(
        render_slots=2,
        render_memory_budget=budget,
        queue_timeout_s=60,
        cache_bytes=0,
        source_cache_bytes=0,
        decoded_cache_bytes=0,
    )

    def paths(stem: str, suffix: str, count: int) -> list[str]:
        return [signer.path(f"{stem}-{i % 2}{suffix}", width=1200 - i, height=900) for i in range(count)]

    with serve_in_thread(create_app(settings)) as base:
        most_large, large_statuses = most_renders_at_once(base, paths("large", ".png", 6), clients=3)
        most_small, small_statuses = most_renders_at_once(base, paths("small", ".jpg", 24), clients=4)
        renders = sample(httpx.get(base + "/metrics").text, "thumbsvc_renders_total")
    assert large_statuses == [200] * 6 and small_statuses == [200] * 24
    assert renders == 30
    assert most_large == 1
    assert most_small == 2  # the same polling sees two renders at once when the budget allows it


def test_the_budget_is_on_by_default_and_read_from_the_environment() -> None:
    # Without a memory limit (as here: no cgroup limit is passed), 100 MB a slot.
    assert Settings(render_slots=2, memory_limit=None).render_memory_budget == 200_000_000
    assert Settings(render_slots=8, memory_limit=None).render_memory_budget == 800_000_000
    limited = Settings(render_slots=2, memory_limit=1 << 30)
    assert limited.render_memory_budget == limited.max_render_memory > 2 * 99_000_000
    assert Settings.from_env({"THUMBSVC_RENDER_MEMORY_BUDGET": "0"}).render_memory_budget == 0


TRIM_SCRIPT = """
import sys, threading
from thumbsvc.memory import _libc, release_freed_memory

def rss():
    with open("/proc/self/status") as handle:
        return next(int(line.split()[1]) * 1024 for line in handle if line.startswith("VmRSS:"))

if _libc("malloc_trim") is None:
    sys.exit(3)
before = rss()
held = []

def allocate():
    # 800 blocks under the mmap threshold, so they come from this thread's heap, then one that
    # pins the heap's top: freed, the blocks stay in the heap (as a render's buffers do).
    blocks = [bytearray(b"x" * 120_000) for _ in range(800)]
    held.append(bytearray(64))
    blocks.clear()

worker = threading.Thread(target=allocate)
worker.start()
worker.join()
freed = rss()
release_freed_memory()
print(freed - before, rss() - before)
"""


@pytest.mark.calibration
def test_freed_memory_goes_back_to_the_kernel() -> None:
    result = subprocess.run([sys.executable, "-c", TRIM_SCRIPT], cwd=REPO, capture_output=True, text=True, timeout=60)
    if result.returncode == 3:
        pytest.skip("not glibc: no malloc_trim")
    assert result.returncode == 0, result.stderr
    kept, after_trim = (int(value) for value in result.stdout.split())
    assert kept > 16 * MIB, result.stdout  # the allocator keeps much of what was freed
    assert after_trim < 4 * MIB, result.stdout


HEAPS_SCRIPT = """
import ctypes, ctypes.util, sys, threading
from thumbsvc.app import create_app
from thumbsvc.config import Settings

libc = ctypes.CDLL(ctypes.util.find_library("c"))
if not hasattr(libc, "malloc_stats") or not hasattr(libc, "mallopt"):
    sys.exit(3)
create_app(Settings(keys=("heaps-key",)))
together = threading.Barrier(4)

def allocate():
    together.wait()  # all four threads allocate at once, as render threads do
    blocks = [bytearray(4000) for _ in range(200)]
    together.wait()

threads = [threading.Thread(target=allocate) for _ in range(4)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
libc.malloc_stats()  # one "Arena N:" paragraph per heap, on stderr
"""


@pytest.mark.parametrize(("environment", "one_heap"), [({}, True), ({"MALLOC_ARENA_MAX": "8"}, False)])
def test_render_threads_share_one_malloc_heap_unless_the_environment_says_otherwise(
    environment: dict[str, str], one_heap: bool
) -> None:
    env = {name: value for name, value in os.environ.items() if not name.startswith("MALLOC_")}
    result = subprocess.run(
        [sys.executable, "-c", HEAPS_SCRIPT], cwd=REPO, env={**env, **environment}, capture_output=True, text=True
    )
    if result.returncode == 3:
        pytest.skip("not glibc: no mallopt")
    assert result.returncode == 0, result.stderr
    heaps = result.stderr.count("Arena ")
    assert (heaps == 1) if one_heap else (heaps > 1), result.stderr
