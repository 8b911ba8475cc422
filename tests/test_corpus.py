"""Every file of the shared corpus through the HTTP app, as its MANIFEST.tsv says it must behave.

One test id per file (``test_manifest[orientation/libvips__6.jpg]``): status, media type, upright
size, no metadata. Then orientation cards against their upright twins, colour against a reference
conversion (LittleCMS through ``ImageCms``, with the bundled SWOP profile where a CMYK file has none),
and animations frame by frame.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageCms, ImageOps, ImageStat
from starlette.testclient import TestClient

from tests.helpers import TEST_KEY, corpus_path, decode
from thumbsvc.app import create_app
from thumbsvc.client import URLSigner
from thumbsvc.color import FALLBACK_CMYK_PROFILE
from thumbsvc.config import Settings

BOX = 96
SIGNER = URLSigner(key=TEST_KEY)
# Formats off the allowlist: refused at open (415) before their headers are parsed.
UNSUPPORTED = {"TIFF", "BMP", "ICO", "PSD", "JPEG2000"}
KINDS = {"JPEG": "jpeg", "MPO": "jpeg", "PNG": "png", "GIF": "gif", "WEBP": "webp", "AVIF": "avif"}


@dataclass(frozen=True)
class Row:
    path: str
    category: str
    format: str
    mode: str
    width: int
    height: int
    frames: int
    notes: str

    @property
    def declared_format(self) -> str:
        """The format Pillow reports, or the one the notes say the header would give."""
        match = re.search(r"format would be (\w+)", self.notes)
        return match.group(1) if match else self.format

    @property
    def upright(self) -> tuple[int, int]:
        match = re.search(r"displayed upright it is (\d+)x(\d+)", self.notes)
        return (int(match.group(1)), int(match.group(2))) if match else (self.width, self.height)


def load_manifest() -> list[Row]:
    root = corpus_path()
    if root is None:
        return []
    rows = []
    for line in (root / "MANIFEST.tsv").read_text(encoding="utf-8").splitlines()[1:]:
        path, category, _, _, fmt, mode, width, height, frames, notes = line.split("\t")
        rows.append(Row(path, category, fmt, mode, int(width or 0), int(height or 0), int(frames or 1), notes))
    return rows


ROWS = load_manifest()
BY_PATH = {row.path: row for row in ROWS}


def heif_supported() -> bool:
    from thumbsvc.decode import allowed_formats

    return "HEIF" in allowed_formats()


def expected_status(row: Row) -> int:
    """Decide a file's status from its manifest row, category by category."""
    fmt = row.declared_format
    if fmt.startswith("ERROR: UnidentifiedImageError") or fmt in UNSUPPORTED:
        return 415  # SVG, JPEG XL, non-images, mangled signatures; TIFF, BMP, ICO, PSD, JPEG 2000 by policy
    if fmt == "HEIF":
        return 200 if heif_supported() else 415
    if row.category == "bombs":
        return 413
    if fmt.startswith("ERROR:") or "load() raises" in row.notes:
        return 422  # header or data Pillow cannot decode
    return 200


def contain(size: tuple[int, int], box: int = BOX) -> tuple[int, int]:
    scale = min(box / size[0], box / size[1], 1.0)
    return max(1, min(box, round(size[0] * scale))), max(1, min(box, round(size[1] * scale)))


@pytest.fixture(scope="module")
def app_client(corpus: Path) -> Iterator[TestClient]:
    settings = Settings(keys=(TEST_KEY,), media_root=str(corpus), render_slots=2)
    with TestClient(create_app(settings)) as client:
        yield client


def fetch(client: TestClient, path: str, **options: object) -> Image.Image:
    response = client.get(SIGNER.path(path, **options))
    assert response.status_code == 200, f"{path}: {response.status_code} {response.text}"
    return decode(response.content)


@pytest.mark.corpus
@pytest.mark.parametrize("row", [pytest.param(row, id=row.path) for row in ROWS])
def test_manifest(app_client: TestClient, row: Row) -> None:
    response = app_client.get(SIGNER.path(row.path, width=BOX, height=BOX))
    status = expected_status(row)
    assert response.status_code == status, f"{row.path}: {response.text.strip()}"
    if status != 200:
        assert response.headers["content-type"].startswith("text/plain")
        assert response.headers["cache-control"] == "public, max-age=60"
        return
    kind = KINDS.get(row.format, "jpeg")
    assert response.headers["content-type"] == f"image/{kind}"
    image = decode(response.content)
    assert image.size == contain(row.upright)
    assert image.format == kind.upper()
    for key in ("exif", "icc_profile", "xmp", "XML:com.adobe.xmp", "comment"):
        assert key not in image.info, key
    assert not image.getexif(), "EXIF in the output"
    if row.category == "animated" and row.format != "AVIF":
        assert getattr(image, "n_frames", 1) > 1, "animation lost"


def test_the_manifest_was_read(corpus: Path) -> None:
    assert len(ROWS) == 180
    counts = {status: sum(expected_status(row) == status for row in ROWS) for status in (200, 413, 415, 422)}
    heic = 2 if heif_supported() else 0
    assert counts == {200: 126 + heic, 413: 6, 415: 38 - heic, 422: 10}, counts


# --- orientation -------------------------------------------------------------------------------------------


def mean_difference(a: Image.Image, b: Image.Image) -> float:
    assert a.size == b.size
    return max(ImageStat.Stat(ImageChops.difference(a.convert("RGB"), b.convert("RGB"))).mean)


CARDS = [f"orientation/exiforient__Landscape_{n}.jpg" for n in range(2, 9)]
CARDS += [f"orientation/libvips__{n}.jpg" for n in range(2, 9)]


@pytest.mark.corpus
@pytest.mark.parametrize("path", CARDS)
def test_orientation_cards_look_like_the_upright_card(app_client: TestClient, path: str) -> None:
    upright = fetch(app_client, re.sub(r"_\d\.jpg$", "_1.jpg", path), width=BOX, height=BOX)
    got = fetch(app_client, path, width=BOX, height=BOX)
    assert mean_difference(got, upright) < 12
    # A card flipped the wrong way is far off: the check can tell.
    assert mean_difference(got.transpose(Image.Transpose.FLIP_LEFT_RIGHT), upright) > 20


EXIF_TRANSPOSE = [f"orientation/pillow__hopper_orientation_{n}.{ext}" for n in range(2, 9) for ext in ("jpg", "webp")]
EXIF_TRANSPOSE += [
    "orientation/pillow__rot1mir0.avif",
    "orientation/pillow__rot2mir1.avif",
    "orientation/imagepng__F-exif-chunk-early.png",
    "orientation/pillow__exif_imagemagick_orientation.png",
    "orientation/exifsamples__canon_hdr_NO.jpg",
    "orientation/immich__portrait-orientation-6.jpg",
]


@pytest.mark.corpus
@pytest.mark.parametrize("path", EXIF_TRANSPOSE)
def test_orientation_matches_exif_transpose(app_client: TestClient, corpus: Path, path: str) -> None:
    got = fetch(app_client, path, width=BOX, height=BOX)
    with Image.open(corpus / path) as source:
        reference = ImageOps.exif_transpose(source).convert("RGB")
    reference = reference.resize(got.size, Image.Resampling.LANCZOS)
    wrong = [got.transpose(method) for method in (Image.Transpose.FLIP_LEFT_RIGHT, Image.Transpose.FLIP_TOP_BOTTOM)]
    # JPEG DCT scaling and lossy small outputs keep a few levels of difference even when right.
    assert mean_difference(got, reference) < 10
    assert 2 * mean_difference(got, reference) < min(mean_difference(w, reference) for w in wrong)


def test_avif_named_orientation_6_is_not_rotated(app_client: TestClient) -> None:
    # Its name says 6, but it has no irot box and EXIF orientation 1 (manifest note).
    assert fetch(app_client, "formats/libvips__avif-orientation-6.avif", width=BOX, height=BOX).size == (72, 96)


def test_cmyk_with_orientation_is_rotated_and_converted(app_client: TestClient) -> None:
    rotated = fetch(
        app_client, "orientation/thumbor__Giunchedi__Filippo_January_2015_01-cmyk-orientation-exif.jpg", width=BOX
    )
    plain = fetch(app_client, "color/thumbor__Giunchedi__Filippo_January_2015_01-cmyk.jpg", height=BOX)
    assert rotated.size == (BOX, 144)
    assert mean_difference(rotated, plain.transpose(Image.Transpose.ROTATE_270)) < 8


# --- colour -------------------------------------------------------------------------------------------------

COLOUR = [
    "color/sharp__Channel_digital_image_CMYK_color.jpg",
    "color/thumbor__cmyk-icc.jpg",
    "color/thumbor__Giunchedi__Filippo_January_2015_01-cmyk.jpg",
    "color/leptonrs__fourcolorchannels.jpg",
    "color/photoprism__Iceland-P3.jpg",
    "color/photoprism__example.jpg",
    "color/libvips__sample-xyb.jpg",
    "color/pillow__icc_profile_big.jpg",
    "color/photoprism__Screenshot_2019-05-21_at_10.45.52.png",
    "color/sharp__concert.jpg",
    "color/thumbor__grayscale-icc.jpg",
    "color/lepton__grayscale.jpg",
    "color/sharp__prophoto.png",
    "formats/libvips__avif-orientation-6.avif",
    "png/libjpegturbo__monkey16.png",
]
# Files whose profile moves colours visibly: the output must be nearer the converted than the raw values.
WIDE_GAMUT = {
    "color/photoprism__Iceland-P3.jpg",
    "color/photoprism__example.jpg",
    "color/libvips__sample-xyb.jpg",
    "color/pillow__icc_profile_big.jpg",
    "color/sharp__prophoto.png",
    "color/thumbor__grayscale-icc.jpg",
    "color/sharp__Channel_digital_image_CMYK_color.jpg",
    "color/thumbor__cmyk-icc.jpg",
    "color/thumbor__Giunchedi__Filippo_January_2015_01-cmyk.jpg",
    "color/leptonrs__fourcolorchannels.jpg",
}


def reference_srgb(path: Path) -> tuple[Image.Image, Image.Image]:
    """Return (the source converted to sRGB through its profile, the raw values read as sRGB), upright, in RGB."""
    with Image.open(path) as source:
        source.load()
        icc = source.info.get("icc_profile")
        image = ImageOps.exif_transpose(source)
    raw = image.convert("RGB")
    if not icc and image.mode == "CMYK":
        # Untagged CMYK is SWOP press CMYK by convention: the bundled fallback profile describes it.
        icc = FALLBACK_CMYK_PROFILE.read_bytes()
    if not icc:
        return raw, raw
    srgb = ImageCms.createProfile("sRGB")
    converted = ImageCms.profileToProfile(
        image,
        ImageCms.ImageCmsProfile(io.BytesIO(icc)),
        srgb,
        renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC,
        outputMode="RGB",
        flags=ImageCms.Flags.BLACKPOINTCOMPENSATION,
    )
    assert converted is not None
    return converted, raw


def quadrant_means(image: Image.Image) -> list[tuple[float, ...]]:
    """The mean colour of the whole image and of each quarter."""
    rgb = image.convert("RGB")
    w, h = rgb.size
    boxes = [(0, 0, w, h)]
    if w >= 2 and h >= 2:
        boxes += [(0, 0, w // 2, h // 2), (w // 2, 0, w, h // 2), (0, h // 2, w // 2, h), (w // 2, h // 2, w, h)]
    return [tuple(ImageStat.Stat(rgb.crop(box)).mean) for box in boxes]


def distance(a: list[tuple[float, ...]], b: list[tuple[float, ...]]) -> float:
    return max(abs(x - y) for p, q in zip(a, b, strict=True) for x, y in zip(p, q, strict=True))


@pytest.mark.corpus
@pytest.mark.parametrize("path", COLOUR)
def test_colour_matches_reference_conversion(app_client: TestClient, corpus: Path, path: str) -> None:
    got = fetch(app_client, path, width=BOX, height=BOX)
    converted, raw = reference_srgb(corpus / path)
    reference = quadrant_means(converted.resize(got.size, Image.Resampling.LANCZOS))
    naive = quadrant_means(raw.resize(got.size, Image.Resampling.LANCZOS))
    ours = quadrant_means(got)
    assert distance(ours, reference) < 6, (ours[0], reference[0])
    if path in WIDE_GAMUT:
        assert distance(naive, reference) > 6, "reference conversion changes nothing: pick another file"
        assert distance(ours, reference) < distance(ours, naive)
    if BY_PATH[path].mode == "CMYK":
        inverted = [tuple(255 - v for v in colour) for colour in reference]
        assert distance(ours, inverted) > 40, "CMYK came out inverted"
    if BY_PATH[path].mode == "L":
        assert got.mode == "L", "a grey source must stay grey"


# --- animation ----------------------------------------------------------------------------------------------

ANIMATED = [row.path for row in ROWS if row.category == "animated"]


def source_timeline(path: Path) -> tuple[list[int], object]:
    """Return the source's playing frame durations, identical consecutive frames merged, and its loop value."""
    durations: list[int] = []
    previous: Image.Image | None = None
    with Image.open(path) as source:
        first = 1 if source.format == "PNG" and source.info.get("default_image") else 0
        for index in range(first, source.n_frames):
            source.seek(index)
            source.load()
            frame = source.convert("RGBA")
            duration = round(source.info.get("duration") or 0)
            if previous is not None and ImageChops.difference(frame, previous).getbbox(alpha_only=False) is None:
                durations[-1] += duration
            else:
                durations.append(duration)
            previous = frame
        return durations, source.info.get("loop")


def output_timeline(image: Image.Image) -> list[int]:
    durations = []
    for index in range(getattr(image, "n_frames", 1)):
        image.seek(index)
        image.load()
        durations.append(round(image.info.get("duration") or 0))
    return durations


@pytest.mark.corpus
@pytest.mark.parametrize("path", ANIMATED)
def test_animation_keeps_frames_timing_and_loop(app_client: TestClient, corpus: Path, path: str) -> None:
    response = app_client.get(SIGNER.path(path, width=BOX, height=BOX))
    assert response.status_code == 200
    image = Image.open(io.BytesIO(response.content))
    want, loop = source_timeline(corpus / path)
    got = output_timeline(image)
    assert len(got) == len(want)
    tolerance = 1 if image.format == "AVIF" else 0  # AVIF stores time in its own timescale
    assert all(abs(a - b) <= tolerance for a, b in zip(got, want, strict=True)), (got, want)
    if image.format != "AVIF":
        assert image.info.get("loop") == loop


@pytest.mark.corpus
@pytest.mark.parametrize("fmt", ["webp", "gif", "png", "avif"])
def test_animation_converts_between_formats(app_client: TestClient, corpus: Path, fmt: str) -> None:
    path = "animated/sharp__animated-loop-3.gif"  # 10 frames, plays 3 times (GIF loop value 2)
    image = Image.open(io.BytesIO(app_client.get(SIGNER.path(path, width=120, format=fmt)).content))
    assert image.format == fmt.upper()
    assert output_timeline(image) == source_timeline(corpus / path)[0]
    plays = {"gif": 2, "webp": 3, "png": 3}  # GIF counts repeats, WebP and APNG count plays
    if fmt in plays:
        assert image.info.get("loop") == plays[fmt]


def test_animation_to_jpeg_is_the_first_frame(app_client: TestClient, corpus: Path) -> None:
    path = "animated/thumbor__Rotating_earth__large.gif"
    got = fetch(app_client, path, width=BOX, height=BOX, format="jpeg")
    with Image.open(corpus / path) as source:
        first = source.convert("RGB").resize(got.size, Image.Resampling.LANCZOS)
    assert mean_difference(got, first) < 6
