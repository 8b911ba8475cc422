"""The decoded-source cache: the sizes of one photo share one decode, and every answer is byte-identical
(with the same ETag) to the cache-off answer.

Decodes are counted by ``thumbsvc_decodes_total`` on /metrics; the cache's own series carry
``cache="decoded"``. Output is compared with the same app's output with the cache off.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
from PIL import Image, ImageChops, ImageStat
from starlette.testclient import TestClient

from tests.helpers import decode, make_photo
from tests.live import sample, serve_in_thread
from tests.test_load import fetch_all, scrape
from tests.test_memory import planned
from thumbsvc import pipeline
from thumbsvc.app import create_app
from thumbsvc.client import URLSigner
from thumbsvc.config import ConfigError, Settings
from thumbsvc.decode import Limits
from thumbsvc.errors import UnprocessableSource
from thumbsvc.geometry import plan
from thumbsvc.memory import Header
from thumbsvc.options import make_options
from thumbsvc.pipeline import MIN_SHARED_EDGE_PX, Job, decode_scale

IPHONE = "photos/lepton__iphone.jpg"  # 3264x2448 baseline JPEG from the corpus
# Three sizes of a gallery page whose own DCT scales (1/8, 1/4, 1/2 of the 3264x2448 photo) are all at or
# coarser than the shared scale (1/2), so all three render from one decode.
GALLERY = ((150, 150, "cover"), (400, 300, "contain"), (800, 600, "contain"))
FRAME_1200 = 1200 * 900 * 4  # bytes of the 1200x900 test photo decoded whole (Pillow keeps RGB in 4 bytes)


@pytest.fixture
def photo_root(media_root: Path, corpus: Path) -> Path:
    """The media root plus corpus JPEGs: a large photo, greyscale, CMYK and EXIF-rotated ones."""
    for name in (
        IPHONE,
        "color/lepton__grayscale.jpg",
        "color/thumbor__Giunchedi__Filippo_January_2015_01-cmyk.jpg",
        "orientation/exiforient__Landscape_6.jpg",
        "animated/sharp__animated-loop-3.gif",
        "formats/pillow__sugarshack.mpo",
    ):
        target = media_root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(corpus / name, target)
    return media_root


class Clock:
    """A monotonic clock the test moves: cache entries expire without sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def psnr(a: Image.Image, b: Image.Image) -> float:
    """Peak signal-to-noise ratio of two images of one size and mode, over all bands (dB)."""
    rms = ImageStat.Stat(ImageChops.difference(a, b)).rms
    mse = sum(value * value for value in rms) / len(rms)
    return math.inf if mse == 0 else 10 * math.log10(255 * 255 / mse)


def metrics(client: TestClient) -> str:
    return client.get("/metrics").text


def test_three_sizes_asked_together_decode_the_photo_once(
    settings_factory: Callable[..., Settings], signer: URLSigner, photo_root: Path
) -> None:
    app = create_app(settings_factory(render_slots=2))
    paths = [signer.path(IPHONE, width=w, height=h, fit=fit) for w, h, fit in GALLERY]
    with serve_in_thread(app) as base:
        results = anyio.run(fetch_all, base, paths)
        text = scrape(base)
    assert [r.status_code for r, _ in results] == [200, 200, 200]
    assert [decode(r.content).size for r, _ in results] == [(150, 150), (400, 300), (800, 600)]
    assert sample(text, "thumbsvc_decodes_total") == 1
    assert sample(text, "thumbsvc_renders_total") == 3
    # Each request either found the frame cached or waited for the one decode in flight.
    hits = sample(text, "thumbsvc_cache_hits_total", cache="decoded")
    misses = sample(text, "thumbsvc_cache_misses_total", cache="decoded")
    joins = sample(text, "thumbsvc_singleflight_joins_total", cache="decoded")
    assert (hits + misses, misses - joins) == (3, 1)
    # One frame held: the photo at 1/2 scale (1632x1224), 4 bytes a pixel, and its 16 KB of EXIF.
    assert sample(text, "thumbsvc_cache_entries", cache="decoded") == 1
    held = sample(text, "thumbsvc_cache_bytes", cache="decoded")
    assert 1632 * 1224 * 4 + 16_000 <= held < 1632 * 1224 * 4 + 30_000


@pytest.mark.parametrize(
    "source",
    [
        IPHONE,
        "color/lepton__grayscale.jpg",
        "color/thumbor__Giunchedi__Filippo_January_2015_01-cmyk.jpg",
        "orientation/exiforient__Landscape_6.jpg",
        "photos/landscape.jpg",
        "photos/portrait.png",
    ],
)
def test_bytes_and_etags_are_those_of_the_cache_off(
    client_factory: Callable[..., TestClient], signer: URLSigner, photo_root: Path, source: str
) -> None:
    cached, plain = client_factory(), client_factory(decoded_cache_bytes=0)
    requests = [
        *({"width": w, "height": h, "fit": fit} for w, h, fit in GALLERY),
        {"width": 1200, "height": 900, "fit": "contain"},
        {"width": 120, "height": 120, "fit": "cover", "gravity": "smart"},
        {"width": 200, "height": 100, "fit": "pad", "background": "#102030"},
        {"width": 90, "format": "webp"},
        {"width": 90, "format": "png"},
    ]
    for options in requests:
        path = signer.path(source, **options)  # type: ignore[arg-type]
        on, off = cached.get(path), plain.get(path)
        assert on.status_code == off.status_code == 200
        assert on.content == off.content, (source, options)
        assert on.headers["etag"] == off.headers["etag"]
    assert sample(metrics(plain), "thumbsvc_decodes_total") == len(requests)
    assert sample(metrics(cached), "thumbsvc_decodes_total") < len(requests)


def test_a_hit_renders_the_same_bytes_as_a_miss(
    client_factory: Callable[..., TestClient], signer: URLSigner, photo_root: Path
) -> None:
    small = signer.path(IPHONE, width=150, height=150, fit="cover")
    alone = client_factory().get(small)  # decodes for itself
    other = client_factory()
    assert other.get(signer.path(IPHONE, width=400, height=300)).status_code == 200
    after = other.get(small)  # renders from the 400x300's cached decode
    assert sample(metrics(other), "thumbsvc_cache_hits_total", cache="decoded") == 1
    assert after.content == alone.content
    assert after.headers["etag"] == alone.headers["etag"]


def test_a_small_source_decodes_each_size_at_its_own_scale(
    client_factory: Callable[..., TestClient], signer: URLSigner
) -> None:
    cached, plain = client_factory(), client_factory(decoded_cache_bytes=0)
    for width in (300, 100):  # 1/2 and 1/4 of the 1200x900 photo
        path = signer.path("photos/landscape.jpg", width=width)
        assert cached.get(path).content == plain.get(path).content
    assert sample(metrics(cached), "thumbsvc_decodes_total") == 2


def test_the_etag_does_not_depend_on_the_caches(client_factory: Callable[..., TestClient], signer: URLSigner) -> None:
    path = signer.path("photos/landscape.jpg", width=100)
    on = client_factory().get(path).headers["etag"]
    assert client_factory().get(path).headers["etag"] == on
    assert client_factory(decoded_cache_bytes=0).get(path).headers["etag"] == on
    assert client_factory(decoded_cache_ttl_s=0, cache_bytes=0, source_cache_bytes=0).get(path).headers["etag"] == on


def test_the_byte_bound_holds(client_factory: Callable[..., TestClient], signer: URLSigner, media_root: Path) -> None:
    (media_root / "photos" / "second.jpg").write_bytes(make_photo((1200, 900)))
    client = client_factory(decoded_cache_bytes=FRAME_1200 + 10_000)
    # Widths that need the whole 1200x900 decode.
    for source, width in (("photos/landscape.jpg", 1200), ("photos/second.jpg", 1200), ("photos/landscape.jpg", 1100)):
        assert client.get(signer.path(source, width=width)).status_code == 200
        text = metrics(client)
        assert sample(text, "thumbsvc_cache_bytes", cache="decoded") <= FRAME_1200 + 10_000
        assert sample(text, "thumbsvc_cache_entries", cache="decoded") == 1
    # Each source pushed the other out, so the third request decoded again.
    assert sample(text, "thumbsvc_decodes_total") == 3
    assert sample(text, "thumbsvc_cache_evictions_total", cache="decoded", reason="size") == 2


@pytest.mark.parametrize("budgeted", [True, False])
def test_a_kept_frame_makes_room_for_a_render_the_budget_would_not_fit_beside_it(
    client_factory: Callable[..., TestClient], signer: URLSigner, media_root: Path, budgeted: bool
) -> None:
    # The budget charges a decode only while it runs; the frame kept for later sizes is memory
    # too, and goes when a render would not fit beside it (without a budget, it stays).
    landscape = (media_root / "photos" / "landscape.jpg").read_bytes()  # 1200x900
    larger = make_photo((2000, 1500))
    (media_root / "photos" / "larger.jpg").write_bytes(larger)
    landscape_bytes = max(planned(landscape, make_options(width=w)).decode_bytes for w in (1200, 1100))
    larger_bytes = planned(larger, make_options(width=1200)).decode_bytes
    budget = landscape_bytes + FRAME_1200 + 100_000  # a landscape render fits beside its own kept frame
    assert budget < larger_bytes  # ... the larger photo's decode does not
    client = client_factory(decoded_cache_bytes=5 * FRAME_1200, render_memory_budget=budget if budgeted else 0)
    for source, width in (("photos/landscape.jpg", 1200), ("photos/larger.jpg", 1200), ("photos/landscape.jpg", 1100)):
        assert decode(client.get(signer.path(source, width=width)).content).width == width
    text = metrics(client)
    # With the budget, the landscape's frame made room for the larger decode, and the larger frame
    # for the landscape's decode again (its second size missed); without a budget, that size was
    # served from the kept frame.
    assert sample(text, "thumbsvc_decodes_total") == (3 if budgeted else 2)
    assert sample(text, "thumbsvc_cache_evictions_total", cache="decoded", reason="memory") == (2 if budgeted else 0)
    assert sample(text, "thumbsvc_cache_evictions_total", cache="decoded", reason="size") == 0


def test_a_render_keeps_the_frame_it_works_from_however_short_the_budget(
    client_factory: Callable[..., TestClient], signer: URLSigner
) -> None:
    # The frame a render works from is memory whether the cache keeps it or not: dropping it to
    # make room would free nothing, and the photo's next size would decode it again (behind the
    # render, in the queue) instead of sharing it.
    client = client_factory(decoded_cache_bytes=2 * FRAME_1200, render_memory_budget=1)
    for width in (1200, 1100, 1000):
        assert decode(client.get(signer.path("photos/landscape.jpg", width=width)).content).width == width
    text = metrics(client)
    assert sample(text, "thumbsvc_decodes_total") == 1
    assert sample(text, "thumbsvc_cache_evictions_total", cache="decoded", reason="memory") == 0


def test_a_multi_picture_frame_counts_the_source_it_keeps_open(
    client_factory: Callable[..., TestClient], signer: URLSigner, photo_root: Path
) -> None:
    client = client_factory()
    assert decode(client.get(signer.path("formats/pillow__sugarshack.mpo", width=500)).content).size == (500, 375)
    source_bytes = (photo_root / "formats" / "pillow__sugarshack.mpo").stat().st_size
    assert sample(metrics(client), "thumbsvc_cache_bytes", cache="decoded") > 640 * 480 * 4 + source_bytes


def test_a_frame_larger_than_the_whole_cache_is_rendered_but_not_held(
    client_factory: Callable[..., TestClient], signer: URLSigner
) -> None:
    client = client_factory(decoded_cache_bytes=FRAME_1200 // 2)
    for width in (1200, 1100):  # both need the whole 1200x900 decode
        response = client.get(signer.path("photos/landscape.jpg", width=width))
        assert decode(response.content).width == width
    text = metrics(client)
    assert sample(text, "thumbsvc_decodes_total") == 2
    assert sample(text, "thumbsvc_cache_entries", cache="decoded") == 0


def test_decoded_sources_expire_after_their_ttl(settings_factory: Callable[..., Settings], signer: URLSigner) -> None:
    clock = Clock()
    with TestClient(create_app(settings_factory(decoded_cache_ttl_s=1.0), clock=clock)) as client:
        assert client.get(signer.path("photos/landscape.jpg", width=1200)).status_code == 200
        assert client.get(signer.path("photos/landscape.jpg", width=1100)).status_code == 200
        assert sample(metrics(client), "thumbsvc_decodes_total") == 1
        clock.now += 1.3
        assert client.get(signer.path("photos/landscape.jpg", width=1000)).status_code == 200
        text = metrics(client)
    assert sample(text, "thumbsvc_decodes_total") == 2
    assert sample(text, "thumbsvc_cache_evictions_total", cache="decoded", reason="ttl") == 1


@pytest.mark.parametrize("setting", [{"decoded_cache_bytes": 0}, {"decoded_cache_ttl_s": 0}])
def test_zero_turns_the_cache_off(
    client_factory: Callable[..., TestClient], signer: URLSigner, setting: dict[str, float]
) -> None:
    client = client_factory(**setting)
    for width in (300, 200, 100):
        assert decode(client.get(signer.path("photos/landscape.jpg", width=width)).content).width == width
    text = metrics(client)
    assert sample(text, "thumbsvc_decodes_total") == 3
    assert sample(text, "thumbsvc_cache_misses_total", cache="decoded") == 0
    assert sample(text, "thumbsvc_cache_entries", cache="decoded") == 0


def test_copies_of_one_image_under_two_names_are_decoded_apart(
    client_factory: Callable[..., TestClient], signer: URLSigner, media_root: Path
) -> None:
    (media_root / "photos" / "copy.jpg").write_bytes((media_root / "photos" / "landscape.jpg").read_bytes())
    client = client_factory()
    for source in ("photos/landscape.jpg", "photos/copy.jpg"):
        assert client.get(signer.path(source, width=300)).status_code == 200
    assert sample(metrics(client), "thumbsvc_decodes_total") == 2


def test_a_changed_source_is_decoded_again(
    client_factory: Callable[..., TestClient], signer: URLSigner, media_root: Path
) -> None:
    client = client_factory(source_cache_bytes=0)
    path = signer.path("photos/landscape.jpg", width=300)
    first = decode(client.get(path).content)
    (media_root / "photos" / "landscape.jpg").write_bytes(make_photo((900, 1200)))
    second = decode(client.get(signer.path("photos/landscape.jpg", width=200)).content)
    assert (first.size, second.size) == ((300, 225), (200, 267))
    assert sample(metrics(client), "thumbsvc_decodes_total") == 2


def test_animations_are_never_held(
    client_factory: Callable[..., TestClient], signer: URLSigner, photo_root: Path
) -> None:
    client = client_factory()
    for width in (200, 100):
        response = client.get(signer.path("animated/sharp__animated-loop-3.gif", width=width))
        image = decode(response.content)
        assert (image.format, image.width, image.n_frames) == ("GIF", width, 10)
    text = metrics(client)
    assert sample(text, "thumbsvc_decodes_total") == 2
    assert sample(text, "thumbsvc_cache_entries", cache="decoded") == 0
    assert sample(text, "thumbsvc_cache_misses_total", cache="decoded") == 0


def test_a_broken_source_is_not_held(
    client_factory: Callable[..., TestClient], signer: URLSigner, media_root: Path
) -> None:
    whole = make_photo((2400, 1800))
    (media_root / "photos" / "truncated.jpg").write_bytes(whole[: len(whole) // 2])
    client = client_factory()
    for width, height, fit in GALLERY[:2]:
        response = client.get(signer.path("photos/truncated.jpg", width=width, height=height, fit=fit))
        assert response.status_code == 422
    text = metrics(client)
    assert sample(text, "thumbsvc_decodes_total") == 2
    assert sample(text, "thumbsvc_cache_entries", cache="decoded") == 0


@pytest.mark.parametrize(
    ("size", "eighths"),
    [
        ((6000, 4000), 3),
        ((3264, 2448), 4),
        ((3008, 5344), 3),
        ((8688, 5792), 2),
        ((13000, 2000), 1),
        ((3198, 2000), 1),  # 4/8 would keep 1599 px: nothing to share, its own 1/8
        ((3199, 2000), 4),
        ((4264, 2000), 4),  # 3/8 would keep 1599 px
        ((4265, 2000), 3),
        ((1600, 1200), 1),
        ((100, 100), 8),  # 40 px from 100: no DCT scale leaves enough
    ],
)
def test_a_small_size_decodes_at_the_shared_scale_and_reduces(size: tuple[int, int], eighths: int) -> None:
    # 40 px wide: the request's own scale is 1/8 wherever the source allows it.
    header = Header("JPEG", size, "RGB")
    layout = plan(size, make_options(width=40), max_output_px=4096)
    decoded, factor = decode_scale(header, layout)
    assert decoded == eighths
    assert factor == (eighths if eighths < 8 else 1)  # box-reduced to 1/8 (or, at full size, not at all)
    if 1 < eighths < 8:
        assert -(-max(size) * eighths // 8) >= MIN_SHARED_EDGE_PX  # the shared decode keeps 1600 px
    assert decode_scale(Header("PNG", size, "RGB"), layout) == (8, 1)


@pytest.mark.parametrize(("size", "width", "expected"), [((4608, 3456), 400, (3, 1)), ((3264, 2448), 400, (4, 2))])
def test_a_reduce_from_the_shared_scale_never_passes_the_own_scale(
    size: tuple[int, int], width: int, expected: tuple[int, int]
) -> None:
    # 400 px from 4608 asks for 2/8 of its own: from a 3/8 decode no whole factor reaches it, so the
    # resample does it all; from 4/8 a factor of 2 does.
    layout = plan(size, make_options(width=width), max_output_px=4096)
    assert decode_scale(Header("JPEG", size, "RGB"), layout) == expected


def test_a_render_error_after_the_decode_still_leaves_the_decode_for_the_others() -> None:
    data, limits = make_photo((1200, 900)), Limits()
    failing = pipeline.run(Job(data, make_options(width=100), limits), pipeline.HEADER_STEPS)
    failing.kind = "tiff"  # no such encoder
    with pytest.raises(UnprocessableSource):
        pipeline.run(failing, pipeline.pixel_steps(failing))
    assert failing.decoded is not None
    other = pipeline.run(Job(data, make_options(width=90), limits), pipeline.HEADER_STEPS)
    assert (other.eighths, other.planar) == (failing.eighths, failing.planar)  # the same decode
    other.decoded = failing.decoded
    assert decode(pipeline.run(other, pipeline.pixel_steps(other)).result.data).size == (90, 68)


def test_the_settings_are_read_and_bad_values_are_refused() -> None:
    assert Settings().decoded_cache_bytes >= 3000 * 2000 * 4  # a 24 MP photo's shared frame fits
    settings = Settings.from_env({"THUMBSVC_DECODED_CACHE_BYTES": "0", "THUMBSVC_DECODED_CACHE_TTL": "2.5"})
    assert (settings.decoded_cache_bytes, settings.decoded_cache_ttl_s) == (0, 2.5)
    for environ in ({"THUMBSVC_DECODED_CACHE_BYTES": "-2"}, {"THUMBSVC_DECODED_CACHE_TTL": "-1"}):
        with pytest.raises(ConfigError, match=next(iter(environ))):
            Settings.from_env(environ)
