"""The planar resample (thumbsvc/pixels.py): the way it takes planes out of the decoded image keeps
the GIL free, and must give exactly what resampling each plane on its own gives; and the JPEG DCT
scales the decoder is asked for, 3/8 included."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from tests.helpers import make_photo
from thumbsvc.geometry import REDUCING_GAP
from thumbsvc.pixels import CHROMA_FILTER, CHROMA_REDUCING_GAP, draft_at, extend_edges, resize_planar


def plane_by_plane(image: Image.Image, size: tuple[int, int], box: tuple[float, float, float, float]) -> Image.Image:
    """The same resample written the plain way: every plane taken out at full size, then reduced."""
    luma = image.getchannel(0).resize(size, Image.Resampling.LANCZOS, box=box, reducing_gap=REDUCING_GAP)
    half = ((size[0] + 1) // 2, (size[1] + 1) // 2)
    left, top, right, bottom = box
    span = ((right - left) * 2 * half[0] / size[0], (bottom - top) * 2 * half[1] / size[1])
    factor = (
        max(1, int(span[0] / half[0] / CHROMA_REDUCING_GAP)),
        max(1, int(span[1] / half[1] / CHROMA_REDUCING_GAP)),
    )
    chroma_box = (left / factor[0], top / factor[1], (left + span[0]) / factor[0], (top + span[1]) / factor[1])
    planes = []
    for band in (1, 2):
        plane = image.getchannel(band)
        plane = extend_edges(plane.reduce(factor) if factor != (1, 1) else plane, chroma_box)
        plane = plane.resize(half, CHROMA_FILTER, box=chroma_box)
        plane = plane.resize((2 * half[0], 2 * half[1]), Image.Resampling.NEAREST)
        planes.append(plane if plane.size == size else plane.crop((0, 0, *size)))
    return Image.merge("YCbCr", (luma, *planes))


@pytest.fixture(scope="module")
def decoded() -> Image.Image:
    """A 1501x1001 YCbCr image with detail in every plane (odd sizes: the edges are extended)."""
    size = (1501, 1001)
    return Image.merge(
        "YCbCr",
        (
            Image.effect_noise(size, 60),
            Image.linear_gradient("L").resize(size),
            Image.radial_gradient("L").resize(size),
        ),
    )


@pytest.mark.parametrize(
    ("size", "box"),
    [
        ((300, 200), (0, 0, 1501, 1001)),  # chroma box-reduced by 8 both ways
        ((150, 150), (250.5, 0, 1250.5, 1001)),  # a cover crop with a fractional edge
        ((1201, 801), (0, 0, 1501, 1001)),  # odd size, chroma not reduced
        ((1400, 100), (0, 0, 1501, 1001)),  # fill: chroma reduced by 1 one way, 16 the other
        ((97, 333), (10.25, 20.75, 1400.5, 990)),
    ],
)
def test_the_planar_resample_equals_resampling_each_plane_alone(
    decoded: Image.Image, size: tuple[int, int], box: tuple[float, float, float, float]
) -> None:
    fast = resize_planar(decoded, size, box)
    assert fast.mode == "YCbCr"
    assert fast.size == size
    assert fast.tobytes() == plane_by_plane(decoded, size, box).tobytes()


@pytest.mark.parametrize("planar", [True, False])
def test_a_jpeg_decodes_at_three_eighths(planar: bool) -> None:
    # Pillow's draft offers 1/2^k only; libjpeg-turbo decodes at 3/8 when asked through the same decoder
    # arguments. Odd sizes: the decoder pads its last block, ceil(size * 3/8).
    data = make_photo((4801, 3203))
    with Image.open(io.BytesIO(data)) as image:
        assert draft_at(image, 3, planar=planar) == 0.375
        image.load()
        assert image.size == (1801, 1202)
        assert image.mode == ("YCbCr" if planar else "RGB")
        rgb = image.convert("RGB")
    with Image.open(io.BytesIO(data)) as full:
        reference = full.convert("RGB").resize((1801, 1202), Image.Resampling.BOX)
    for x, y in ((450, 300), (1350, 300), (450, 900), (1350, 900)):  # each quadrant
        assert all(abs(a - b) <= 6 for a, b in zip(rgb.getpixel((x, y)), reference.getpixel((x, y)), strict=True))


@pytest.mark.parametrize(
    ("eighths", "scale", "size"),
    [(8, 1.0, (4801, 3203)), (4, 0.5, (2401, 1602)), (2, 0.25, (1201, 801)), (1, 0.125, (601, 401))],
)
def test_the_other_scales_are_pillows_own(eighths: int, scale: float, size: tuple[int, int]) -> None:
    with Image.open(io.BytesIO(make_photo((4801, 3203)))) as image:
        assert draft_at(image, eighths, planar=True) == scale
        image.load()
        assert (image.size, image.mode) == (size, "YCbCr")
