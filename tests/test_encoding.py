"""The encoders' output is a function of the pixels: nothing of the wall clock or the source leaks in."""

from __future__ import annotations

import io
import os
import struct

import pytest
from PIL import Image

from thumbsvc.encoding import encode, encode_animation, zero_timestamps


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


ANIMATED = ("gif", "webp", "png", "avif")


def gradient(size: tuple[int, int], mode: str) -> Image.Image:
    """A smooth image with detail in every band (an encoder's output depends on all of them)."""
    bands = [
        Image.linear_gradient("L").resize(size),
        Image.linear_gradient("L").rotate(90).resize(size),
        Image.radial_gradient("L").resize(size),
        Image.linear_gradient("L").rotate(45).resize(size),
    ]
    return Image.merge(mode, bands[: len(mode)]) if mode != "L" else bands[0]


def test_every_format_encodes_to_the_same_bytes_with_or_without_an_in_memory_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # On Linux the encoders write into a memfd (so JPEG's writer runs outside the GIL); where the
    # system has none, or a sandbox forbids it, into a BytesIO. Either way the same bytes.
    cases = [
        (gradient((640, 480), "RGB"), "jpeg"),  # progressive (over 50 000 px)
        (gradient((160, 120), "RGB"), "jpeg"),  # optimised baseline
        (gradient((320, 240), "RGBA"), "png"),
        (gradient((320, 240), "RGBA"), "webp"),
        (gradient((96, 64), "RGB"), "avif"),
        (gradient((320, 240), "RGBA"), "gif"),
    ]
    with_memfd = [encode(image.copy(), fmt, 80) for image, fmt in cases]
    frames = [gradient((64, 48), "RGB").rotate(angle) for angle in (0, 90, 180)]
    animations = [encode_animation([f.copy() for f in frames], [100] * 3, fmt, None, 0) for fmt in ANIMATED]

    def forbidden(*args: object) -> int:
        raise PermissionError("memfd_create is not allowed here")

    monkeypatch.setattr(os, "memfd_create", forbidden, raising=False)
    assert [encode(image.copy(), fmt, 80) for image, fmt in cases] == with_memfd
    again = [encode_animation([f.copy() for f in frames], [100] * 3, fmt, None, 0) for fmt in ANIMATED]
    assert again == animations
    for (data, media_type), (_, fmt) in zip(with_memfd, cases, strict=True):
        with Image.open(io.BytesIO(data)) as image:
            assert media_type == f"image/{fmt}"
            assert image.format == fmt.upper()


def test_encoding_leaves_no_file_descriptor_open() -> None:
    # Each encode opens an in-memory file: a leak would exhaust the process's descriptors.
    image = gradient((320, 240), "RGB")
    before = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None
    for fmt in ("jpeg", "png", "webp", "gif") * 50:
        encode(image.copy(), fmt, 80)
    if before is not None:
        assert len(os.listdir("/proc/self/fd")) <= before
