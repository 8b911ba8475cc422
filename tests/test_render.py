"""Rendering properties that need exact control, on Pillow-generated images, through the app.

Orientation (all eight, in JPEG, PNG eXIf, WebP and XMP), broken EXIF, alpha and halos, every
input mode, CMYK, animation timing, loops and limits, metadata stripping, progressive JPEG,
``format=auto`` and ``gravity=smart``.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from typing import Any

import pytest
from PIL import Image, ImageCms, ImageDraw, ImageStat, PngImagePlugin
from starlette.testclient import TestClient

from tests.helpers import STORE, decode
from thumbsvc.client import URLSigner
from thumbsvc.decode import Limits, open_image
from thumbsvc.pipeline import read_orientation

RED, GREEN, BLUE, YELLOW = (220, 30, 30), (30, 200, 30), (30, 30, 220), (230, 230, 30)


def quadrants(size: tuple[int, int] = (120, 80)) -> Image.Image:
    """Upright: red top-left, green top-right, blue bottom-left, yellow bottom-right."""
    width, height = size
    image = Image.new("RGB", size)
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, width // 2 - 1, height // 2 - 1), fill=RED)
    draw.rectangle((width // 2, 0, width - 1, height // 2 - 1), fill=GREEN)
    draw.rectangle((0, height // 2, width // 2 - 1, height - 1), fill=BLUE)
    draw.rectangle((width // 2, height // 2, width - 1, height - 1), fill=YELLOW)
    return image


def save(image: Image.Image, fmt: str, **params: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def exif_with(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif


def near(actual: tuple[int, ...] | float, expected: tuple[int, ...], tolerance: int = 24) -> bool:
    assert isinstance(actual, tuple)
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=False))


def corners(image: Image.Image) -> list[tuple[int, ...]]:
    rgb = image.convert("RGB")
    w, h = rgb.size
    return [
        rgb.getpixel(p)
        for p in ((w // 4, h // 4), (3 * w // 4, h // 4), (w // 4, 3 * h // 4), (3 * w // 4, 3 * h // 4))
    ]  # type: ignore[misc]


def fetch(
    client: TestClient, signer: URLSigner, source: str, headers: dict[str, str] | None = None, **options: Any
) -> Image.Image:
    response = client.get(signer.path(source, **options), headers=headers or {})
    assert response.status_code == 200, response.text
    return decode(response.content)


# --- orientation -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_every_orientation_is_applied(
    client: TestClient, signer: URLSigner, put: Any, orientation: int, fmt: str
) -> None:
    upright = quadrants()
    stored = upright.transpose(STORE[orientation]) if orientation in STORE else upright
    params: dict[str, Any] = {"exif": exif_with(orientation)}
    if fmt != "PNG":
        params["quality"] = 95
    source = put(f"o{orientation}.{fmt.lower()}", save(stored, fmt, **params))
    image = fetch(client, signer, source, width=60, format="png")
    assert image.size == (60, 40)
    assert all(near(got, want) for got, want in zip(corners(image), [RED, GREEN, BLUE, YELLOW], strict=True)), corners(
        image
    )
    assert not image.getexif()


def test_xmp_orientation_is_applied(client: TestClient, signer: URLSigner, put: Any) -> None:
    info = PngImagePlugin.PngInfo()
    xmp = '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:Description tiff:Orientation="6"/></x:xmpmeta>'
    info.add_itxt("XML:com.adobe.xmp", xmp)
    source = put("xmp.png", save(quadrants().transpose(STORE[6]), "PNG", pnginfo=info))
    image = fetch(client, signer, source, width=60)
    assert image.size == (60, 40)
    assert near(corners(image)[0], RED)


def png_with_late_exif(image: Image.Image, orientation: int) -> bytes:
    """A PNG whose eXIf chunk comes after its image data (Pillow finds it only by decoding)."""
    png = save(image, "PNG")
    body = exif_with(orientation).tobytes()
    chunk = struct.pack(">I", len(body)) + b"eXIf" + body + struct.pack(">I", zlib.crc32(b"eXIf" + body))
    end = png.rindex(b"IEND") - 4
    return png[:end] + chunk + png[end:]


@pytest.mark.parametrize("cache_decoded", [True, False])
def test_a_png_exif_chunk_after_the_pixels_is_applied_without_decoding_the_header_twice(
    client_factory: Callable[..., TestClient], signer: URLSigner, put: Any, cache_decoded: bool
) -> None:
    data = png_with_late_exif(quadrants().transpose(STORE[6]), 6)
    opened = open_image(data, Limits())
    assert read_orientation(opened) == 6
    assert opened.tile, "reading the orientation decoded the pixels"
    client = client_factory(decoded_cache_bytes=32_000_000 if cache_decoded else 0)
    image = fetch(client, signer, put("late-exif.png", data), width=60)
    assert image.size == (60, 40)
    assert all(near(got, want) for got, want in zip(corners(image), [RED, GREEN, BLUE, YELLOW], strict=True))


def test_broken_exif_means_no_rotation(client: TestClient, signer: URLSigner, put: Any) -> None:
    jpeg = save(quadrants(), "JPEG", quality=95)
    bogus = b"Exif\x00\x00MM\x00\x2a\xff\xff\xff\xf0garbage"  # a TIFF header pointing past the end
    segment = b"\xff\xe1" + struct.pack(">H", len(bogus) + 2) + bogus
    source = put("broken-exif.jpg", jpeg[:2] + segment + jpeg[2:])
    image = fetch(client, signer, source, width=60)
    assert image.size == (60, 40)
    assert near(corners(image)[0], RED)


def test_crop_box_is_in_upright_pixels(client: TestClient, signer: URLSigner, put: Any) -> None:
    source = put("crop6.png", save(quadrants((200, 100)).transpose(STORE[6]), "PNG", exif=exif_with(6)))
    image = fetch(client, signer, source, crop=(100, 0, 100, 50))  # the upright top-right quarter
    assert image.size == (100, 50)
    assert near(tuple(round(v) for v in ImageStat.Stat(image.convert("RGB")).mean), GREEN, 2)


# --- alpha and modes ----------------------------------------------------------------------------------------


def disc_on_transparent_black() -> Image.Image:
    """An opaque white disc on fully transparent *black* pixels: a straight-alpha resize bleeds the black in."""
    image = Image.new("RGBA", (200, 200), (0, 0, 0, 0))
    ImageDraw.Draw(image).ellipse((40, 40, 160, 160), fill=(255, 255, 255, 255))
    return image


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
@pytest.mark.parametrize("fmt", ["png", "webp", "avif", "gif"])
def test_alpha_is_kept_where_the_format_has_it(
    client: TestClient, signer: URLSigner, put: Any, fmt: str, mode: str
) -> None:
    source = put("disc.png", save(disc_on_transparent_black().convert(mode), "PNG"))
    image = fetch(client, signer, source, width=50, format=fmt).convert("RGBA")
    assert image.getpixel((1, 1))[3] == 0  # type: ignore[index]
    assert image.getpixel((25, 25))[3] == 255  # type: ignore[index]


def test_resize_in_premultiplied_alpha_leaves_no_dark_halo(client: TestClient, signer: URLSigner, put: Any) -> None:
    source = put("disc.png", save(disc_on_transparent_black(), "PNG"))
    image = fetch(client, signer, source, width=37).convert("RGBA")
    edge = [image.getpixel((x, y)) for x in range(37) for y in range(37)]
    partial = [pixel for pixel in edge if 0 < pixel[3] < 255]  # type: ignore[index]
    assert partial, "the disc should have soft edges"
    assert min(min(pixel[:3]) for pixel in partial) >= 240, "edge pixels darkened by the transparent black"  # type: ignore[index]


@pytest.mark.parametrize(("background", "colour"), [(None, (255, 255, 255)), ("#ff0000", (255, 0, 0))])
def test_alpha_is_flattened_for_jpeg(
    client: TestClient, signer: URLSigner, put: Any, background: str | None, colour: tuple[int, int, int]
) -> None:
    source = put("disc.png", save(disc_on_transparent_black(), "PNG"))
    image = fetch(client, signer, source, width=50, format="jpeg", background=background)
    assert image.mode == "RGB"
    assert near(image.getpixel((2, 2)), colour, 12)  # type: ignore[arg-type]
    assert near(image.getpixel((25, 25)), (255, 255, 255), 6)  # type: ignore[arg-type]


def palette_with_trns() -> bytes:
    image = Image.new("P", (40, 40), 0)
    image.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    ImageDraw.Draw(image).rectangle((20, 0, 39, 39), fill=1)
    return save(image, "PNG", transparency=0)


@pytest.mark.parametrize(
    ("name", "data", "mode", "pixel", "expected"),
    [
        ("p-trns.png", palette_with_trns, "RGBA", (30, 20), (0, 0, 255, 255)),
        ("p-trns-clear.png", palette_with_trns, "RGBA", (5, 20), (0, 0, 0, 0)),
        ("l-trns.png", lambda: save(Image.new("L", (40, 40), 7), "PNG", transparency=7), "LA", (5, 5), (0, 0)),
        ("la.png", lambda: save(Image.new("LA", (40, 40), (90, 200)), "PNG"), "LA", (5, 5), (90, 200)),
        ("i16.png", lambda: save(Image.new("I;16", (40, 40), 32768), "PNG"), "L", (5, 5), 128),
        ("bilevel.png", lambda: save(Image.new("1", (40, 40), 1), "PNG"), "L", (5, 5), 255),
        (
            "rgb-trns.png",
            lambda: save(Image.new("RGB", (40, 40), (1, 2, 3)), "PNG", transparency=(1, 2, 3)),
            "RGBA",
            (5, 5),
            (0, 0, 0, 0),
        ),
        (
            "cmyk.jpg",
            lambda: save(Image.new("CMYK", (40, 40), (255, 0, 0, 0)), "JPEG", quality=95),
            "RGB",
            (5, 5),
            (0, 170, 234),  # process cyan through the bundled SWOP profile, not the naive (0, 255, 255)
        ),
    ],
)
def test_input_modes_come_out_right(
    client: TestClient,
    signer: URLSigner,
    put: Any,
    name: str,
    data: Callable[[], bytes],
    mode: str,
    pixel: tuple[int, int],
    expected: Any,
) -> None:
    source = put(name, data())
    image = fetch(client, signer, source, width=40)
    assert image.mode == mode
    got = image.getpixel(pixel)
    if isinstance(expected, int):
        assert isinstance(got, int) and abs(got - expected) <= 1
    elif expected[-1] == 0:  # fully transparent: the colour does not matter
        assert got[-1] == 0  # type: ignore[index]
    else:
        assert near(got, expected, 3)  # type: ignore[arg-type]


# --- animation ----------------------------------------------------------------------------------------------


def animated_gif(count: int = 3, size: tuple[int, int] = (64, 48), **params: Any) -> bytes:
    colours = [RED, GREEN, BLUE, YELLOW, (0, 0, 0), (255, 255, 255)]
    frames = [Image.new("RGB", size, colours[i % len(colours)]) for i in range(count)]
    params.setdefault("duration", [100 * (i + 1) for i in range(count)])
    return save(frames[0], "GIF", save_all=True, append_images=frames[1:], **params)


def timeline(image: Image.Image) -> list[int]:
    durations = []
    for index in range(getattr(image, "n_frames", 1)):
        image.seek(index)
        image.load()
        durations.append(round(image.info["duration"]))
    return durations


@pytest.mark.parametrize(("fmt", "loop"), [("gif", 2), ("webp", 3), ("png", 3), ("avif", None)])
def test_animation_keeps_timing_and_play_count(
    client: TestClient, signer: URLSigner, put: Any, fmt: str, loop: int | None
) -> None:
    source = put("anim.gif", animated_gif(loop=2))  # GIF loop value 2: plays three times
    response = client.get(signer.path(source, width=32, format=fmt))
    assert response.headers["content-type"] == f"image/{fmt}"
    image = Image.open(io.BytesIO(response.content))
    assert image.size == (32, 24)
    assert timeline(image) == [100, 200, 300]
    if loop is not None:
        assert image.info.get("loop") == loop
    image.seek(1)
    assert near(image.convert("RGB").getpixel((16, 12)), GREEN, 8)  # type: ignore[arg-type]


def test_gif_without_loop_block_plays_once(client: TestClient, signer: URLSigner, put: Any) -> None:
    source = put("once.gif", animated_gif())
    webp = Image.open(io.BytesIO(client.get(signer.path(source, width=32, format="webp")).content))
    assert webp.info["loop"] == 1
    gif = Image.open(io.BytesIO(client.get(signer.path(source, width=32)).content))
    assert "loop" not in gif.info


def test_apng_to_webp_keeps_the_animation(client: TestClient, signer: URLSigner, put: Any) -> None:
    frames = [Image.new("RGBA", (40, 40), (*colour, 255)) for colour in (RED, GREEN, BLUE)]
    source = put(
        "anim.png", save(frames[0], "PNG", save_all=True, append_images=frames[1:], duration=[50, 60, 70], loop=0)
    )
    image = Image.open(io.BytesIO(client.get(signer.path(source, width=20, format="webp")).content))
    assert timeline(image) == [50, 60, 70]
    assert image.info["loop"] == 0


def test_animation_to_jpeg_is_its_first_frame(client: TestClient, signer: URLSigner, put: Any) -> None:
    source = put("anim.gif", animated_gif())
    image = fetch(client, signer, source, width=32, format="jpeg")
    assert near(image.getpixel((16, 12)), RED, 8)  # type: ignore[arg-type]


def test_over_the_frame_limit_is_413(client_factory: Callable[..., TestClient], signer: URLSigner, put: Any) -> None:
    source = put("many.gif", animated_gif(count=6))
    client = client_factory(max_frames=5)
    response = client.get(signer.path(source, width=32))
    assert response.status_code == 413
    # Even a still output is refused: the limit is on the source, checked before decoding.
    assert client.get(signer.path(source, width=32, format="jpeg")).status_code == 413


def test_over_the_animation_pixel_budget_is_413(
    client_factory: Callable[..., TestClient], signer: URLSigner, put: Any
) -> None:
    source = put("big.gif", animated_gif(count=4, size=(100, 100)))
    assert client_factory(max_animation_pixels=39_999).get(signer.path(source, width=32)).status_code == 413
    assert client_factory(max_animation_pixels=40_000).get(signer.path(source, width=32)).status_code == 200


def test_animation_output_over_the_pixel_budget_is_413(
    client_factory: Callable[..., TestClient], signer: URLSigner, put: Any
) -> None:
    source = put("small.gif", animated_gif(count=4, size=(100, 100)))
    client = client_factory(max_animation_pixels=40_000)
    assert client.get(signer.path(source, width=100)).status_code == 200
    # Upscaled or padded, four frames of 200x200 would need 160 000 pixels: refused before decoding.
    assert client.get(signer.path(source, width=200, upscale=True)).status_code == 413
    assert client.get(signer.path(source, width=200, height=200, fit="pad")).status_code == 413
    assert client.get(signer.path(source, width=200, height=200, fit="pad", format="jpeg")).status_code == 200


def test_gif_frame_outside_the_screen_is_413(client: TestClient, signer: URLSigner, put: Any) -> None:
    # Pillow CVE-style extents bomb: a 64x48 screen whose second frame sits at (60000, 60000).
    data = bytearray(animated_gif(count=2, optimize=False))
    descriptors = [i for i in range(len(data) - 10) if data[i] == 0x2C and data[i + 5 : i + 9] == bytes([64, 0, 48, 0])]
    struct.pack_into("<HH", data, descriptors[-1] + 1, 60000, 60000)
    response = client.get(signer.path(put("extents.gif", bytes(data)), width=32))
    assert response.status_code == 413


def test_truncated_animation_is_refused_not_cut(client: TestClient, signer: URLSigner, put: Any) -> None:
    data = animated_gif(count=4, size=(64, 64))
    response = client.get(signer.path(put("cut.gif", data[: len(data) - 40]), width=32))
    assert response.status_code == 422


# --- metadata, encoders, negotiation -------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp", "avif", "gif"])
def test_metadata_is_stripped(client: TestClient, signer: URLSigner, put: Any, fmt: str) -> None:
    exif = exif_with(1)
    exif[0x010F] = "SecretCam"  # Make
    exif[0xA431] = "SERIAL-12345"  # BodySerialNumber
    exif.get_ifd(0x8825)[2] = (52.0, 31.0, 0.0)  # GPSLatitude
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    source = put("meta.jpg", save(quadrants(), "JPEG", exif=exif, icc_profile=icc, comment=b"private note"))
    response = client.get(signer.path(source, width=60, format=fmt))
    body = response.content
    for secret in (b"SecretCam", b"SERIAL-12345", b"private note", b"Exif\x00\x00"):
        assert secret not in body
    image = decode(body)
    assert "icc_profile" not in image.info and not image.getexif()


def test_large_jpegs_are_progressive_small_ones_baseline(client: TestClient, signer: URLSigner, put: Any) -> None:
    source = put("big.png", save(quadrants((800, 600)), "PNG"))
    assert fetch(client, signer, source, width=400, format="jpeg").info.get("progressive")
    assert not fetch(client, signer, source, width=64, format="jpeg").info.get("progressive")


@pytest.mark.parametrize("fmt", ["jpeg", "webp", "avif"])
def test_quality_changes_the_size(client: TestClient, signer: URLSigner, fmt: str) -> None:
    sizes = [
        len(client.get(signer.path("photos/landscape.jpg", width=300, format=fmt, quality=q)).content) for q in (30, 90)
    ]
    assert sizes[0] < sizes[1]


@pytest.mark.parametrize(
    ("accept", "media_type"),
    [
        ("image/avif,image/webp,image/apng,*/*;q=0.8", "image/avif"),
        ("image/webp,*/*", "image/webp"),
        ("image/avif;q=0, image/webp", "image/webp"),
        ("text/html,*/*;q=0.8", "image/jpeg"),
        (None, "image/jpeg"),
    ],
)
def test_format_auto_follows_accept(client: TestClient, signer: URLSigner, accept: str | None, media_type: str) -> None:
    path = signer.path("photos/landscape.jpg", width=120, format="auto")
    headers = {"accept": accept} if accept else {}
    response = client.get(path, headers=headers)
    assert response.headers["content-type"] == media_type
    assert response.headers["vary"] == "Accept"
    again = client.get(path, headers={**headers, "if-none-match": response.headers["etag"]})
    assert again.status_code == 304 and again.headers["vary"] == "Accept"


# --- smart crop ---------------------------------------------------------------------------------------------


def busy(size: tuple[int, int]) -> Image.Image:
    """A detailed, colourful patch: a small checkerboard of saturated colours."""
    image = Image.new("RGB", size)
    draw = ImageDraw.Draw(image)
    for y in range(0, size[1], 6):
        for x in range(0, size[0], 6):
            draw.rectangle((x, y, x + 5, y + 5), fill=RED if (x + y) // 6 % 2 else BLUE)
    return image


@pytest.mark.parametrize(("where", "box"), [((30, 70), (100, 100)), ((600, 70), (100, 100)), ((150, 20), (60, 60))])
def test_smart_crop_keeps_the_subject(
    client: TestClient, signer: URLSigner, put: Any, where: tuple[int, int], box: tuple[int, int]
) -> None:
    scene = Image.new("RGB", (800, 240), (200, 200, 205))
    scene.paste(busy(box), where)
    source = put("scene.png", save(scene, "PNG"))
    smart = fetch(client, signer, source, width=240, height=240, fit="cover", gravity="smart")
    centre = fetch(client, signer, source, width=240, height=240, fit="cover")
    detail = [max(ImageStat.Stat(image.convert("RGB")).stddev) for image in (smart, centre)]
    assert detail[0] > 40 > detail[1], detail


def test_smart_crop_finds_a_face_high_in_a_portrait(client: TestClient, signer: URLSigner, put: Any) -> None:
    portrait = Image.new("RGB", (300, 900), (70, 90, 120))
    draw = ImageDraw.Draw(portrait)
    draw.ellipse((90, 60, 210, 220), fill=(224, 172, 140))  # skin tone
    draw.ellipse((120, 110, 135, 125), fill=(30, 30, 30))
    draw.ellipse((165, 110, 180, 125), fill=(30, 30, 30))
    source = put("portrait-face.png", save(portrait, "PNG"))
    image = fetch(client, signer, source, width=150, height=150, fit="cover", gravity="smart")
    assert near(image.getpixel((75, 60)), (224, 172, 140), 12)  # type: ignore[arg-type]


def test_smart_crop_of_a_featureless_image_stays_centred(client: TestClient, signer: URLSigner, put: Any) -> None:
    source = put("gradient.png", save(Image.linear_gradient("L").rotate(90).resize((800, 200)), "PNG"))
    smart = fetch(client, signer, source, width=100, height=100, fit="cover", gravity="smart")
    centre = fetch(client, signer, source, width=100, height=100, fit="cover")
    assert max(ImageStat.Stat(smart.convert("RGB")).mean) == pytest.approx(
        max(ImageStat.Stat(centre.convert("RGB")).mean), abs=4
    )


def test_configure_sets_pillow_guards_once(client_factory: Callable[..., TestClient]) -> None:
    import warnings

    from PIL import ImageFile

    client_factory(max_source_pixels=12_345_678)
    assert Image.MAX_IMAGE_PIXELS == 12_345_678
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    # Our own filters, not pytest's blanket "error": the bomb warning is an error, corrupt-EXIF noise is ignored.
    assert any(f[0] == "error" and f[2] is Image.DecompressionBombWarning for f in warnings.filters)
    assert any(f[0] == "ignore" and f[3] is not None and f[3].pattern.startswith("PIL") for f in warnings.filters)
