"""thumbor's URLs without thumbor: the grammar (a table), the signature, the planner's arithmetic,
and the service's answers (403, 400, the documented differences), through the real app."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
from pathlib import Path

import pytest
from PIL import Image
from starlette.testclient import TestClient

from tests.helpers import TEST_KEY, make_photo
from thumbsvc.app import create_app
from thumbsvc.config import ConfigError, Settings
from thumbsvc.errors import BadRequest
from thumbsvc.geometry import Plan
from thumbsvc.thumbor import (
    ORIG,
    Filter,
    ThumborPath,
    ThumborPathError,
    ThumborSigner,
    parse_path,
    reencoded_variant,
    split_signature,
)
from thumbsvc.thumbor_filters import kernel_sigma
from thumbsvc.thumbor_geometry import ThumborGeometry
from thumbsvc.thumbor_options import ThumborURLs

KEY = "thumbor-test-key"


def thumbor_sign(path: str, key: str = KEY) -> str:
    """libthumbor's signature, written out: URL-safe base64 of HMAC-SHA1 over the path."""
    return base64.urlsafe_b64encode(hmac.new(key.encode(), path.encode(), hashlib.sha1).digest()).decode()


def signed(path: str, key: str = KEY) -> str:
    return f"/{thumbor_sign(path, key)}/{path}"


# ---- the grammar ----

GRAMMAR = [
    ("a.jpg", ThumborPath(image="a.jpg")),
    ("300x200/a.jpg", ThumborPath(width=300, height=200, image="a.jpg")),
    ("300x/a.jpg", ThumborPath(width=300, image="a.jpg")),
    ("x200/a.jpg", ThumborPath(height=200, image="a.jpg")),
    ("origx200/a.jpg", ThumborPath(width=ORIG, height=200, image="a.jpg")),
    ("-300x-200/a.jpg", ThumborPath(width=300, height=200, flip_h=True, flip_v=True, image="a.jpg")),
    ("-0x0/a.jpg", ThumborPath(flip_h=True, image="a.jpg")),
    ("fit-in/300x200/a.jpg", ThumborPath(fit_in=True, width=300, height=200, image="a.jpg")),
    ("full-fit-in/3x2/a.jpg", ThumborPath(fit_in=True, full=True, width=3, height=2, image="a.jpg")),
    ("adaptive-fit-in/3x2/a.jpg", ThumborPath(fit_in=True, adaptive=True, width=3, height=2, image="a.jpg")),
    (
        "adaptive-full-fit-in/3x2/a.jpg",
        ThumborPath(fit_in=True, full=True, adaptive=True, width=3, height=2, image="a.jpg"),
    ),
    ("10x20:300x400/a.jpg", ThumborPath(crop=(10, 20, 300, 400), image="a.jpg")),
    ("0x0:0x0/a.jpg", ThumborPath(image="a.jpg")),  # thumbor: an all-zero box is no crop
    ("trim/a.jpg", ThumborPath(trim=("top-left", 0), image="a.jpg")),
    ("trim:bottom-right:15/a.jpg", ThumborPath(trim=("bottom-right", 15), image="a.jpg")),
    ("trim:10/a.jpg", ThumborPath(trim=("bottom-right", 0), image="a.jpg")),  # as thumbor reads it
    ("1x1/left/top/a.jpg", ThumborPath(width=1, height=1, halign="left", valign="top", image="a.jpg")),
    ("1x1/bottom/smart/a.jpg", ThumborPath(width=1, height=1, valign="bottom", smart=True, image="a.jpg")),
    (
        "filters:quality(80):fill(red,true)/a.jpg",
        ThumborPath(filters=(Filter("quality", ("80",)), Filter("fill", ("red", "true"))), image="a.jpg"),
    ),
    ("filters:upscale()/a%20b.jpg", ThumborPath(filters=(Filter("upscale", ()),), image="a b.jpg")),
    (
        "filters:watermark('x', 1, 2, 3)/a.jpg",
        ThumborPath(filters=(Filter("watermark", ("x", "1", "2", "3")),), image="a.jpg"),
    ),
    ("http://example.com/a.jpg", ThumborPath(image="http://example.com/a.jpg")),
    (
        "trim/1x2:3x4/fit-in/-5x6/right/middle/smart/filters:blur(2)/p/q.png",
        ThumborPath(
            trim=("top-left", 0),
            crop=(1, 2, 3, 4),
            fit_in=True,
            width=5,
            height=6,
            flip_h=True,
            halign="right",
            smart=True,
            filters=(Filter("blur", ("2",)),),
            image="p/q.png",
        ),
    ),
]


@pytest.mark.parametrize(("path", "expected"), GRAMMAR, ids=[row[0] for row in GRAMMAR])
def test_the_grammar(path: str, expected: ThumborPath) -> None:
    assert parse_path(path) == expected


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("meta/300x200/a.jpg", "meta"),
        ("debug/a.jpg", "debug"),
        ("3000000x2/a.jpg", "too large"),
        ("filters:" + ":".join(["a()"] * 40) + "/a.jpg", "At most 32"),
        ("300x200/%ff.jpg", "not UTF-8"),
    ],
)
def test_what_the_grammar_refuses(path: str, message: str) -> None:
    with pytest.raises(ThumborPathError, match=message):
        parse_path(path)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/unsafe/300x200/a.jpg", ("unsafe", "300x200/a.jpg")),
        (f"/{'A' * 27}=/a.jpg", (f"{'A' * 27}=", "a.jpg")),
        (f"/{'A' * 27}%3D/a.jpg", (f"{'A' * 27}=", "a.jpg")),  # a re-encoded '='
        (f"/{'A' * 27}/a.jpg", None),  # no padding: not thumbor's
        (f"/{'A' * 43}/300x200/a.jpg", None),  # thumbsvc's own signature
        ("/unsafe/", None),
        ("/healthz", None),
    ],
)
def test_a_thumbor_path_is_told_apart_by_its_first_segment(raw: str, expected: tuple[str, str] | None) -> None:
    assert split_signature(raw) == expected


# ---- the signature ----


def test_the_signature_is_libthumbors() -> None:
    libthumbor = pytest.importorskip("libthumbor")
    url = libthumbor.CryptoURL(key=KEY).generate(image_url="a.jpg", width=300, height=200, filters=["quality(80)"])
    signature, _, path = url[1:].partition("/")
    assert ThumborSigner([KEY]).sign(path) == signature == thumbor_sign(path)
    assert len(signature) == 28 and signature.endswith("=")


def test_every_key_verifies_and_the_first_signs() -> None:
    signer = ThumborSigner(["new", "old"])
    assert signer.sign("a.jpg") == thumbor_sign("a.jpg", "new")
    assert signer.verify("a.jpg", thumbor_sign("a.jpg", "old"))
    assert not signer.verify("a.jpg", thumbor_sign("a.jpg", "other"))
    assert not signer.verify("b.jpg", thumbor_sign("a.jpg", "new"))
    assert not signer.verify("a.jpg", thumbor_sign("a.jpg", "new")[:-1])
    assert not signer.verify("a.jpg", "é" * 28)


def test_verification_compares_in_constant_time_against_every_key() -> None:
    # Every key is compared with hmac.compare_digest, and none is skipped once one matches: the
    # time taken does not depend on the bytes guessed nor on which key signed.
    import inspect

    source = inspect.getsource(ThumborSigner.verify)
    assert "compare_digest" in source and "|=" in source and "return" not in source.split("for")[1].split("\n")[1]


def test_the_reencoded_spelling_is_decoded_once() -> None:
    assert reencoded_variant("filters:fill%28red%29%3Aquality%2880%29/a%2Cb%7E%3d.jpg") == (
        "filters:fill(red):quality(80)/a,b~=.jpg"
    )
    assert reencoded_variant("a%2528.jpg") == "a%2528.jpg"  # once: %25 stays


# ---- the planner ----

PLANS = [
    # crop mode: the target's ratio around the centre, then resized (a small source is enlarged)
    (
        ThumborGeometry(width=300, height=200),
        (750, 500),
        Plan((0.0, 0.0, 750.0, 500.0), (300, 200), (300, 200), (0, 0)),
    ),
    (
        ThumborGeometry(width=200, height=200),
        (750, 500),
        Plan((125.0, 0.0, 625.0, 500.0), (200, 200), (200, 200), (0, 0)),
    ),
    (
        ThumborGeometry(width=200, height=200, halign=0.0),
        (750, 500),
        Plan((0.0, 0.0, 500.0, 500.0), (200, 200), (200, 200), (0, 0)),
    ),
    (
        ThumborGeometry(width=400, height=400),
        (227, 149),
        Plan((38.0, 0.0, 187.0, 149.0), (400, 400), (400, 400), (0, 0)),
    ),
    # no_upscale() keeps the source's own shape
    (
        ThumborGeometry(width=400, height=300, no_upscale=True),
        (227, 149),
        Plan((0.0, 0.0, 227.0, 149.0), (227, 149), (227, 149), (0, 0)),
    ),
    # one side from the other's ratio, halves to even
    (ThumborGeometry(width=300), (750, 500), Plan((0.0, 0.0, 750.0, 500.0), (300, 200), (300, 200), (0, 0))),
    # fit-in never enlarges; full-fit-in fits the other side; fill() centres on the box
    (
        ThumborGeometry(width=600, height=600, fit_in=True),
        (227, 149),
        Plan((0.0, 0.0, 227.0, 149.0), (227, 149), (227, 149), (0, 0)),
    ),
    (
        ThumborGeometry(width=300, height=300, fit_in=True, full=True),
        (750, 500),
        Plan((0.0, 0.0, 750.0, 500.0), (450, 300), (450, 300), (0, 0)),
    ),
    (
        ThumborGeometry(width=400, height=400, fit_in=True, fill=True),
        (750, 500),
        Plan((0.0, 0.0, 750.0, 500.0), (400, 267), (400, 400), (0, 66)),
    ),
    (
        ThumborGeometry(width=600, height=600, fit_in=True, upscale=True),
        (227, 149),
        Plan((0.0, 0.0, 227.0, 149.0), (600, 393), (600, 393), (0, 0)),
    ),
    (
        ThumborGeometry(width=200, height=300, fit_in=True, adaptive=True),
        (750, 500),
        Plan((0.0, 0.0, 750.0, 500.0), (300, 200), (300, 200), (0, 0)),
    ),
    # a manual crop box, clamped into the image, moved by what trim cut
    (
        ThumborGeometry(width=100, crop=(600, 400, 900, 900)),
        (750, 500),
        Plan((600.0, 400.0, 750.0, 500.0), (100, 67), (100, 67), (0, 0)),
    ),
    (
        ThumborGeometry(crop=(20, 20, 60, 60)),
        (100, 100),
        Plan((20.0, 20.0, 60.0, 60.0), (40, 40), (40, 40), (0, 0)),
    ),
    # focal(): the crop centres on the box
    (
        ThumborGeometry(width=200, height=200, focal=((600, 100, 700, 300),)),
        (750, 500),
        Plan((250.0, 0.0, 750.0, 500.0), (200, 200), (200, 200), (0, 0)),
    ),
]


@pytest.mark.parametrize(("geometry", "source", "expected"), PLANS)
def test_the_planner_does_thumbors_arithmetic(
    geometry: ThumborGeometry, source: tuple[int, int], expected: Plan
) -> None:
    assert geometry.plan(source, max_output_px=4096) == expected


def test_the_planner_moves_a_crop_box_by_what_trim_cut() -> None:
    plan = ThumborGeometry(crop=(20, 20, 60, 60)).plan((100, 100), max_output_px=4096, base=(10, 10, 80, 80))
    assert plan.region == (20.0, 20.0, 60.0, 60.0)


def test_the_planner_bounds_every_output() -> None:
    with pytest.raises(ValueError, match="exceeds 4096"):
        ThumborGeometry(width=300, height=300, fit_in=True, full=True).plan((20000, 100), max_output_px=4096)


def test_blur_takes_the_spread_of_thumbors_kernel() -> None:
    # A Gaussian cut at one sigma (thumbor's default) spreads about half as far as the whole one.
    assert 0.5 < kernel_sigma(10, 10.0) / 10 < 0.6
    assert kernel_sigma(20, 2.0) == pytest.approx(2.0, abs=0.01)


# ---- the service ----


@pytest.fixture
def media(tmp_path: Path) -> Path:
    (tmp_path / "photo.jpg").write_bytes(make_photo((600, 400)))
    Image.new("RGBA", (40, 20), (0, 0, 255, 255)).save(tmp_path / "logo.png")
    alpha = Image.new("RGBA", (60, 40), (0, 0, 0, 0))
    alpha.paste((255, 0, 0, 255), (20, 10, 40, 30))
    alpha.save(tmp_path / "alpha.png")
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (60, 40), (0, 200, 0)).save(tmp_path / "turned.png", exif=exif)
    return tmp_path


def client(media: Path, **settings: object) -> TestClient:
    from thumbsvc.filters import parse_watermarks

    base = {
        "keys": (TEST_KEY,),
        "media_root": str(media),
        "thumbor_key": (KEY, "old-key"),
        "watermarks": tuple(parse_watermarks("logo=logo.png").values()),
    }
    return TestClient(create_app(Settings(**{**base, **settings})))  # type: ignore[arg-type]


def picture(body: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(body))
    image.load()
    return image


def test_a_signed_thumbor_url_is_a_thumbnail_with_its_own_cache_key_and_etag(media: Path) -> None:
    app = client(media)
    first = app.get(signed("300x200/photo.jpg"))
    assert first.status_code == 200 and picture(first.content).size == (300, 200)
    assert first.headers["cache-control"] == "public, max-age=31536000, immutable"
    # The old key still verifies; the re-encoded spelling is the same thumbnail (one cache entry, one ETag).
    assert app.get(signed("300x200/photo.jpg", "old-key")).headers["etag"] == first.headers["etag"]
    reencoded = f"/{thumbor_sign('filters:quality(50)/photo.jpg')}/filters:quality%2850%29/photo.jpg"
    plain = app.get(signed("filters:quality(50)/photo.jpg"))
    assert app.get(reencoded).headers["etag"] == plain.headers["etag"] != first.headers["etag"]
    assert app.get(reencoded).headers["x-cache"] == "HIT"
    # The same picture by thumbsvc's own URL is another thumbnail: another ETag.
    native = app.app.state.thumbnailer.sign(
        "photo.jpg", __import__("thumbsvc.options").options.RenderOptions(300, 200, "cover")
    )
    assert app.get(native).headers["etag"] != first.headers["etag"]


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        (f"/{thumbor_sign('300x200/photo.jpg', 'wrong')}/300x200/photo.jpg", 403, "Invalid signature"),
        ("/unsafe/300x200/photo.jpg", 403, "Unsafe URLs are not allowed"),
        (signed("5000x200/photo.jpg"), 400, "limited to 4096"),
        (signed("fit-in/4000x4000/filters:fill(red)/photo.jpg"), 200, ""),
        (signed("filters:brightness(10)/photo.jpg"), 400, "brightness() filter is not supported"),
        (signed("filters:watermark(http://evil.example/x.png,0,0,0)/photo.jpg"), 400, "not a URL"),
        (signed("filters:watermark(nope,0,0,0)/photo.jpg"), 400, "Unknown watermark"),
        (signed("filters:blur(200)/photo.jpg"), 400, "blur()"),
        (signed("filters:quality(0)/photo.jpg"), 400, "quality()"),
        (signed("filters:format(tiff)/photo.jpg"), 400, "format()"),
        (signed("filters:rotate(45)/photo.jpg"), 400, "multiples of 90"),
        (signed("filters:fill(blur)/photo.jpg"), 400, "fill(blur)"),
        (signed("meta/photo.jpg"), 400, "meta"),
        (signed("300x200/missing.jpg"), 404, ""),
        (signed("300x200/%2E%2E/etc/passwd"), 403, "Source not allowed"),  # the media root's jail
        (signed("300x200/http://127.0.0.1:1/a.jpg"), 403, "Remote sources are not enabled"),
        (signed("filters:no_such_filter(1)/photo.jpg"), 200, ""),  # unknown filters are ignored, as thumbor does
    ],
)
def test_refusals(media: Path, path: str, status: int, message: str) -> None:
    answer = client(media).get(path)
    assert answer.status_code == status, answer.text
    assert message in answer.text


def test_unsafe_paths_when_allowed(media: Path) -> None:
    answer = client(media, thumbor_allow_unsafe=True).get("/unsafe/fit-in/100x100/photo.jpg")
    assert answer.status_code == 200 and picture(answer.content).size == (100, 67)


def test_without_a_thumbor_key_thumbor_paths_get_todays_answer(media: Path) -> None:
    answer = client(media, thumbor_key=()).get(signed("300x200/photo.jpg"))
    assert (answer.status_code, answer.text) == (403, "Invalid signature\n")


def test_http_sources_prepend_http_and_still_pass_the_allowlist(media: Path) -> None:
    # THUMBSVC_THUMBOR_SOURCES=http reads "127.0.0.1:1/a.jpg" as http://127.0.0.1:1/a.jpg: not allowed.
    answer = client(media, thumbor_sources="http").get(signed("127.0.0.1:1/a.jpg"))
    assert answer.status_code == 403
    # Allowed by the list, the SSRF guard still refuses loopback unless private networks are allowed.
    guarded = client(media, thumbor_sources="http", allowed_sources=("127.0.0.1",)).get(signed("127.0.0.1:1/a.jpg"))
    assert guarded.status_code == 403


def test_documented_differences_thumbsvcs_side(media: Path) -> None:
    app = client(media)
    # EXIF orientation applies to PNGs too (thumbor ignores it there): 60x40 stored, 40x60 upright.
    assert picture(app.get(signed("turned.png")).content).size == (40, 60)
    # Transparency flattened into JPEG goes onto white, or onto background_color (thumbor: black).
    flat = picture(app.get(signed("filters:format(jpeg)/alpha.png")).content).convert("RGB")
    assert flat.getpixel((2, 2)) == (255, 255, 255) and flat.getpixel((30, 20))[0] > 240
    blue = picture(app.get(signed("filters:background_color(blue):format(jpeg)/alpha.png")).content)
    assert blue.convert("RGB").getpixel((2, 2))[2] > 240
    # fill(transparent) into JPEG is white too.
    filled = picture(app.get(signed("fit-in/100x100/filters:fill(transparent):format(jpeg)/alpha.png")).content)
    assert filled.size == (100, 100) and filled.convert("RGB").getpixel((1, 1)) == (255, 255, 255)


def test_thumbors_geometry_end_to_end(media: Path) -> None:
    app = client(media)
    flipped = picture(app.get(signed("-300x200/photo.jpg")).content).convert("RGB")
    # make_photo: red top-left, green top-right; a horizontal flip puts green on the left.
    assert flipped.getpixel((10, 10))[1] > 150 and flipped.getpixel((290, 10))[0] > 150
    turned = picture(app.get(signed("300x200/filters:rotate(90)/photo.jpg")).content).convert("RGB")
    # Counter-clockwise after resizing: 200x300, the top-right (green) quadrant now at the top-left.
    assert turned.size == (200, 300) and turned.getpixel((10, 10))[1] > 150
    assert picture(app.get(signed("fit-in/200x200/filters:fill(auto)/photo.jpg")).content).size == (200, 200)
    gif = app.get(signed("50x50/filters:format(gif):grayscale()/photo.jpg"))
    assert gif.headers["content-type"] == "image/gif" and picture(gif.content).size == (50, 50)


def test_settings(media: Path) -> None:
    env = {"THUMBSVC_THUMBOR_KEY": "a-secret,b-secret", "THUMBSVC_THUMBOR_SOURCES": "HTTP"}
    settings = Settings.from_env(env)
    assert settings.thumbor_key == ("a-secret", "b-secret") and settings.thumbor_sources == "http"
    assert not settings.thumbor_allow_unsafe
    assert "a-secret" not in repr(settings) and "thumbor_key=<2 keys" in repr(settings)
    with pytest.raises(ConfigError, match="THUMBSVC_THUMBOR_SOURCES"):
        Settings.from_env({"THUMBSVC_THUMBOR_SOURCES": "s3"})
    with pytest.raises(ConfigError, match="THUMBSVC_THUMBOR_KEY"):
        Settings.from_env({"THUMBSVC_THUMBOR_KEY": " , "})


def test_thumbor_urls_reject_a_path_that_is_not_one() -> None:
    urls = ThumborURLs([KEY], allow_unsafe=False, sources="media", max_output_px=4096)
    assert not urls.recognises("/abc/300x200/a.jpg")
    with pytest.raises(BadRequest) as refused:
        urls.parse("/abc/a.jpg")
    assert refused.value.public_message == "Malformed thumbor URL"
