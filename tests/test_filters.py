"""Filters through the running app: trim, rot, flip, gray, blur, sharp and named watermarks.

Fixtures are made by the tests where a property must be exact (a bordered PNG for trim, quadrant
photos for rotation); corpus images check that every filter works with animation and alpha.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFilter, ImageStat
from starlette.testclient import TestClient

from tests.helpers import TEST_KEY, decode
from tests.live import sample
from thumbsvc.app import create_app
from thumbsvc.client import URLSigner
from thumbsvc.config import ConfigError, Settings
from thumbsvc.filters import WatermarkSpec

RED, GREEN, BLUE, YELLOW = (220, 30, 30), (30, 200, 30), (30, 30, 220), (230, 230, 30)


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def bordered(size: tuple[int, int], box: tuple[int, int, int, int], border: tuple[int, ...] = (255, 255, 255)) -> bytes:
    """A PNG of ``size`` in the border colour with detailed content filling ``box`` (left, top, right, bottom)."""
    image = Image.new("RGB", size, border)
    content = Image.effect_noise((box[2] - box[0], box[3] - box[1]), 60).convert("RGB")
    draw = ImageDraw.Draw(content)
    draw.rectangle((0, 0, content.width - 1, content.height - 1), outline=(0, 0, 0))  # an edge to find exactly
    image.paste(content, box[:2])
    return png(image)


def laplacian_variance(image: Image.Image) -> float:
    edges = image.convert("L").filter(ImageFilter.Kernel((3, 3), (0, 1, 0, 1, -4, 1, 0, 1, 0), 1, 128))
    return float(ImageStat.Stat(edges).var[0])


def mean(image: Image.Image, box: tuple[int, int, int, int]) -> tuple[float, ...]:
    return tuple(ImageStat.Stat(image.convert("RGB").crop(box)).mean)


def close(colour: tuple[float, ...], expected: tuple[int, int, int], tolerance: float = 20) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(colour, expected, strict=False))


# -- trim -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "box"),
    [
        ((400, 300), (37, 51, 301, 222)),  # small: scanned whole
        ((3000, 2000), (413, 1201, 2777, 1999)),  # large: a preview, then full-resolution strips
        ((3000, 2000), (0, 0, 3000, 1)),  # a one-pixel line at the top
        ((2600, 3100), (1299, 7, 1300, 3093)),  # a one-pixel column
    ],
)
def test_trim_keeps_exactly_the_content(
    client: TestClient, signer: URLSigner, put: Callable[[str, bytes], str], size: tuple[int, int], box: tuple[int, ...]
) -> None:
    source = put(f"bordered-{size[0]}-{box[0]}.png", bordered(size, box))  # type: ignore[arg-type]
    # Content in the top-left corner would make its own colour the border's: name the border then.
    trim = (10, "#ffffff") if box[:2] == (0, 0) else 10
    response = client.get(signer.path(source, trim=trim, format="png"))
    assert response.status_code == 200
    image = decode(response.content)
    assert image.size == (box[2] - box[0], box[3] - box[1])
    # The kept edges are the content's black outline, not the white border.
    assert image.convert("RGB").getpixel((0, 0)) == (0, 0, 0)
    assert image.convert("RGB").getpixel((image.width - 1, image.height - 1)) == (0, 0, 0)


def test_trim_of_a_large_jpeg_is_found_on_its_decode_and_facts_agree(
    client: TestClient, signer: URLSigner, put: Callable[[str, bytes], str]
) -> None:
    # A 4000x3000 JPEG decodes at 1/2 (the shared scale keeps 2000 px): the box is exact to one decoded
    # pixel, 2 source pixels, and f:json gives the very size the image has.
    image = Image.new("RGB", (4000, 3000), (255, 255, 255))
    image.paste(Image.effect_noise((2400, 1500), 60).convert("RGB"), (801, 703))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=95)
    source = put("bordered.jpg", buffer.getvalue())
    out = decode(client.get(signer.path(source, trim=40, format="png")).content)
    assert abs(out.width - 2400) <= 2 and abs(out.height - 1500) <= 2
    fitted = client.get(signer.path(source, trim=40, width=300))
    facts = client.get(signer.path(source, trim=40, width=300, format="json")).json()
    assert facts["output"]["width"] == decode(fitted.content).width == 300
    assert facts["output"]["height"] == decode(fitted.content).height


def test_trim_with_a_colour_and_a_threshold(
    client: TestClient, signer: URLSigner, put: Callable[[str, bytes], str]
) -> None:
    image = Image.new("RGB", (300, 200), (250, 250, 250))  # near-white border
    image.paste((245, 245, 245), (0, 0, 300, 10))  # a faint band: within the threshold
    image.paste(BLUE, (100, 60, 200, 140))
    source = put("faint.png", png(image))
    kept = decode(client.get(signer.path(source, trim=(12, "#ffffff"), format="png")).content)
    assert kept.size == (100, 80)
    strict = decode(client.get(signer.path(source, trim=(2, "#fafafa"), format="png")).content)
    assert strict.size == (300, 140)  # the faint band at the top counts as content at threshold 2


def test_a_uniform_image_is_not_trimmed(
    client: TestClient, signer: URLSigner, put: Callable[[str, bytes], str]
) -> None:
    source = put("blank.png", png(Image.new("RGB", (120, 80), (255, 255, 255))))
    assert decode(client.get(signer.path(source, trim=0, format="png")).content).size == (120, 80)


def test_trim_then_crop_then_fit(client: TestClient, signer: URLSigner, put: Callable[[str, bytes], str]) -> None:
    image = Image.new("RGB", (400, 300), (255, 255, 255))
    image.paste(RED, (100, 100, 200, 200))
    image.paste(GREEN, (200, 100, 300, 200))
    source = put("two.png", png(image))
    # The crop box is in the pixels of what trim kept (200x100): its right half is the green square.
    path = signer.path(source, trim=5, crop=(100, 0, 100, 100), width=50, format="png")
    out = decode(client.get(path).content)
    assert out.size == (50, 50)
    assert close(mean(out, (5, 5, 45, 45)), GREEN)


# -- rotation and flips ---------------------------------------------------------------------------


def quadrants(image: Image.Image) -> list[tuple[float, ...]]:
    w, h = image.size
    return [mean(image, (x, y, x + w // 4, y + h // 4)) for x, y in ((w // 8, h // 8), (5 * w // 8, h // 8))]


@pytest.mark.parametrize(
    ("rotate", "flip", "top_left", "top_right"),
    [
        (90, None, BLUE, RED),  # clockwise: the left column comes to the top
        (180, None, YELLOW, BLUE),
        (270, None, GREEN, YELLOW),
        (0, "h", GREEN, RED),
        (0, "v", BLUE, YELLOW),
        (0, "hv", YELLOW, BLUE),
        (90, "h", RED, BLUE),
    ],
)
def test_rotation_and_flips(
    client: TestClient,
    signer: URLSigner,
    rotate: int,
    flip: str | None,
    top_left: tuple[int, int, int],
    top_right: tuple[int, int, int],
) -> None:
    # landscape.jpg: red top-left, green top-right, blue bottom-left, yellow bottom-right, 1200x900.
    path = signer.path("photos/landscape.jpg", width=300, height=200, fit="cover", rotate=rotate, flip=flip)
    out = decode(client.get(path).content)
    assert out.size == (300, 200)  # the box is the box, whatever the rotation
    left, right = quadrants(out)
    assert close(left, top_left) and close(right, top_right)


def test_rotation_applies_after_the_exif_orientation(client: TestClient, signer: URLSigner) -> None:
    plain = decode(client.get(signer.path("hopper_orientation_6.jpg", format="png")).content)
    turned = decode(client.get(signer.path("hopper_orientation_6.jpg", format="png", rotate=90)).content)
    # The same resample, turned once more: exactly the upright thumbnail rotated clockwise.
    assert turned.tobytes() == plain.rotate(-90, expand=True).tobytes()


def test_a_crop_box_stays_in_the_pixels_before_the_rotation(client: TestClient, signer: URLSigner) -> None:
    # The red quadrant of the upright photo, then turned: the crop names what the eye sees before rot.
    path = signer.path("photos/landscape.jpg", crop=(0, 0, 600, 450), rotate=90, width=90, format="png")
    out = decode(client.get(path).content)
    assert out.size == (90, 120)  # 450 wide and 600 high once turned
    assert close(mean(out, (10, 10, 80, 110)), RED)


# -- gray, blur, sharpen ------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp"])
def test_gray_gives_equal_channels(client: TestClient, signer: URLSigner, fmt: str) -> None:
    out = decode(client.get(signer.path("photos/landscape.jpg", width=200, grayscale=True, format=fmt)).content)
    red, green, blue = out.convert("RGB").split()
    assert red.tobytes() == green.tobytes() == blue.tobytes()
    assert ImageStat.Stat(red).stddev[0] > 10  # not flat: the quadrants have different luminance


def test_gray_keeps_alpha(client: TestClient, signer: URLSigner) -> None:
    out = decode(client.get(signer.path("rgba_32x32.png", grayscale=True, format="png")).content)
    assert out.mode == "LA"
    original = decode(client.get(signer.path("rgba_32x32.png", format="png")).content)
    assert out.getchannel("A").tobytes() == original.getchannel("A").tobytes()


def test_blur_lowers_and_sharpen_raises_the_detail(client: TestClient, signer: URLSigner) -> None:
    def variance(**options: object) -> float:
        path = signer.path("photos/landscape.jpg", width=400, format="png", **options)  # type: ignore[arg-type]
        return laplacian_variance(decode(client.get(path).content))

    plain = variance()
    assert variance(blur=2.5) < plain / 2
    assert variance(blur=0.3) < plain
    assert variance(sharpen=1) > plain


@pytest.mark.parametrize("fmt", ["jpeg", "webp"])
def test_blur_works_on_a_jpeg_kept_in_ycbcr(client: TestClient, signer: URLSigner, fmt: str) -> None:
    # A JPEG photo headed for JPEG or WebP stays YCbCr up to the encoder, a mode Pillow's blur refuses:
    # every blur: of a JPEG photo to JPEG was a 422 ("image has wrong mode").
    response = client.get(signer.path("photos/landscape.jpg", width=400, format=fmt, blur=2.5))
    assert response.status_code == 200, response.text
    blurred = decode(response.content)
    plain = decode(client.get(signer.path("photos/landscape.jpg", width=400, format=fmt)).content)
    assert laplacian_variance(blurred) < laplacian_variance(plain) / 2
    assert close(mean(blurred, (20, 20, 80, 80)), RED, 8)  # the colours are blurred, not shifted


# -- watermarks ----------------------------------------------------------------------------------------


@pytest.fixture
def watermarked(settings_factory: Callable[..., Settings], media_root: Path) -> TestClient:
    (media_root / "brand").mkdir()
    (media_root / "brand" / "mark.png").write_bytes(png(Image.new("RGBA", (40, 40), (*BLUE, 255))))
    spec = WatermarkSpec("logo", "brand/mark.png", gravity="south-east", margin=0.0, opacity=1.0, scale=0.25)
    faint = WatermarkSpec("faint", "brand/mark.png", gravity="north-west", margin=0.1, opacity=0.5, scale=0.5)
    client = TestClient(create_app(settings_factory(watermarks=(spec, faint))))
    client.__enter__()
    return client


def test_the_watermark_appears_at_its_anchor(watermarked: TestClient, signer: URLSigner) -> None:
    out = decode(
        watermarked.get(signer.path("photos/landscape.jpg", width=400, watermark="logo", format="png")).content
    )
    assert out.size == (400, 300)
    # 25 % of the shorter side (300): a 75 px square in the bottom-right corner, no margin.
    assert close(mean(out, (330, 230, 395, 295)), BLUE, 8)
    assert close(mean(out, (250, 200, 300, 220)), YELLOW)  # beside it, the photo
    faint = decode(
        watermarked.get(signer.path("photos/landscape.jpg", width=400, watermark="faint", format="png")).content
    )
    inside = mean(faint, (40, 40, 150, 150))  # 30 px margin, 150 px mark at half opacity over red
    assert close(inside, tuple((a + b) / 2 for a, b in zip(RED, BLUE, strict=True)), 12)  # type: ignore[arg-type]


def test_an_unknown_watermark_is_400(watermarked: TestClient, signer: URLSigner) -> None:
    response = watermarked.get(signer.path("photos/landscape.jpg", width=100, watermark="nope"))
    assert (response.status_code, response.text) == (400, "Unknown watermark\n")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (WatermarkSpec("logo", "brand/missing.png"), "logo"),
        (WatermarkSpec("logo", "../outside.png"), "logo"),
        (WatermarkSpec("logo", "photos/landscape.jpg", gravity="south-east"), None),
    ],
)
def test_a_bad_watermark_stops_start_up(
    settings_factory: Callable[..., Settings], spec: WatermarkSpec, message: str | None
) -> None:
    if message is None:
        create_app(settings_factory(watermarks=(spec,)))  # a JPEG is a usable watermark
        return
    with pytest.raises(ConfigError) as info:
        create_app(settings_factory(watermarks=(spec,)))
    assert "THUMBSVC_WATERMARKS" in str(info.value) and message in str(info.value)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("logo=brand/mark.png;gravity=middle", "gravity"),
        ("logo=brand/mark.png;opacity=2", "opacity"),
        ("logo=brand/mark.png;scale=abc", "number"),
        ("logo", "name=path"),
        ("Logo=brand/mark.png", "watermark must be"),
        ("logo=a.png,logo=b.png", "twice"),
        ("logo=a.png;size=3", "gravity="),
    ],
)
def test_bad_watermark_definitions_name_the_problem(text: str, error: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"THUMBSVC_WATERMARKS": text})
    assert "THUMBSVC_WATERMARKS" in str(info.value) and error in str(info.value)


def test_watermark_definitions_are_read_from_the_environment() -> None:
    settings = Settings.from_env(
        {"THUMBSVC_WATERMARKS": "logo=brand/logo.png;gravity=south-east;margin=0.02;opacity=0.5;scale=0.2, x=y.png"}
    )
    assert [spec.name for spec in settings.watermarks] == ["logo", "x"]
    assert settings.watermarks[0] == WatermarkSpec("logo", "brand/logo.png", "south-east", 0.02, 0.5, 0.2)


# -- every filter with animation and with alpha ---------------------------------------------------------

FILTERS: list[dict[str, object]] = [
    {"trim": 10},
    {"rotate": 90},
    {"flip": "hv"},
    {"grayscale": True},
    {"blur": 1.5},
    {"sharpen": 1},
    {"watermark": "logo"},
]


@pytest.mark.corpus
@pytest.mark.parametrize("options", FILTERS, ids=lambda o: next(iter(o)))
def test_every_filter_keeps_an_animation(
    watermarked: TestClient, signer: URLSigner, media_root: Path, corpus: Path, options: dict[str, object]
) -> None:
    (media_root / "anim.webp").write_bytes((corpus / "animated" / "sharp__rotating-squares.webp").read_bytes())
    response = watermarked.get(signer.path("anim.webp", width=120, **options))  # type: ignore[arg-type]
    assert response.status_code == 200
    image = decode(response.content)
    assert (image.format, getattr(image, "n_frames", 1)) == ("WEBP", 9)
    assert image.mode == "RGBA"  # alpha kept


@pytest.mark.parametrize("options", FILTERS, ids=lambda o: next(iter(o)))
def test_every_filter_keeps_alpha(watermarked: TestClient, signer: URLSigner, options: dict[str, object]) -> None:
    response = watermarked.get(signer.path("rgba_32x32.png", width=64, upscale=True, **options))  # type: ignore[arg-type]
    assert response.status_code == 200
    image = decode(response.content)
    assert image.mode in ("RGBA", "LA")
    assert ImageStat.Stat(image.getchannel("A")).extrema[0][0] < 255  # still transparent somewhere


# -- the URL ---------------------------------------------------------------------------------------------


def test_the_filters_are_signed_and_in_their_canonical_order(client: TestClient, signer: URLSigner) -> None:
    path = signer.path(
        "photos/landscape.jpg",
        width=100,
        trim=(10, "#FFFFFF"),
        rotate=270,
        flip="v",
        grayscale=True,
        blur=2.5,
        sharpen=1.0,
    )
    assert "/100x/trim:10:ffffff/rot:270/flip:v/gray:1/blur:2.5/sharp:1/photos/landscape.jpg" in path
    assert client.get(path).status_code == 200
    signature, _, rest = path[1:].partition("/")
    assert client.get(f"/{signature}/{rest.replace('rot:270', 'rot:90')}").status_code == 403


@pytest.mark.parametrize(
    "options",
    [
        "100x/blur:5.0",
        "100x/blur:0.2",
        "100x/blur:51",
        "100x/sharp:11",
        "100x/rot:45",
        "100x/rot:0",
        "100x/flip:x",
        "100x/gray:0",
        "100x/trim:256",
        "100x/trim:010",
        "100x/trim:10:FFFFFF",
        "100x/wm:Logo",
        "100x/rot:90/trim:1",
        "100x/blur:2.50",
    ],
)
def test_non_canonical_filters_are_400(client: TestClient, options: str) -> None:
    from thumbsvc.signing import PathSigner

    payload = f"{options}/photos/landscape.jpg"
    response = client.get(f"/{PathSigner([TEST_KEY]).sign(payload)}/{payload}")
    assert response.status_code == 400, options


@pytest.mark.parametrize(
    "options",
    [
        {"blur": 0.25},
        {"blur": 60},
        {"sharpen": 2.55},
        {"rotate": 45},
        {"flip": "x"},
        {"trim": 300},
        {"trim": (10, "white")},
        {"watermark": "Bad Name"},
        {"grayscale": "yes"},
    ],
)
def test_the_client_refuses_bad_filter_values(signer: URLSigner, options: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        signer.path("photos/landscape.jpg", width=100, **options)  # type: ignore[arg-type]


def test_without_filters_nothing_changes(client: TestClient, signer: URLSigner) -> None:
    path = signer.path("photos/landscape.jpg", width=300)
    assert "/300x/photos" in path
    assert client.get(path).status_code == 200
    assert sample(client.get("/metrics").text, "thumbsvc_renders_total") == 1
