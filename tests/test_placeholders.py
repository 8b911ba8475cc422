"""thumbsvc.placeholders without node: JavaScript arithmetic, hash parsing, the data URI, compute() and the CLI.

Equality with the reference implementation is tests/test_thumbhash_reference.py.
"""

from __future__ import annotations

import base64
import io
import math
import random
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from tests.helpers import STORE, TEST_IMAGES
from thumbsvc import cli
from thumbsvc.config import SAMPLES_DIR
from thumbsvc.decode import Limits
from thumbsvc.errors import SourceTooLarge, UnprocessableSource, UnsupportedFormat
from thumbsvc.jsmath import js_cos, js_round
from thumbsvc.placeholders import (
    Placeholder,
    average_colour,
    compute,
    hex_colour,
    load_small,
    parse_thumbhash,
    small_rgba,
    thumbhash,
    thumbhash_aspect_ratio,
    thumbhash_average,
    thumbhash_data_uri,
    thumbhash_to_rgba,
)

SAMPLE_HASH = "2WgGDYbL/blNTouIaBiXZydsn1f2"  # cat.jpg, as `thumbsvc placeholders thumbsvc/samples` prints it


def encode(image: Image.Image, fmt: str = "PNG", **kwargs: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **kwargs)
    return out.getvalue()


def halves(size: tuple[int, int], top: tuple[int, int, int], bottom: tuple[int, int, int]) -> Image.Image:
    image = Image.new("RGB", size, bottom)
    ImageDraw.Draw(image).rectangle((0, 0, size[0], size[1] // 2 - 1), fill=top)
    return image


# JavaScript arithmetic


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0.5, 1), (1.5, 2), (2.5, 3), (-0.5, 0), (-1.5, -1), (-2.5, -2), (0.49999999999999994, 0), (7.4, 7), (-7.6, -8)],
)
def test_js_round_takes_halves_up(value: float, expected: int) -> None:
    assert js_round(value) == expected


def test_js_round_differs_from_round_only_on_halves_to_even() -> None:
    assert [js_round(k + 0.5) - round(k + 0.5) for k in range(-4, 4)] == [1, 0, 1, 0, 1, 0, 1, 0]


def test_js_cos_is_a_cosine_within_one_ulp_everywhere_it_is_defined() -> None:
    rng = random.Random(7)
    for x in [rng.uniform(-800_000, 800_000) for _ in range(3000)] + [k * math.pi / 4 for k in range(-40, 41)]:
        assert abs(js_cos(x) - math.cos(x)) <= math.ulp(math.cos(x)) + 1e-300, x
    assert js_cos(0.0) == 1.0 and js_cos(-0.0) == 1.0 and js_cos(1e-10) == 1.0
    assert js_cos(math.pi) == -1.0
    assert math.isnan(js_cos(math.inf)) and math.isnan(js_cos(math.nan))
    with pytest.raises(ValueError, match="supports"):
        js_cos(1e7)


# The codec's arguments and the hash's text form


def test_thumbhash_refuses_more_than_100_pixels_a_side_and_short_buffers() -> None:
    with pytest.raises(ValueError, match="100x100"):
        thumbhash(101, 1, bytes(404))
    with pytest.raises(ValueError, match="100x100"):
        thumbhash(0, 1, b"")
    with pytest.raises(ValueError, match="bytes"):
        thumbhash(2, 2, bytes(15))


def test_parse_thumbhash_takes_base64_with_or_without_padding_and_bytes() -> None:
    raw = base64.b64decode(SAMPLE_HASH)
    assert parse_thumbhash(SAMPLE_HASH) == raw
    assert parse_thumbhash(SAMPLE_HASH.rstrip("=")) == raw
    assert parse_thumbhash(raw) == raw
    alpha = base64.b64encode(thumbhash(2, 1, bytes((255, 0, 0, 255, 0, 0, 255, 0)))).decode()
    assert parse_thumbhash(alpha.rstrip("=")) == base64.b64decode(alpha)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "not base64!",
        SAMPLE_HASH[:-4],  # cut short
        SAMPLE_HASH + "AAAA",  # too long for its header
        base64.b64encode(b"\0\0\0\0\0\0\0\0\0\0\0\0").decode(),  # no luminance terms
        "2WgG DYbL",
    ],
)
def test_parse_thumbhash_refuses_what_is_not_a_whole_hash(bad: str) -> None:
    with pytest.raises(ValueError, match="ThumbHash"):
        parse_thumbhash(bad)


def test_parse_thumbhash_refuses_other_types() -> None:
    with pytest.raises(TypeError):
        parse_thumbhash(12)  # type: ignore[arg-type]


def test_the_decoder_gives_the_shape_and_colour_of_the_image() -> None:
    width, height = 80, 40
    red = bytes((220, 20, 20, 255)) * (width * height)
    hash_ = thumbhash(width, height, red)
    assert thumbhash_aspect_ratio(hash_) == 7 / 4  # 7 luminance terms across, round(3.5) down
    r, g, b, a = thumbhash_average(hash_)
    assert (r, a) == (pytest.approx(220 / 255, abs=0.03), 1.0) and g < 0.15 and b < 0.15
    out_w, out_h, rgba = thumbhash_to_rgba(hash_)
    assert (out_w, out_h) == (32, 18) and len(rgba) == 32 * 18 * 4
    assert all(abs(got - want) <= 12 for got, want in zip(rgba[:4], (220, 20, 20, 255), strict=True))
    assert hex_colour((r, g, b, a)) == "#" + "".join(f"{js_round(255 * v):02x}" for v in (r, g, b))


def test_hex_colour_rounds_clamps_and_keeps_alpha_when_asked() -> None:
    assert hex_colour((0.5, 0.0, 1.0, 1.0)) == "#8000ff"  # 127.5 rounds up
    assert hex_colour((0.0, 0.0, 0.0, 0.5)) == "#000000"
    assert hex_colour((0.0, 0.0, 0.0, 0.5), alpha=True) == "#00000080"
    assert hex_colour((1.0, 1.0, 1.0, 1.0), alpha=True) == "#ffffff"


def test_average_colour_weights_by_alpha() -> None:
    half_transparent_red_and_opaque_blue = bytes((255, 0, 0, 0, 0, 0, 255, 255))
    assert average_colour(half_transparent_red_and_opaque_blue) == "#0000ff"
    assert average_colour(bytes((255, 0, 0, 255, 0, 0, 255, 255))) == "#800080"
    assert average_colour(bytes(8)) == "#000000"


def test_the_data_uri_is_a_png_of_the_decoded_pixels_and_is_cached() -> None:
    uri = thumbhash_data_uri(SAMPLE_HASH)
    assert uri.startswith("data:image/png;base64,")
    png = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
    png.load()
    width, height, rgba = thumbhash_to_rgba(SAMPLE_HASH)
    assert (png.format, png.mode, png.size) == ("PNG", "RGB", (width, height))  # opaque: no alpha channel
    assert png.convert("RGBA").tobytes() == rgba
    assert len(uri) < 2000
    assert thumbhash_data_uri(base64.b64decode(SAMPLE_HASH)) is uri  # the same cached string
    with pytest.raises(ValueError):
        thumbhash_data_uri("nope")


def test_the_data_uri_of_a_hash_with_alpha_keeps_it() -> None:
    fade = bytes(c for y in range(20) for x in range(40) for c in (255, 128, 0, x * 6))
    hash_ = thumbhash(40, 20, fade)
    png = Image.open(io.BytesIO(base64.b64decode(thumbhash_data_uri(hash_).split(",", 1)[1])))
    png.load()
    assert png.mode == "RGBA"
    assert png.tobytes() == thumbhash_to_rgba(hash_)[2]
    assert png.getpixel((0, 0))[3] < png.getpixel((png.width - 1, 0))[3]


def test_importing_placeholders_does_not_import_pillow() -> None:
    """Template tags decode hashes on every page: that must not pull Pillow into a web process."""
    code = "import sys, thumbsvc.placeholders as p, thumbsvc.contrib.thumbnails; p.thumbhash_data_uri(%r); "
    code += "print('PIL' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code % SAMPLE_HASH], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


# compute(): files as application code has them


def test_compute_on_a_sample_photo() -> None:
    found = compute(SAMPLES_DIR / "cat.jpg")
    assert found == Placeholder(thumbhash=SAMPLE_HASH, average=found.average, width=1000, height=748)
    small = load_small(SAMPLES_DIR / "cat.jpg")
    assert (small.width, small.height, small.source_size) == (100, 75, (1000, 748))
    assert found.thumbhash == base64.b64encode(thumbhash(small.width, small.height, small.rgba)).decode()
    assert found.average == average_colour(small.rgba)
    assert thumbhash_aspect_ratio(found.thumbhash) == pytest.approx(1000 / 748, rel=0.1)


def test_compute_reads_paths_as_text_and_file_objects() -> None:
    path = SAMPLES_DIR / "craft-beer.jpg"
    expected = compute(path)
    assert compute(str(path)) == expected
    with path.open("rb") as file:
        assert compute(file) == expected
    assert compute(io.BytesIO(path.read_bytes())) == expected


def test_compute_applies_exif_orientation() -> None:
    upright = halves((120, 60), (230, 20, 20), (20, 20, 230))  # red above blue
    for orientation, transpose in STORE.items():
        exif = Image.Exif()
        exif[0x0112] = orientation
        stored = encode(upright.transpose(transpose), "JPEG", exif=exif, quality=95)
        found = compute(io.BytesIO(stored))
        assert (found.width, found.height) == (120, 60), orientation
        width, height, rgba = thumbhash_to_rgba(found.thumbhash)
        assert width > height
        top, bottom = rgba[(width // 2) * 4 : (width // 2) * 4 + 3], rgba[-(width // 2) * 4 : -(width // 2) * 4 + 3]
        assert top[0] > 150 and top[2] < 100 and bottom[2] > 150 and bottom[0] < 100, (orientation, top, bottom)


def test_compute_keeps_alpha_and_hashes_odd_sizes() -> None:
    found = compute(TEST_IMAGES / "rgba_32x32.png")
    assert thumbhash_average(found.thumbhash)[3] < 1
    assert base64.b64decode(found.thumbhash)[2] & 0x80  # the hash's alpha flag
    for size in [(1, 1), (1, 300), (300, 1), (101, 3), (7, 5)]:
        image = Image.new("RGBA", size, (10, 200, 90, 255))
        found = compute(io.BytesIO(encode(image)))
        small = load_small(io.BytesIO(encode(image)))
        assert (found.width, found.height) == size
        assert max(small.width, small.height) <= 100 and min(small.width, small.height) >= 1
        assert found.average == "#0ac85a"


def test_compute_converts_to_srgb() -> None:
    cmyk = Image.new("CMYK", (40, 30), (0, 255, 255, 0))  # full magenta and yellow: red
    found = compute(io.BytesIO(encode(cmyk, "JPEG", quality=95)))
    r, g, b = bytes.fromhex(found.average[1:])
    assert r > 180 and g < 90 and b < 90


def test_compute_applies_the_services_limits() -> None:
    photo = encode(Image.new("RGB", (200, 100), (1, 2, 3)), "JPEG")
    with pytest.raises(SourceTooLarge):
        compute(io.BytesIO(photo), max_bytes=len(photo) - 1)
    assert compute(io.BytesIO(photo), max_bytes=len(photo)).width == 200
    with pytest.raises(SourceTooLarge):
        compute(io.BytesIO(photo), limits=Limits(max_source_pixels=19_999))
    with pytest.raises(UnsupportedFormat):
        compute(io.BytesIO(encode(Image.new("RGB", (10, 10)), "BMP")))
    with pytest.raises(UnsupportedFormat):
        compute(io.BytesIO(b"<svg xmlns='http://www.w3.org/2000/svg'/>"))
    noisy = encode(Image.frombytes("RGB", (64, 64), random.Random(3).randbytes(64 * 64 * 3)), "JPEG")
    with pytest.raises(UnprocessableSource):
        compute(io.BytesIO(noisy[: len(noisy) // 2]))
    # A PNG header that claims 8000x8000 pixels (over the 50-megapixel default): refused, nothing decoded.
    ihdr = b"IHDR" + struct.pack(">IIBBBBB", 8000, 8000, 8, 2, 0, 0, 0)
    header = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + ihdr + struct.pack(">I", zlib.crc32(ihdr))
    with pytest.raises(SourceTooLarge, match="pixels"):
        compute(io.BytesIO(header + struct.pack(">I", 0) + b"IDAT" + struct.pack(">I", zlib.crc32(b"IDAT"))))
    with pytest.raises(FileNotFoundError):
        compute("/nonexistent/image.jpg")


def test_small_rgba_hashes_a_decoded_image_as_compute_hashes_its_file() -> None:
    picture = halves((640, 480), (230, 20, 20), (20, 20, 230))
    picture.putalpha(Image.linear_gradient("L").resize((640, 480)))
    data = encode(picture)
    width, height, rgba = small_rgba(Image.open(io.BytesIO(data)))
    assert (width, height) == (100, 75)
    assert base64.b64encode(thumbhash(width, height, rgba)).decode() == compute(io.BytesIO(data)).thumbhash
    assert small_rgba(Image.new("P", (3, 2)))[:2] == (3, 2)  # small images are kept as they are
    assert small_rgba(Image.new("L", (1, 500)))[:2] == (1, 100)


# The backfill command


def test_placeholders_command_prints_one_line_per_image(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "albums" / "2024").mkdir(parents=True)
    (tmp_path / ".cache").mkdir()
    (tmp_path / "albums" / "2024" / "cat copy.JPG").write_bytes((SAMPLES_DIR / "cat.jpg").read_bytes())
    (tmp_path / "flat.png").write_bytes(encode(Image.new("RGB", (30, 20), (10, 200, 90))))
    (tmp_path / ".cache" / "hidden.png").write_bytes(encode(Image.new("RGB", (3, 3))))
    (tmp_path / "notes.txt").write_text("not an image")
    assert cli.main(["placeholders", str(tmp_path)]) == 0
    out = capsys.readouterr()
    lines = [line.split("\t") for line in out.out.splitlines()]
    flat = compute(tmp_path / "flat.png")
    assert lines == [
        ["albums/2024/cat copy.JPG", SAMPLE_HASH, compute(SAMPLES_DIR / "cat.jpg").average, "1000x748"],
        ["flat.png", flat.thumbhash, "#0ac85a", "30x20"],
    ]
    assert out.err == ""


def test_placeholders_command_reports_bad_images_and_goes_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a-broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    (tmp_path / "b-fine.png").write_bytes(encode(Image.new("RGB", (3, 3))))
    assert cli.main(["placeholders", str(tmp_path)]) == 1
    out = capsys.readouterr()
    assert [line.split("\t")[0] for line in out.out.splitlines()] == ["b-fine.png"]
    assert out.err.startswith("thumbsvc: a-broken.jpg: ") and out.err.count("\n") == 1
    assert cli.main(["placeholders", str(tmp_path / "missing")]) == 1
    assert "is not a folder" in capsys.readouterr().err
