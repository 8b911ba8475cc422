from __future__ import annotations

import pytest

from thumbsvc.options import RenderOptions, format_options, make_options, parse_options, split_options


@pytest.mark.parametrize(
    ("kwargs", "text"),
    [
        ({"width": 300, "height": 200}, "300x200"),
        ({"width": 300}, "300x"),
        ({"height": 200}, "x200"),
        ({}, "x"),
        ({"width": 300, "height": 200, "fit": "cover", "gravity": "smart"}, "300x200/fit:cover/g:smart"),
        ({"width": 10, "gravity": (0.25, 1)}, "10x/g:0.25:1"),
        ({"width": 10, "gravity": (0, 0.33333)}, "10x/g:0:0.3333"),
        ({"width": 10, "crop": (0, 5, 100, 50)}, "10x/crop:0:5:100:50"),
        ({"width": 10, "format": "JPG", "quality": 80}, "10x/f:jpeg/q:80"),
        ({"width": 10, "dpr": 2}, "10x/dpr:2"),
        ({"width": 10, "dpr": 1.5}, "10x/dpr:1.5"),
        ({"width": 10, "background": "#FFAA00"}, "10x/bg:ffaa00"),
        ({"width": 10, "background": "#ffaa0080"}, "10x/bg:ffaa0080"),
        ({"width": 10, "upscale": True}, "10x/up:1"),
        ({"width": 10, "trim": 0}, "10x/trim:0"),
        ({"width": 10, "trim": (255, "#ABCDEF")}, "10x/trim:255:abcdef"),
        ({"width": 10, "rotate": 180, "flip": "hv"}, "10x/rot:180/flip:hv"),
        ({"width": 10, "grayscale": True, "blur": 50, "sharpen": 0.3}, "10x/gray:1/blur:50/sharp:0.3"),
        ({"width": 10, "blur": 2.5, "watermark": "logo_2-b"}, "10x/blur:2.5/wm:logo_2-b"),
        (
            {
                "width": 1,
                "height": 2,
                "fit": "pad",
                "gravity": "north-east",
                "crop": (1, 2, 3, 4),
                "format": "auto",
                "quality": 1,
                "dpr": 4,
                "background": "#000000",
                "upscale": True,
            },
            "1x2/fit:pad/g:north-east/crop:1:2:3:4/f:auto/q:1/dpr:4/bg:000000/up:1",
        ),
    ],
)
def test_canonical_text_round_trips(kwargs: dict[str, object], text: str) -> None:
    options = make_options(**kwargs)  # type: ignore[arg-type]
    assert format_options(options) == text
    assert parse_options(text.split("/")) == options


@pytest.mark.parametrize(
    "text",
    [
        "300X200",  # upper-case separator
        "0300x200",  # leading zero
        "0x200",  # zero width
        "300x200/fit:contain",  # default spelled out
        "300x200/g:center",
        "300x200/dpr:1",
        "300x200/up:0",
        "300x200/q:080",
        "300x200/q:0",
        "300x200/q:101",
        "300x200/dpr:4.5",
        "300x200/dpr:2.0",
        "300x200/dpr:1.125",
        "300x200/g:0.50:0.5",
        "300x200/g:1.5:0.5",
        "300x200/g:0.5",
        "300x200/bg:FFFFFF",
        "300x200/bg:fff",
        "300x200/f:tiff",
        "300x200/f:jpg",
        "300x200/fit:crop",
        "300x200/crop:1:2:3",
        "300x200/crop:-1:2:3:4",
        "300x200/crop:1:2:0:4",
        "300x200/q:80/f:webp",  # out of order
        "300x200/q:80/q:80",  # repeated
        "300x200/zoom:2",  # unknown option
        "300x200/fit:",
        "99999999999x1",
    ],
)
def test_non_canonical_or_invalid_options_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_options(text.split("/"))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"width": 0}, "width must be an integer"),
        ({"width": 2.5}, "width must be an integer"),
        ({"width": True}, "width must be an integer"),
        ({"height": 20000}, "height must be an integer"),
        ({"fit": "stretch"}, "fit must be one of"),
        ({"gravity": "top"}, "gravity must be one of"),
        ({"gravity": (1.2, 0.5)}, "focal point"),
        ({"gravity": (0.5,)}, "focal point"),
        ({"crop": (0, 0, 0, 10)}, "crop needs"),
        ({"format": "bmp"}, "format must be one of"),
        ({"quality": 0}, "quality must be"),
        ({"dpr": 5}, "dpr must be"),
        ({"dpr": 0.5}, "dpr must be"),
        ({"dpr": float("nan")}, "dpr must be"),
        ({"background": "red"}, "background must be"),
        ({"background": "#12345"}, "background must be"),
        ({"upscale": "yes"}, "upscale must be"),
    ],
)
def test_bad_client_arguments_raise_clear_value_errors(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_options(**kwargs)  # type: ignore[arg-type]


def test_box_applies_dpr_and_rounds() -> None:
    assert RenderOptions(width=301, height=201, dpr=1.5).box == (452, 302)
    assert RenderOptions(width=300).box == (300, None)


def test_split_options_finds_the_source_after_the_last_option() -> None:
    options, source = split_options(["300x200", "fit:cover", "photos", "cat.jpg"])
    assert options == ["300x200", "fit:cover"]
    assert source == ["photos", "cat.jpg"]
    with pytest.raises(ValueError):
        split_options([])
