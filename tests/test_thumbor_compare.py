"""thumbsvc against real thumbor 7.8: one URL matrix, made by libthumbor's ``CryptoURL`` (the client
sites use), asked of both servers over the same corpus files with the same key.

For every URL: the same status; for a 200 the same format and the same output size, and the
pictures alike (mean absolute difference of 32x32 grey versions, alpha flattened onto mid grey,
under ``MAX_DIFFERENCE`` levels of 255). Rows in ``DIFFERENCES`` are where thumbsvc keeps its own
behaviour on purpose (docs/migrating.md, "Where thumbsvc differs"): the test checks the part that
still holds (and, for a size, that it is thumbor's turned).
"""

from __future__ import annotations

import contextlib
import io
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image, ImageCms, ImageOps
from starlette.testclient import TestClient

from tests.helpers import TEST_KEY, corpus_path
from tests.thumbor_server import run_thumbor, thumbor_python
from thumbsvc.app import create_app
from thumbsvc.config import Settings
from thumbsvc.filters import parse_watermarks

libthumbor = pytest.importorskip("libthumbor")

KEY = "thumbor-compare-key"
MAX_DIFFERENCE = 12.0  # mean absolute difference, grey levels of 255, at 32x32

PHOTO = "color/photoprism__example.jpg"  # 750x500 JPEG
SMALL = "color/libjpegturbo__testimgari.jpg"  # 227x149
ROTATED = "orientation/exiforient__Landscape_6.jpg"  # stored 1200x1800, EXIF 6: upright 1800x1200
ALPHA = "png/pillow__pil123rgba.png"  # 162x150 RGBA, a transparent border
PNG_EXIF = "orientation/imagepng__F-exif-chunk-early.png"  # EXIF orientation in a PNG eXIf chunk
CMYK = "color/thumbor__cmyk-icc.jpg"  # CMYK with a profile
ANIMATED = "animated/thumbor__animated.gif"
FILES = (PHOTO, SMALL, ROTATED, ALPHA, PNG_EXIF, CMYK, ANIMATED)


@dataclass(frozen=True)
class Case:
    image: str
    options: dict[str, Any]

    @property
    def id(self) -> str:
        parts = [f"{k}={v}" for k, v in self.options.items()]
        return f"{Path(self.image).stem[:18]}:{','.join(parts) or 'plain'}"


def cases() -> list[Case]:
    """Every grammar element and every filter thumbsvc serves, over corpus images."""
    grammar: list[tuple[str, dict[str, Any]]] = [
        (PHOTO, {}),
        (PHOTO, {"width": 300, "height": 200}),
        (PHOTO, {"width": 200, "height": 300}),
        (PHOTO, {"width": 300}),
        (PHOTO, {"height": 120}),
        (PHOTO, {"width": "orig", "height": 200}),
        (SMALL, {"width": 400, "height": 400}),  # crop mode enlarges
        (PHOTO, {"width": 300, "height": 200, "fit_in": True}),
        (SMALL, {"width": 600, "height": 600, "fit_in": True}),  # fit-in never enlarges
        (PHOTO, {"width": 300, "height": 300, "full_fit_in": True}),
        (PHOTO, {"width": 200, "height": 300, "adaptive_fit_in": True}),
        (PHOTO, {"width": 200, "height": 300, "adaptive_full_fit_in": True}),
        (PHOTO, {"width": 300, "height": 200, "flip": True}),
        (PHOTO, {"width": 300, "height": 200, "flop": True}),
        (PHOTO, {"width": 300, "height": 200, "flip": True, "flop": True}),
        (PHOTO, {"width": 200, "height": 200, "halign": "left"}),
        (PHOTO, {"width": 200, "height": 200, "halign": "right", "valign": "top"}),
        (PHOTO, {"width": 300, "height": 100, "valign": "bottom"}),
        (PHOTO, {"width": 300, "height": 300, "smart": True}),
        (PHOTO, {"width": 200, "crop": ((100, 50), (500, 400))}),
        (PHOTO, {"width": 150, "height": 150, "crop": ((100, 50), (500, 400))}),
        (PHOTO, {"width": 150, "height": 150, "crop": ((600, 400), (900, 900))}),  # clamped into the image
        (ALPHA, {"trim": True}),
        (ALPHA, {"trim": ("bottom-right", 5), "width": 100, "height": 100}),
        (ALPHA, {"trim": ("top-left", 10), "width": 80, "fit_in": True}),
        (ROTATED, {"width": 300, "height": 200}),
        (ROTATED, {"width": 150, "height": 300, "fit_in": True}),
        (CMYK, {"width": 200, "height": 100}),
        (ANIMATED, {"width": 50, "height": 50}),
        (PNG_EXIF, {"width": 200, "height": 100}),
    ]
    filters: list[tuple[str, int, int, bool, list[str]]] = [
        (PHOTO, 300, 200, False, ["quality(60)"]),
        (PHOTO, 300, 200, False, ["format(webp)"]),
        (PHOTO, 300, 200, False, ["format(png)"]),
        (PHOTO, 300, 200, False, ["format(avif)"]),
        (PHOTO, 300, 200, False, ["format(gif)"]),
        (ALPHA, 100, 100, False, ["format(jpeg)"]),
        (PHOTO, 400, 400, True, ["fill(red)"]),
        (PHOTO, 400, 400, True, ["fill(00ff00)", "format(png)"]),
        (PHOTO, 400, 300, True, ["fill(auto)"]),
        (ALPHA, 200, 200, True, ["fill(transparent)", "format(png)"]),
        (ALPHA, 100, 100, False, ["background_color(blue)", "format(jpeg)"]),
        (SMALL, 600, 600, True, ["upscale()"]),
        (SMALL, 600, 600, True, ["upscale()", "fill(white)"]),
        (SMALL, 400, 300, False, ["no_upscale()"]),
        (PHOTO, 300, 300, False, ["stretch()"]),
        (PHOTO, 200, 200, False, ["focal(500x100:700x300)"]),
        (PHOTO, 300, 200, False, ["strip_icc()", "strip_exif()"]),
        (PHOTO, 300, 200, False, ["grayscale()"]),
        (PHOTO, 300, 200, False, ["blur(3)"]),
        (PHOTO, 300, 200, False, ["blur(8,2)"]),
        (PHOTO, 300, 200, False, ["sharpen(2,1,true)"]),
        (PHOTO, 300, 200, False, ["rotate(90)"]),
        (PHOTO, 300, 200, True, ["rotate(270)", "fill(black)"]),
        (PHOTO, 300, 200, False, ["watermark(wm,-10,-10,50)"]),
        (PHOTO, 300, 200, False, ["max_age(60)", "no_such_filter(1)"]),
        (PHOTO, 300, 200, False, ["brightness(10)"]),
    ]
    made = [Case(image, options) for image, options in grammar]
    for image, width, height, fit_in, chain in filters:
        made.append(Case(image, {"width": width, "height": height, "fit_in": fit_in, "filters": chain}))
    return made


# Where thumbsvc keeps its own behaviour (docs/migrating.md, "Where thumbsvc differs"), by case id
# substring: what differs. "pixels": the pictures differ; "size": so do the sizes; "status": thumbor 200.
DIFFERENCES = {
    "pil123rgba:width=100,height=100,fit_in=False,filters=['format(jpeg)']": "pixels",  # white, not black
    "F-exif-chunk-early": "size pixels",
    # thumbor turns CMYK into RGB by Pillow's formula and leaves the CMYK profile on the RGB file.
    "cmyk-icc": "pixels",  # thumbsvc applies a PNG's EXIF orientation
    "width=300,height=300,smart=True": "pixels",  # thumbor without detectors crops the centre
    "watermark(": "pixels",  # the operator's watermark, where the operator put it
    "brightness(10)": "status",
    # rotate() turns the finished thumbnail, fill()'s box too, wherever it stands among the filters.
    "['rotate(270)', 'fill(black)']": "size pixels",  # thumbor's other built-in filters are refused by name
}


def difference(case: Case) -> str:
    return " ".join(value for key, value in DIFFERENCES.items() if key in case.id)


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, TestClient]]:
    corpus = corpus_path()
    if corpus is None:
        pytest.skip("the shared image corpus is not available (set THUMBSVC_CORPUS)")
    python, why = thumbor_python()
    if python is None:
        pytest.skip(f"thumbor 7.8 cannot run here: {why}")
    work = tmp_path_factory.mktemp("thumbor")
    root = work / "media"
    for name in FILES:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(corpus / name, root / name)
    mark = Image.new("RGBA", (60, 30), (255, 255, 255, 255))
    mark.save(root / "wm.png")
    shutil.copyfile(root / "wm.png", root / "wm")  # thumbor's file loader reads watermark(wm) as this path
    settings = Settings(
        keys=(TEST_KEY,),
        media_root=str(root),
        thumbor_key=(KEY,),
        watermarks=tuple(parse_watermarks("wm=wm.png").values()),
    )
    with run_thumbor(python, root, KEY, work) as base, TestClient(create_app(settings)) as client:
        yield base, client


def grey(body: bytes) -> tuple[Image.Image, str, tuple[int, int]]:
    """The decoded picture as 32x32 grey (alpha over mid grey), its format and its size."""
    image: Image.Image = Image.open(io.BytesIO(body))
    fmt, size = image.format or "", image.size
    profile = image.info.get("icc_profile")
    if profile:
        # thumbor carries the source's profile (a browser applies it); thumbsvc writes sRGB.
        with contextlib.suppress(ImageCms.PyCMSError):  # thumbor's CMYK profile on RGB pixels: nothing applies
            source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
            image = ImageCms.profileToProfile(image, source, ImageCms.createProfile("sRGB"), outputMode="RGB") or image
    image = image.convert("RGBA")
    flat = Image.new("RGBA", image.size, (128, 128, 128, 255))
    flat.alpha_composite(image)
    return ImageOps.grayscale(flat.convert("RGB")).resize((32, 32), Image.Resampling.BOX), fmt, size


def mean_difference(a: Image.Image, b: Image.Image) -> float:
    return sum(abs(x - y) for x, y in zip(a.tobytes(), b.tobytes(), strict=True)) / (32 * 32)


@pytest.mark.corpus
@pytest.mark.slow
@pytest.mark.parametrize("case", cases(), ids=lambda case: case.id)
def test_thumbsvc_answers_thumbors_urls_as_thumbor_does(servers: tuple[str, TestClient], case: Case) -> None:
    base, client = servers
    path = libthumbor.CryptoURL(key=KEY).generate(image_url=case.image, **case.options)
    theirs = httpx.get(base + path, timeout=60)
    ours = client.get(path)
    expected = difference(case)
    if "status" in expected:
        assert (theirs.status_code, ours.status_code) == (200, 400), ours.text
        return
    assert ours.status_code == theirs.status_code == 200, (ours.status_code, ours.text, theirs.status_code)
    our_grey, our_format, our_size = grey(ours.content)
    their_grey, their_format, their_size = grey(theirs.content)
    assert our_format == their_format
    if "size" in expected:
        assert our_size == their_size[::-1]
    else:
        assert our_size == their_size
    score = mean_difference(our_grey, their_grey)
    if "pixels" not in expected:  # tests/test_thumbor.py checks thumbsvc's side of each documented difference
        assert score < MAX_DIFFERENCE, f"mean difference {score:.1f}"
