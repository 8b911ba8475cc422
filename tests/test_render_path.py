"""The fast render path gives the pixels of the plain one.

JPEG DCT scaling (``draft``), resampling in stored orientation (the plan's region mapped back
through the EXIF orientation, only the small result turned upright) and resampling a JPEG as
YCbCr planes (chroma at half resolution, as the encoder keeps it) are shortcuts: these tests hold
them to a full-size decode, turned upright first, then resampled with LANCZOS.
"""

from __future__ import annotations

import io
import math
import random
from typing import Any

import pytest
from PIL import Image, ImageChops, ImageDraw, ImageOps, ImageStat
from starlette.testclient import TestClient

from tests.helpers import STORE, decode
from thumbsvc.client import URLSigner
from thumbsvc.geometry import plan, stored_box
from thumbsvc.options import make_options


def scene(size: tuple[int, int] = (960, 640)) -> Image.Image:
    """An upright picture with detail everywhere and no symmetry: gradients, noise and a few shapes."""
    width, height = size
    red = Image.linear_gradient("L").resize(size)
    green = Image.radial_gradient("L").resize(size)
    blue = Image.effect_noise(size, 60).point(lambda v: min(255, v))
    image = Image.merge("RGB", (red, green, blue))
    image.paste((250, 250, 250), (width // 10, height // 8, width // 3, height // 3))
    image.paste((20, 20, 20), (width // 2, height // 2, width // 2 + width // 9, height - height // 7))
    return image


def stored_as(image: Image.Image, orientation: int) -> bytes:
    """The JPEG a camera writes for ``image`` held with EXIF ``orientation``."""
    transpose = STORE.get(orientation)
    stored = image.transpose(transpose) if transpose is not None else image
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    stored.save(buffer, "JPEG", quality=95, exif=exif)
    return buffer.getvalue()


def psnr(a: Image.Image, b: Image.Image, band: str = "Y") -> float:
    """PSNR of one YCbCr plane (luma by default) of two images of the same size."""
    assert a.size == b.size, (a.size, b.size)
    difference = ImageChops.difference(a.convert("YCbCr").getchannel(band), b.convert("YCbCr").getchannel(band))
    mse = sum(value * value * count for value, count in enumerate(difference.histogram())) / (a.width * a.height)
    return 99.0 if mse == 0 else 10 * math.log10(255**2 / mse)


def upright_of(stored: Image.Image, orientation: int) -> Image.Image:
    """What a viewer shows for ``stored`` pixels tagged with EXIF ``orientation`` (Pillow's reading)."""
    stored.getexif()[0x0112] = orientation
    return ImageOps.exif_transpose(stored)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_stored_box_maps_an_upright_box_onto_the_stored_pixels(orientation: int) -> None:
    rng = random.Random(orientation)
    upright = Image.frombytes("L", (37, 23), bytes(rng.randrange(256) for _ in range(37 * 23)))
    transpose = STORE.get(orientation)
    stored = upright.transpose(transpose) if transpose is not None else upright.copy()
    assert upright_of(stored.copy(), orientation).tobytes() == upright.tobytes()
    for _ in range(40):
        left, top = rng.randrange(upright.width), rng.randrange(upright.height)
        right, bottom = rng.randrange(left + 1, upright.width + 1), rng.randrange(top + 1, upright.height + 1)
        box = stored_box((left, top, right, bottom), upright.size, orientation)
        piece = stored.crop((int(box[0]), int(box[1]), int(box[2]), int(box[3])))
        assert upright_of(piece, orientation).tobytes() == upright.crop((left, top, right, bottom)).tobytes()


@pytest.mark.parametrize("orientation", range(2, 9))
@pytest.mark.parametrize(
    "options",
    [
        {"width": 200, "height": 200, "fit": "cover", "gravity": "north-east"},
        {"width": 150, "height": 300, "fit": "cover", "gravity": (0.2, 0.7)},
        {"width": 300, "crop": (100, 40, 500, 420)},
        {"width": 240, "height": 240, "fit": "pad", "gravity": "south"},
        {"width": 90, "height": 160, "fit": "fill"},
    ],
    ids=["cover-ne", "cover-focal", "crop", "pad", "fill"],
)
def test_an_oriented_source_renders_like_its_upright_twin(
    client: TestClient, signer: URLSigner, put: Any, orientation: int, options: dict[str, Any]
) -> None:
    picture = scene()
    upright = put("upright.jpg", stored_as(picture, 1))
    turned = put(f"turned-{orientation}.jpg", stored_as(picture, orientation))
    expected = decode(client.get(signer.path(upright, **options)).content)
    response = client.get(signer.path(turned, **options))
    assert response.status_code == 200
    actual = decode(response.content)
    assert actual.size == expected.size
    # Both are q95 re-encodes of one picture (the stored one turned), resampled in a different order.
    assert psnr(actual, expected) > 38, psnr(actual, expected)


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("where", [(40, 60), (620, 90)])
def test_smart_crop_finds_the_subject_however_the_source_is_stored(
    client: TestClient, signer: URLSigner, put: Any, orientation: int, where: tuple[int, int]
) -> None:
    picture = Image.new("RGB", (800, 260), (200, 200, 205))
    patch = Image.new("RGB", (110, 110))
    for y in range(0, 110, 10):
        for x in range(0, 110, 10):
            patch.paste((220, 30, 30) if (x + y) // 10 % 2 else (30, 30, 220), (x, y, x + 10, y + 10))
    picture.paste(patch, where)
    source = put(f"subject-{orientation}.jpg", stored_as(picture, orientation))
    image = decode(client.get(signer.path(source, width=200, height=200, fit="cover", gravity="smart")).content)
    assert image.size == (200, 200)
    # The whole patch is in the crop: its red and blue squares, around the patch's place in the crop.
    crop_left = max(0, min(800 - 260, where[0] + 55 - 130))
    centre = (round((where[0] + 55 - crop_left) * 200 / 260), round((where[1] + 55) * 200 / 260))
    assert max(ImageStat.Stat(image.crop((centre[0] - 30, centre[1] - 30, centre[0] + 30, centre[1] + 30))).stddev) > 60


def full_decode_reference(data: bytes, size: tuple[int, int]) -> Image.Image:
    """No DCT scaling, turned upright first, the whole image resampled with LANCZOS."""
    with Image.open(io.BytesIO(data)) as opened:
        opened.load()
        upright = ImageOps.exif_transpose(opened)
    return upright.convert("RGB").resize(size, Image.Resampling.LANCZOS)


@pytest.mark.parametrize(
    ("source_size", "width", "min_psnr"),
    [
        ((1999, 1333), 1200, 50),  # 1.67 px per output px: 1/1 decode (1/2 would leave 0.83)
        ((2999, 1999), 1100, 42),  # 2.7: 1/2 decode, 1.36 left
        ((3001, 2001), 700, 42),  # 4.3: 1/2 (1/4 would leave 1.07: 40.6 dB)
        ((3001, 2001), 360, 42),  # 8.3: 1/4, odd sizes (1/8 would leave 1.04: 37.6 dB)
        ((3001, 2001), 180, 39),  # 16.7: 1/8
    ],
)
@pytest.mark.parametrize("orientation", [1, 6])
def test_dct_scaled_decode_keeps_full_decode_quality(
    client: TestClient,
    signer: URLSigner,
    put: Any,
    source_size: tuple[int, int],
    width: int,
    min_psnr: float,
    orientation: int,
) -> None:
    data = stored_as(scene(source_size), orientation)
    source = put("big.jpg", data)
    response = client.get(signer.path(source, width=width, format="png"))
    assert response.status_code == 200
    actual = decode(response.content)
    reference = full_decode_reference(data, actual.size)
    assert actual.width == width
    assert psnr(actual, reference) > min_psnr, psnr(actual, reference)
    # Not darker, lighter or shifted in colour on the whole.
    for got, want in zip(ImageStat.Stat(actual.convert("RGB")).mean, ImageStat.Stat(reference).mean, strict=True):
        assert got == pytest.approx(want, abs=1.5)


def colour_stripes(size: tuple[int, int] = (1000, 700)) -> Image.Image:
    """Saturated stripes 11-41 px wide, standing in the top half, lying in the bottom half: chroma edges everywhere."""
    colours = [(220, 30, 30), (30, 200, 30), (30, 30, 220), (230, 230, 30), (200, 40, 200)]
    image = Image.new("RGB", size, (128, 128, 128))
    draw = ImageDraw.Draw(image)
    x = index = 0
    while x < size[0]:
        width = 13 + (index * 7) % 29
        draw.rectangle((x, 0, x + width - 1, size[1] // 2), fill=colours[index % 5])
        x, index = x + width, index + 1
    y, index = size[1] // 2, 0
    while y < size[1]:
        height = 11 + (index * 5) % 23
        draw.rectangle((0, y, size[0] - 1, y + height - 1), fill=colours[(index + 2) % 5])
        y, index = y + height, index + 1
    return image


def jpeg_round_trip(image: Image.Image) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=95)
    return decode(buffer.getvalue()).convert("RGB")


@pytest.mark.parametrize(
    "options",
    [
        {"width": 333},  # odd width: the last chroma sample stands for one pixel
        {"width": 300},
        {"width": 151, "height": 151, "fit": "cover"},
        {"width": 701},  # 1.43 px per output px: no DCT scaling
        {"width": 90, "height": 400, "fit": "cover", "gravity": "east"},
    ],
)
def test_jpeg_chroma_stays_in_register(
    client: TestClient, signer: URLSigner, put: Any, options: dict[str, Any]
) -> None:
    picture = colour_stripes()
    data = stored_as(picture, 1)
    source = put("stripes.jpg", data)
    actual = decode(client.get(signer.path(source, format="jpeg", quality=95, **options)).content).convert("RGB")
    with Image.open(io.BytesIO(data)) as opened:
        full = opened.convert("RGB")
    # The reference: LANCZOS over the same region of a full decode, through the same 4:2:0 JPEG.
    layout = plan(full.size, make_options(**options), max_output_px=4096)
    assert layout.size == actual.size
    reference = jpeg_round_trip(full.resize(layout.size, Image.Resampling.LANCZOS, box=layout.region))
    assert psnr(actual, reference) > 38, psnr(actual, reference)
    # Chroma shifted by a fraction of a pixel on these edges scores under 28 dB.
    for band in ("Cb", "Cr"):
        assert psnr(actual, reference, band) > 34, (band, psnr(actual, reference, band))


@pytest.mark.parametrize("fmt", ["png", "webp", "avif"])
def test_jpeg_to_other_formats_keeps_its_colours(client: TestClient, signer: URLSigner, put: Any, fmt: str) -> None:
    picture = colour_stripes((600, 400)).resize((120, 80), Image.Resampling.BOX).resize((600, 400))
    source = put("soft-stripes.jpg", stored_as(picture, 1))
    actual = decode(client.get(signer.path(source, width=300, format=fmt)).content).convert("RGB")
    expected = picture.resize(actual.size, Image.Resampling.LANCZOS)
    for band in ("Y", "Cb", "Cr"):
        assert psnr(actual, expected, band) > 30, (band, psnr(actual, expected, band))


def test_an_rgb_coded_jpeg_is_not_read_as_ycbcr(client: TestClient, signer: URLSigner, put: Any) -> None:
    # Adobe APP14 transform 0: the components are R, G, B; decoding them as YCbCr would turn red into green.
    buffer = io.BytesIO()
    Image.new("RGB", (400, 300), (220, 30, 30)).save(buffer, "JPEG", quality=95, keep_rgb=True)
    with Image.open(io.BytesIO(buffer.getvalue())) as opened:
        assert opened.info.get("adobe_transform") == 0
    source = put("rgb-coded.jpg", buffer.getvalue())
    image = decode(client.get(signer.path(source, width=100, format="jpeg")).content)
    red, green, blue = image.convert("RGB").getpixel((50, 37))  # type: ignore[misc]
    assert red > 200 and green < 60 and blue < 60


@pytest.mark.parametrize(
    ("source_size", "width", "orientation"),
    [
        ((1603, 1069), 400, 1),
        ((1603, 1069), 400, 6),
        ((3205, 2139), 400, 1),
        ((3205, 2139), 200, 8),
        ((1603, 1069), 200, 3),
    ],
)
def test_a_dct_scaled_odd_sized_jpeg_stays_in_register(
    client: TestClient, signer: URLSigner, put: Any, source_size: tuple[int, int], width: int, orientation: int
) -> None:
    # The decoder pads the last block: 1603 px at 1/2 decode to 802, but the grid is still 801.5 wide.
    # Mapping the region by 802/1603 instead shifts the far edge by half a decoded pixel (about 31 dB here).
    data = stored_as(colour_stripes(source_size), orientation)
    source = put("odd.jpg", data)
    actual = decode(client.get(signer.path(source, width=width, format="png")).content)
    reference = full_decode_reference(data, actual.size)
    assert psnr(actual, reference) > 40, psnr(actual, reference)
