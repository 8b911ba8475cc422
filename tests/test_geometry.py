from __future__ import annotations

from typing import Any

import pytest

from thumbsvc.geometry import GeometryError, plan
from thumbsvc.options import make_options


@pytest.mark.parametrize(
    ("source", "options", "canvas"),
    [
        # The side that is given is exact; rounding never loses a pixel there (regression: 30 -> 29).
        ((1000, 748), {"width": 30}, (30, 22)),
        ((1000, 748), {"width": 50}, (50, 37)),
        ((1000, 748), {"height": 22}, (29, 22)),
        ((1000, 748), {"width": 300, "fit": "cover"}, (300, 224)),
        ((1000, 748), {}, (1000, 748)),
        ((1000, 748), {"width": 3000}, (1000, 748)),
        ((1000, 748), {"width": 3000, "upscale": True}, (3000, 2244)),
        ((4000, 3000), {"width": 300, "height": 200, "fit": "contain"}, (267, 200)),
        ((4000, 3000), {"width": 300, "height": 200, "fit": "pad"}, (300, 200)),
        ((4000, 3000), {"width": 300, "height": 200, "fit": "cover", "dpr": 2}, (600, 400)),
        ((940, 2), {"width": 100, "height": 100}, (100, 1)),  # never a zero side
        ((1, 400), {"width": 50, "height": 50}, (1, 50)),
        ((800, 600), {"width": 1600, "height": 400, "fit": "cover"}, (800, 200)),  # largest of the aspect
        ((800, 600), {"width": 1600, "height": 400, "fit": "pad"}, (1600, 400)),
    ],
)
def test_canvas_sizes(source: tuple[int, int], options: dict[str, Any], canvas: tuple[int, int]) -> None:
    assert plan(source, make_options(**options), max_output_px=4096).canvas == canvas


@pytest.mark.parametrize(
    ("gravity", "region"),
    [
        ("center", (500.0, 0.0, 1500.0, 1000.0)),
        ("west", (0.0, 0.0, 1000.0, 1000.0)),
        ("east", (1000.0, 0.0, 2000.0, 1000.0)),
        ((0.9, 0.5), (1000.0, 0.0, 2000.0, 1000.0)),  # clamped to the edge
        ((0.4, 0.5), (300.0, 0.0, 1300.0, 1000.0)),  # centred on the point
    ],
)
def test_cover_region_follows_gravity(gravity: Any, region: tuple[float, ...]) -> None:
    options = make_options(width=100, height=100, fit="cover", gravity=gravity)
    assert plan((2000, 1000), options, max_output_px=4096).region == region


def test_pad_offsets_follow_gravity() -> None:
    options = make_options(width=300, height=200, fit="pad", gravity="south-east")
    result = plan((4000, 3000), options, max_output_px=4096)
    assert result.size == (267, 200)
    assert result.offset == (33, 0)


def test_crop_box_must_lie_inside_the_image() -> None:
    with pytest.raises(GeometryError):
        plan((100, 100), make_options(crop=(50, 50, 60, 10)), max_output_px=4096)


def test_output_limit() -> None:
    with pytest.raises(GeometryError):
        plan((100, 100), make_options(width=5000, upscale=True), max_output_px=4096)
