"""Hostile source files, crafted here byte by byte, and a probe that opens one in a fresh process.

Each builder returns the bytes of a small but costly file: the structure a decoder walks
before any pixel (markers, chunks, blocks, scans, frames) repeated far past what a real
file holds. ``tests/test_security.py`` serves them through the app; ``bench/soak.py``
mixes them with healthy traffic.

``python -m tests.hostile NAME [ARG ...]`` builds one, then opens it with
``decode.open_image`` under the default limits and prints one JSON object: the status
(200 when it opened), the CPU seconds the open took and the growth of the peak resident
set over the resident set before it (the file is built first and not counted). Exit
status 3 if the kernel cannot reset the high-water mark (``/proc/self/clear_refs``).
"""

from __future__ import annotations

import io
import json
import struct
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path

from PIL import Image

MIB = 1 << 20


# PNG ------------------------------------------------------------------------------------------------------------


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_with(chunks: list[bytes], size: tuple[int, int] = (64, 48)) -> bytes:
    """A real PNG with ``chunks`` inserted after its header chunk."""
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, "PNG")
    data = buffer.getvalue()
    ihdr_end = 8 + 25
    return data[:ihdr_end] + b"".join(chunks) + data[ihdr_end:]


def png_ztxt_bomb(chunks: int = 1500, inflated: int = MIB) -> bytes:
    """``chunks`` zTXt chunks of ``inflated`` zero bytes each (1500 x 1 MiB: a 1.6 MB file)."""
    body = b"Comment\0\0" + zlib.compress(b"\0" * inflated, 9)
    return png_with([png_chunk(b"zTXt", body)] * chunks)


def png_iccp_bomb(chunks: int = 200) -> bytes:
    """Many iCCP chunks of 1 MB each: Pillow inflates every one and keeps the last."""
    body = b"icc\0\0" + zlib.compress(b"\0" * (MIB - 16), 9)
    return png_with([png_chunk(b"iCCP", body)] * chunks)


def png_empty_chunks(chunks: int = 60_000) -> bytes:
    """Empty private chunks before the image data: a Python call each, and a list entry each."""
    return png_with([png_chunk(b"teSt", b"")] * chunks)


def png_empty_idat(chunks: int = 60_000) -> bytes:
    """A 1x1 PNG whose pixels are followed by empty IDAT chunks (a decoder loop turn each)."""
    buffer = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buffer, "PNG")
    data = buffer.getvalue()
    iend = data.rindex(b"IEND") - 4
    return data[:iend] + png_chunk(b"IDAT", b"") * chunks + data[iend:]


def png_big_exif(size: int = 1_000_000) -> bytes:
    """An eXIf chunk far larger than any camera writes: parsed entry by entry for the orientation."""
    return png_with([png_chunk(b"eXIf", b"II*\0\x08\0\0\0" + b"\xff\xff" + b"\0" * (size - 10))])


# JPEG -----------------------------------------------------------------------------------------------------------


def jpeg_segment(marker: int, payload: bytes) -> bytes:
    return struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload


def jpeg_bytes(size: tuple[int, int] = (64, 48), **options: object) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (30, 200, 30)).save(buffer, "JPEG", **options)
    return buffer.getvalue()


def jpeg_with(segments: bytes, at: int = 2) -> bytes:
    """A real 64x48 JPEG with ``segments`` inserted at ``at`` (2: right after SOI)."""
    data = jpeg_bytes()
    return data[:at] + segments + data[at:]


def jpeg_exif_segments(count: int = 100_000) -> bytes:
    """A real EXIF block (orientation 6) and then ``count`` tiny EXIF segments, which Pillow joins one by one."""
    exif = Image.Exif()
    exif[0x0112] = 6
    first = jpeg_segment(0xE1, b"Exif\0\0" + exif.tobytes())
    return jpeg_with(first + jpeg_segment(0xE1, b"Exif\0\0" + b"\0" * 8) * count)


def jpeg_empty_app0(total_bytes: int = 2_000_000) -> bytes:
    """``total_bytes`` of empty APP0 markers (4 bytes each) before a 64x48 image."""
    return jpeg_with(b"\xff\xe0\x00\x02" * (total_bytes // 4))


def jpeg_fill_bytes(count: int = 1_000_000) -> bytes:
    """``count`` 0xFF fill bytes before a marker: legal, and skipped by Pillow one at a time."""
    return jpeg_with(b"\xff" * count)


def jpeg_junk(count: int = 1_000_000) -> bytes:
    """``count`` zero bytes between two markers (after the JFIF segment)."""
    return jpeg_with(b"\0" * count, at=20)


def jpeg_metadata(total_bytes: int = 20 * MIB) -> bytes:
    """Full APP11 segments (as many as fit ``total_bytes``): Pillow keeps every payload."""
    segment = jpeg_segment(0xEB, b"x" * 65_533)
    return jpeg_with(segment * (total_bytes // len(segment)))


def jpeg_scans(repeats: int = 1000, size: tuple[int, int] = (2048, 2048)) -> bytes:
    """A progressive JPEG whose last scan is repeated: every scan is a pass over all coefficients."""
    data = jpeg_bytes(size, progressive=True, quality=50)
    last = data.rindex(b"\xff\xda")
    end = data.rindex(b"\xff\xd9")
    return data[:end] + data[last:end] * repeats + data[end:]


def jpeg_sequential_scans(repeats: int = 20_000, size: tuple[int, int] = (256, 256)) -> bytes:
    """A sequential JPEG whose one scan is repeated: libjpeg refuses the second scan (not counted before)."""
    data = jpeg_bytes(size, quality=50)
    last = data.rindex(b"\xff\xda")
    end = data.rindex(b"\xff\xd9")
    return data[:end] + data[last:end] * repeats + data[end:]


# GIF ------------------------------------------------------------------------------------------------------------

GIF_HEADER = b"GIF89a" + struct.pack("<HHBBB", 1, 1, 0x80, 0, 0) + b"\0\0\0\xff\xff\xff"
GIF_FRAME = b"\x2c" + struct.pack("<4HB", 0, 0, 1, 1, 0) + b"\x02\x02\x44\x01\x00"


def gif_frames(count: int = 1_600_000) -> bytes:
    """A 1x1 GIF of ``count`` 15-byte frames (1.6 M frames: 24 MB)."""
    return GIF_HEADER + GIF_FRAME * count + b"\x3b"


def gif_comment_blocks(count: int = 1_000_000) -> bytes:
    """A comment of ``count`` one-byte sub-blocks before the first frame: Pillow reads (and keeps) each at open."""
    return GIF_HEADER + b"\x21\xfe" + b"\x01x" * count + b"\0" + GIF_FRAME + b"\x3b"


def gif_data_blocks(count: int = 1_000_000) -> bytes:
    """A second frame whose image data comes in ``count`` one-byte sub-blocks (walked to count frames)."""
    frame = b"\x2c" + struct.pack("<4HB", 0, 0, 1, 1, 0) + b"\x02" + b"\x01\x44" * count + b"\0"
    return GIF_HEADER + GIF_FRAME + frame + b"\x3b"


def gif_stray(count: int = 1_000_000) -> bytes:
    """A frame followed by ``count`` bytes that start no block (no trailer): skipped a byte at a time."""
    return GIF_HEADER + GIF_FRAME + b"\0" * count


# WebP and AVIF --------------------------------------------------------------------------------------------------


def riff_chunk(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack("<I", len(body)) + body + (b"\0" if len(body) % 2 else b"")


def webp_animation(frames: int = 100_000, extra_chunks: int = 0, *, canvas: tuple[int, int] = (1, 1)) -> bytes:
    """An animated WebP of ``frames`` 1x1 lossless frames (and ``extra_chunks`` empty unknown chunks)."""
    buffer = io.BytesIO()
    Image.new("RGBA", (1, 1), (1, 2, 3, 255)).save(buffer, "WEBP", lossless=True)
    vp8l = buffer.getvalue()[12:]
    width, height = canvas
    size = (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    vp8x = riff_chunk(b"VP8X", bytes([0x12, 0, 0, 0]) + size)  # animation and alpha
    anim = riff_chunk(b"ANIM", b"\0" * 6)
    anmf = riff_chunk(b"ANMF", b"\0" * 12 + (100).to_bytes(3, "little") + b"\0" + vp8l)
    body = b"WEBP" + vp8x + anim + riff_chunk(b"XYZW", b"") * extra_chunks + anmf * frames
    return b"RIFF" + struct.pack("<I", len(body)) + body


def avif_frames(samples: int = 2_000_000) -> bytes:
    """A real three-frame AVIF whose sample table claims ``samples`` one-byte frames (its data padded to match).

    libavif allocates an entry per sample when it opens the file.
    """
    frames = [Image.new("RGB", (16, 16), (index * 60, 0, 0)) for index in range(3)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "AVIF", save_all=True, append_images=frames[1:], duration=50)
    data = bytearray(buffer.getvalue())
    stsz = data.index(b"stsz")
    struct.pack_into(">II", data, stsz + 8, 1, samples)  # every sample one byte, ``samples`` of them
    stts = data.index(b"stts")
    struct.pack_into(">I", data, stts + 12, samples)
    stsc = data.index(b"stsc")
    struct.pack_into(">I", data, stsc + 16, samples)
    mdat = data.rindex(b"mdat")
    struct.pack_into(">I", data, mdat - 4, struct.unpack_from(">I", data, mdat - 4)[0] + samples)
    return bytes(data) + bytes(samples)


BUILDERS: dict[str, Callable[..., bytes]] = {
    builder.__name__: builder
    for builder in (
        png_ztxt_bomb,
        png_iccp_bomb,
        png_empty_chunks,
        png_empty_idat,
        png_big_exif,
        jpeg_exif_segments,
        jpeg_empty_app0,
        jpeg_fill_bytes,
        jpeg_junk,
        jpeg_metadata,
        jpeg_scans,
        jpeg_sequential_scans,
        gif_frames,
        gif_comment_blocks,
        gif_data_blocks,
        gif_stray,
        webp_animation,
        avif_frames,
    )
}


# The probe ------------------------------------------------------------------------------------------------------


def _status_bytes(field: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


def main(argv: list[str]) -> None:
    from thumbsvc.decode import Limits, configure, open_image
    from thumbsvc.errors import ThumbError

    name, *args = argv
    data = BUILDERS[name](*(int(arg) for arg in args))
    configure(50_000_000)
    limits = Limits()
    open_image(jpeg_bytes(), limits)  # import the plugins before measuring
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        sys.exit(3)
    before = _status_bytes("VmRSS")
    started = time.process_time()
    try:
        open_image(data, limits)
        status = 200
    except ThumbError as exc:
        status = exc.status_code
    cpu_s = time.process_time() - started
    growth = _status_bytes("VmHWM") - before
    print(json.dumps({"status": status, "cpu_s": cpu_s, "growth_bytes": growth, "size": len(data)}))


if __name__ == "__main__":
    main(sys.argv[1:])
