"""The structure walks that run before Pillow parses a header (thumbsvc/prescan.py).

Each budget is checked at its edge (at the budget passes, one past it is refused with its
status), frame counts agree with Pillow's on real animations, and every real file of the
shared corpus passes. End-to-end rows (status and CPU through the app, memory in a fresh
process) are in tests/test_security.py.
"""

from __future__ import annotations

import io
import zlib
from pathlib import Path

import pytest
from PIL import Image, features

from tests import hostile
from tests.hostile import GIF_FRAME, GIF_HEADER, jpeg_segment, jpeg_with, png_chunk, png_with
from thumbsvc import prescan
from thumbsvc.decode import Limits, check_dimensions, open_image
from thumbsvc.errors import SourceTooLarge, ThumbError, UnprocessableSource
from thumbsvc.prescan import (
    MAX_EXIF_BYTES,
    MAX_GIF_SUB_BLOCKS,
    MAX_JPEG_MARKERS,
    MAX_JPEG_METADATA_BYTES,
    MAX_JPEG_SCANS,
    MAX_PNG_CHUNKS,
    MAX_PNG_TEXT_BYTES,
    MAX_STRAY_BYTES,
    MAX_WEBP_OTHER_CHUNKS,
    gif_layout,
)


def markers_in(data: bytes) -> int:
    """The markers a real 64x48 JPEG has before its first scan (SOI to SOS)."""
    pos, count = 2, 1
    while data[pos + 1] != 0xDA:
        pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
        count += 1
    return count + 1


# JPEG -----------------------------------------------------------------------------------------------------------


def test_jpeg_marker_budget_edge() -> None:
    base = markers_in(hostile.jpeg_bytes()) - 1  # SOI is not walked
    fits = jpeg_with(b"\xff\xe0\x00\x02" * (MAX_JPEG_MARKERS - base))
    prescan.check_jpeg(fits)
    open_image(fits, Limits())
    with pytest.raises(SourceTooLarge):
        prescan.check_jpeg(jpeg_with(b"\xff\xe0\x00\x02" * (MAX_JPEG_MARKERS - base + 1)))


def test_jpeg_exif_budget_edge() -> None:
    exif = b"Exif\0\0" + b"\0" * 60_000
    count = MAX_EXIF_BYTES // len(exif)
    prescan.check_jpeg(jpeg_with(jpeg_segment(0xE1, exif) * count))
    rest = MAX_EXIF_BYTES - count * len(exif)
    prescan.check_jpeg(jpeg_with(jpeg_segment(0xE1, exif) * count + jpeg_segment(0xE1, b"Exif\0\0" + bytes(rest - 6))))
    with pytest.raises(SourceTooLarge, match="EXIF"):
        prescan.check_jpeg(jpeg_with(jpeg_segment(0xE1, exif) * count + jpeg_segment(0xE1, b"Exif\0\0" + bytes(rest))))
    # The same bytes as XMP are metadata, not EXIF.
    prescan.check_jpeg(jpeg_with(jpeg_segment(0xE1, b"http://ns.adobe.com/xap/1.0/\0" + bytes(60_000)) * 5))


def test_jpeg_metadata_budget() -> None:
    full = jpeg_segment(0xED, bytes(65_533))
    count = MAX_JPEG_METADATA_BYTES // 65_533
    prescan.check_jpeg(jpeg_with(full * count))
    with pytest.raises(SourceTooLarge, match="metadata"):
        prescan.check_jpeg(jpeg_with(full * (count + 1)))


@pytest.mark.parametrize("filler", [b"\xff", b"\0", b"\x12"])
def test_jpeg_stray_bytes_edge(filler: bytes) -> None:
    at = 20 if filler != b"\xff" else 2  # junk after the JFIF segment; fill bytes anywhere before a marker
    prescan.check_jpeg(jpeg_with(filler * MAX_STRAY_BYTES, at=at))
    with pytest.raises(UnprocessableSource):
        prescan.check_jpeg(jpeg_with(filler * (MAX_STRAY_BYTES + 1), at=at))


def test_jpeg_scan_budget_edge() -> None:
    base = hostile.jpeg_scans(0, (64, 48))
    scans = base.count(b"\xff\xda")
    prescan.check_jpeg(hostile.jpeg_scans(MAX_JPEG_SCANS - scans, (64, 48)))
    with pytest.raises(SourceTooLarge, match="scans"):
        prescan.check_jpeg(hostile.jpeg_scans(MAX_JPEG_SCANS - scans + 1, (64, 48)))


def repeated_last_scan(data: bytes, repeats: int) -> bytes:
    last, end = data.rindex(b"\xff\xda"), data.rindex(b"\xff\xd9")
    return data[:end] + data[last:end] * repeats + data[end:]


def test_a_sequential_jpeg_whose_first_scan_holds_every_component_is_refused_by_the_decoder() -> None:
    # Not counted (a pass over the file with the GIL held): libjpeg stops at its second scan.
    for mode in ("RGB", "L"):
        buffer = io.BytesIO()
        Image.new(mode, (256, 256), 90).save(buffer, "JPEG")
        many = repeated_last_scan(buffer.getvalue(), MAX_JPEG_SCANS * 4)
        prescan.check_jpeg(many)
        with Image.open(io.BytesIO(many)) as image, pytest.raises(OSError):
            image.load()


def test_a_sequential_jpeg_whose_first_scan_leaves_components_out_is_counted() -> None:
    # Non-interleaved: the decoder reads one scan per component, so more scans are counted.
    data = hostile.jpeg_bytes((64, 48))
    sos = data.index(b"\xff\xda")
    length = int.from_bytes(data[sos + 2 : sos + 4], "big")
    one_component = b"\xff\xda\x00\x08\x01\x01\x00\x00\x3f\x00"
    data = data[:sos] + one_component + data[sos + 2 + length :]
    with pytest.raises(SourceTooLarge, match="scans"):
        prescan.check_jpeg(repeated_last_scan(data, MAX_JPEG_SCANS))


def test_jpeg_scans_inside_metadata_do_not_count() -> None:
    # An EXIF thumbnail (a whole JPEG) sits before the first scan: its FF DA is not a scan of ours.
    thumbnail = hostile.jpeg_scans(MAX_JPEG_SCANS, (64, 48))[:60_000]
    prescan.check_jpeg(jpeg_with(jpeg_segment(0xE1, b"Exif\0\0" + thumbnail)))


@pytest.mark.parametrize(
    "data",
    [b"\xff\xd8\xff", b"\xff\xd8\xff\xe0", b"\xff\xd8\xff\xe0\xff\xff", b"\xff\xd8\xff\xe0\x00\x10JFIF"],
    ids=["soi", "marker", "length", "cut segment"],
)
def test_truncated_jpeg_ends_the_walk(data: bytes) -> None:
    prescan.check_jpeg(data)  # the decoder reports it


# PNG ------------------------------------------------------------------------------------------------------------


def test_png_chunk_budget_edge() -> None:
    real = 4  # IHDR, IDAT and IEND are counted too: MAX_PNG_CHUNKS - 3 extra chunks fit
    prescan.check_png(png_with([png_chunk(b"teSt", b"")] * (MAX_PNG_CHUNKS - real + 1)))
    with pytest.raises(SourceTooLarge, match="chunks"):
        prescan.check_png(png_with([png_chunk(b"teSt", b"")] * (MAX_PNG_CHUNKS - real + 2)))


def test_png_text_budget_counts_every_text_kind() -> None:
    chunk = 1 << 20
    compressed = png_chunk(b"zTXt", b"k\0\0" + zlib.compress(bytes(chunk)))
    plain = png_chunk(b"tEXt", b"k\0" + bytes(chunk - 2))  # a tEXt chunk counts its whole body
    profile = png_chunk(b"iCCP", b"icc\0\0" + zlib.compress(bytes(chunk)))
    international = png_chunk(b"iTXt", b"k\0\1\0\0\0" + zlib.compress(bytes(chunk)))
    four = [compressed, plain, profile, international]
    prescan.check_png(png_with(four * (MAX_PNG_TEXT_BYTES // (4 * chunk))))
    with pytest.raises(SourceTooLarge, match="inflate"):
        prescan.check_png(png_with(four * (MAX_PNG_TEXT_BYTES // (4 * chunk)) + [png_chunk(b"tEXt", b"k")]))


def test_png_text_after_the_pixels_counts_too() -> None:
    data = png_with([])
    iend = data.rindex(b"IEND") - 4
    text = png_chunk(b"zTXt", b"k\0\0" + zlib.compress(bytes(1 << 20))) * 17
    with pytest.raises(SourceTooLarge):
        prescan.check_png(data[:iend] + text + data[iend:])


def test_one_png_chunk_over_pillows_limit_is_too_large() -> None:
    with pytest.raises(SourceTooLarge, match="1048576"):
        prescan.check_png(hostile.png_ztxt_bomb(1, (1 << 20) + 1))


def test_corrupt_compressed_text_counts_nothing() -> None:
    prescan.check_png(png_with([png_chunk(b"zTXt", b"k\0\0not zlib")] * 100))


def test_png_exif_budget() -> None:
    prescan.check_png(hostile.png_big_exif(MAX_EXIF_BYTES))
    with pytest.raises(SourceTooLarge, match="eXIf"):
        prescan.check_png(hostile.png_big_exif(MAX_EXIF_BYTES + 1))


# GIF ------------------------------------------------------------------------------------------------------------


@pytest.mark.corpus
@pytest.mark.parametrize(
    "name",
    [
        "libvips__dispose-previous.gif",
        "pillow__dispose_bgnd_transparency.gif",
        "sharp__animated-loop-3.gif",
        "thumbor__Rotating_earth__large.gif",
        "thumbor__animated.gif",
        "weserv__dancing-banana.gif",
    ],
)
def test_gif_frames_are_counted_as_pillow_counts_them(corpus: Path, name: str) -> None:
    data = (corpus / "animated" / name).read_bytes()
    with Image.open(io.BytesIO(data)) as image:
        frames = image.n_frames
    assert gif_layout(data, 1000).frames == frames
    assert gif_layout(data, frames - 1).frames == frames  # stops right after the limit
    assert gif_layout(data, 1).frames == 2


def test_gif_counting_stops_after_the_limit() -> None:
    data = hostile.gif_frames(1_000_000)
    assert gif_layout(data, 100).frames == 101
    image = Image.open(io.BytesIO(data))
    with pytest.raises(SourceTooLarge, match="101 frames"):
        check_dimensions(image, Limits(), data)


def test_gif_canvas_grows_with_frames_outside_the_screen() -> None:
    frame = b"\x2c" + (300).to_bytes(2, "little") * 2 + (10).to_bytes(2, "little") * 2 + b"\0\x02\x02\x44\x01\0"
    layout = gif_layout(GIF_HEADER + GIF_FRAME + frame + b"\x3b", 100)
    assert layout == prescan.GifLayout((310, 310), 2)


def test_gif_sub_block_budget_edge() -> None:
    # The walk reads the comment's sub-blocks, its terminator, then the frame's data (two sub-blocks).
    prescan.check(hostile.gif_comment_blocks(MAX_GIF_SUB_BLOCKS - 1), 100)
    gif_layout(hostile.gif_comment_blocks(MAX_GIF_SUB_BLOCKS - 3), 100)
    with pytest.raises(SourceTooLarge, match="blocks"):
        gif_layout(hostile.gif_comment_blocks(MAX_GIF_SUB_BLOCKS - 2), 100)


def test_gif_stray_bytes_edge() -> None:
    gif_layout(hostile.gif_stray(MAX_STRAY_BYTES), 100)
    with pytest.raises(UnprocessableSource):
        gif_layout(hostile.gif_stray(MAX_STRAY_BYTES + 1), 100)


def test_gif_quirks_are_walked_as_pillow_reads_them() -> None:
    # A graphic control extension whose first sub-block is already the terminator: Pillow goes on
    # reading sub-blocks after it, so the frame behind it is data, not a frame.
    swallowed = GIF_HEADER + GIF_FRAME + b"\x21\xf9\x00" + GIF_FRAME + b"\x00" + GIF_FRAME + b"\x3b"
    with Image.open(io.BytesIO(swallowed)) as image:
        assert gif_layout(swallowed, 100).frames == image.n_frames
    assert gif_layout(b"GIF89a", 100).frames == 0


# WebP and AVIF --------------------------------------------------------------------------------------------------


def test_webp_frames_and_chunks() -> None:
    prescan.check_webp(hostile.webp_animation(100), 100)
    with pytest.raises(SourceTooLarge, match="frames"):
        prescan.check_webp(hostile.webp_animation(101), 100)
    prescan.check_webp(hostile.webp_animation(1, MAX_WEBP_OTHER_CHUNKS - 2), 100)  # VP8X and ANIM count
    with pytest.raises(SourceTooLarge, match="chunks"):
        prescan.check_webp(hostile.webp_animation(1, MAX_WEBP_OTHER_CHUNKS - 1), 100)


def test_webp_exif_budget() -> None:
    exif = hostile.riff_chunk(b"EXIF", bytes(MAX_EXIF_BYTES + 1))
    data = hostile.webp_animation(1)
    body = data[12:] + exif
    with pytest.raises(SourceTooLarge, match="EXIF"):
        prescan.check_webp(b"RIFF" + len(b"WEBP" + body).to_bytes(4, "little") + b"WEBP" + body, 100)


@pytest.mark.skipif(not features.check("avif"), reason="Pillow has no AVIF support here")
def test_avif_frames_are_read_from_the_sample_table() -> None:
    prescan.check_isobmff(hostile.avif_frames(100), 100)
    assert Image.open(io.BytesIO(hostile.avif_frames(100))).n_frames == 100
    with pytest.raises(SourceTooLarge, match="101 frames"):
        prescan.check_isobmff(hostile.avif_frames(101), 100)


def test_avif_box_budget() -> None:
    free = (8).to_bytes(4, "big") + b"free"
    with pytest.raises(SourceTooLarge, match="boxes"):
        prescan.check(b"\0\0\0\x10ftypavif\0\0\0\0" + free * prescan.MAX_AVIF_BOXES, 100)


# Real files -----------------------------------------------------------------------------------------------------


@pytest.mark.corpus
def test_every_real_corpus_file_passes(corpus: Path) -> None:
    # Among them: an ICC profile of 390 KB over 7 APP2 segments, MPO, camera EXIF, XMP, 10-30 scans,
    # animated GIF/WebP/APNG/AVIF. Only the bombs folder may be refused.
    refused = []
    for path in sorted(corpus.rglob("*")):
        if path.is_file() and path.parent != corpus and "LICENSES" not in path.parts:
            try:
                prescan.check(path.read_bytes(), Limits().max_frames)
            except ThumbError as exc:
                refused.append((str(path.relative_to(corpus)), exc.status_code))
    assert refused == [("bombs/pillow__png_decompression_dos.png", 413)]
    assert (corpus / "color" / "pillow__icc_profile_big.jpg").is_file()
