"""Smart crop on the shapes that broke it: analysis samples one or two pixels thin (issue 14)."""

from __future__ import annotations

import pytest
from PIL import Image, ImageDraw

from thumbsvc.smartcrop import blank_rim, focus_point


@pytest.mark.parametrize("size", [(1, 1), (1, 128), (128, 1), (2, 128), (128, 2), (2, 2)])
def test_a_map_with_no_inside_is_all_rim(size: tuple[int, int]) -> None:
    edges = blank_rim(Image.new("L", size, 255))
    assert edges.size == size
    assert edges.getextrema() == (0, 0)


def test_the_rim_of_a_larger_map_is_blanked_and_the_inside_kept() -> None:
    edges = blank_rim(Image.new("L", (5, 4), 200))
    assert [edges.getpixel((x, 0)) for x in range(5)] == [0] * 5
    assert edges.getpixel((0, 2)) == edges.getpixel((4, 2)) == 0
    assert edges.getpixel((1, 1)) == edges.getpixel((3, 2)) == 200


@pytest.mark.parametrize("size", [(16, 3000), (5, 1000), (1, 4000)])
def test_a_thin_source_still_finds_its_subject(size: tuple[int, int]) -> None:
    # A saturated red band near the bottom of a grey strip: a 3:2 window slides vertically onto it.
    width, height = size
    image = Image.new("RGB", size, (128, 128, 128))
    ImageDraw.Draw(image).rectangle((0, int(height * 0.85), width, int(height * 0.86)), fill=(230, 20, 20))
    x, y = focus_point(image, (0, 0, width, height), 3 / 2)
    assert x == 0.5
    assert y == pytest.approx(0.855, abs=0.02)
