"""The encoders' output is a function of the pixels: nothing of the wall clock or the source leaks in."""

from __future__ import annotations

import io
import struct

from PIL import Image

from thumbsvc.encoding import encode_animation, zero_timestamps


def boxes(data: bytes, start: int = 0, end: int | None = None) -> dict[bytes, list[bytes]]:
    """Every box of an ISOBMFF file by type (descending into moov, trak and mdia), as its body bytes."""
    end = len(data) if end is None else end
    found: dict[bytes, list[bytes]] = {}
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        size = end - pos if size == 0 else size
        found.setdefault(kind, []).append(data[pos + 8 : pos + size])
        if kind in (b"moov", b"trak", b"mdia"):
            for inner, bodies in boxes(data, pos + 8, pos + size).items():
                found.setdefault(inner, []).extend(bodies)
        pos += size
    return found


def test_an_avif_sequence_carries_no_wall_clock_time() -> None:
    frames = [Image.new("RGB", (32, 24), (index * 60, 90, 200 - index * 40)) for index in range(4)]
    data, media_type = encode_animation(frames, [80] * 4, "avif", None, 0)
    assert media_type == "image/avif"
    found = boxes(data)
    stamped = [body for kind in (b"mvhd", b"tkhd", b"mdhd") for body in found[kind]]
    assert len(stamped) >= 3
    for body in stamped:
        width = 8 if body[0] == 1 else 4
        assert body[4 : 4 + 2 * width] == bytes(2 * width)  # creation and modification time
    with Image.open(io.BytesIO(data)) as image:
        assert (image.size, image.n_frames) == ((32, 24), 4)


def test_zeroing_leaves_anything_else_alone() -> None:
    assert zero_timestamps(b"") == b""
    assert zero_timestamps(b"\x00\x00\x00\x10free" + bytes(8)) == b"\x00\x00\x00\x10free" + bytes(8)
    garbage = b"\xff\xff\xff\xffmoov" + b"x" * 20  # a size past the end: left as it is
    assert zero_timestamps(garbage) == garbage
