"""The fast render path gives the pixels of the plain one.

JPEG DCT scaling (``draft``) and resampling in stored orientation (the plan's region mapped back
through the EXIF orientation, only the small result turned upright) are shortcuts: these tests
hold them to a full-size decode, turned upright first, then resampled with LANCZOS.
"""

from __future__ import annotations

import io
import math
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageChops, ImageOps, ImageStat
from starlette.testclient import TestClient

from tests.helpers import decode
from thumbsvc.client import URLSigner
from thumbsvc.geometry import stored_box

# The transform that stores an upright picture so that applying orientation N shows it upright again.
STORE = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


@pytest.fixture
def put(media_root: Path) -> Callable[[str, bytes], str]:
    def write(name: str, data: bytes) -> str:
        (media_root / name).write_bytes(data)
        return name

    return write


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
    transpose = STORE[orientation]
    stored = image.transpose(transpose) if transpose is not None else image
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    stored.save(buffer, "JPEG", quality=95, exif=exif)
    return buffer.getvalue()


def psnr(a: Image.Image, b: Image.Image) -> float:
    """Luma PSNR of two images of the same size."""
    assert a.size == b.size, (a.size, b.size)
    difference = ImageChops.difference(a.convert("L"), b.convert("L"))
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
    transpose = STORE[orientation]
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
