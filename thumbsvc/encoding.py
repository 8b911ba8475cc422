"""``encode(image, fmt, quality) -> (bytes, media_type)`` and content negotiation."""

from __future__ import annotations

import io
import os
import struct
from collections.abc import Callable
from typing import IO, Any

from PIL import Image

from thumbsvc.animation import loop_options

MEDIA_TYPES = {
    "jpeg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "avif": "image/avif",
    "gif": "image/gif",
}
# Output kind for each source format when the URL asks for none.
SOURCE_KINDS = {"JPEG": "jpeg", "MPO": "jpeg", "PNG": "png", "GIF": "gif", "WEBP": "webp", "AVIF": "avif"}
# Chosen by bench/encode_quality.py (docs/rendering.md): JPEG 82 sits where more bytes stop buying
# much SSIM; WebP and AVIF take the lowest quality whose median SSIM matches JPEG 82's.
DEFAULT_QUALITY = {"jpeg": 82, "webp": 82, "avif": 68}
WEBP_METHOD = 4
AVIF_SPEED = 8
PNG_COMPRESS_LEVEL = 6
ALPHA_FORMATS = frozenset({"png", "webp", "avif", "gif"})
# JPEGs of at least this many pixels are written progressive: from about 300x225 up progressive
# is smaller than optimised baseline (and renders early); below it, it is larger (docs/rendering.md).
PROGRESSIVE_MIN_PIXELS = 50_000


def negotiate(accept: str | None) -> str:
    """Given an Accept header, return the best modern format it allows: "avif", "webp" or ""."""
    if not accept:
        return ""
    allowed: dict[str, float] = {}
    for item in accept.split(","):
        media, *params = (part.strip() for part in item.split(";"))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        allowed[media.lower()] = quality
    for fmt in ("avif", "webp"):
        if allowed.get(f"image/{fmt}", 0.0) > 0:
            return fmt
    return ""


def output_kind(requested: str | None, source_format: str | None, accept_bucket: str, has_alpha: bool) -> str:
    """Return the output format name for a request.

    ``None`` keeps the source's kind (JPEG for kinds we cannot write, PNG if they have
    alpha); ``auto`` takes the negotiated bucket, else the source's kind.
    """
    if requested is not None and requested != "auto":
        return requested
    if requested == "auto" and accept_bucket:
        return accept_bucket
    kind = SOURCE_KINDS.get(source_format or "")
    if kind is None:
        kind = "png" if has_alpha else "jpeg"
    return kind


def encode(image: Image.Image, fmt: str, quality: int | None = None) -> tuple[bytes, str]:
    """Given an RGB/RGBA/L/LA image (or YCbCr for JPEG), return its encoded bytes and media type.

    No metadata is written: ``image.info`` (EXIF, XMP, ICC profile, comments carried over
    from the source) is cleared first, so Pillow's writers cannot copy any of it.
    """
    image.info = {}
    return _written(lambda buffer: _save(image, fmt, quality, buffer)), MEDIA_TYPES[fmt]


def _save(image: Image.Image, fmt: str, quality: int | None, buffer: IO[bytes]) -> None:
    if fmt == "jpeg":
        pixels = image.width * image.height
        progressive = pixels >= PROGRESSIVE_MIN_PIXELS
        image.save(
            buffer,
            "JPEG",
            quality=quality or DEFAULT_QUALITY["jpeg"],
            progressive=progressive,
            optimize=not progressive,  # progressive scans always get optimal Huffman tables
            subsampling="4:2:0",
        )
    elif fmt == "webp":
        image.save(buffer, "WEBP", quality=quality or DEFAULT_QUALITY["webp"], method=WEBP_METHOD)
    elif fmt == "avif":
        image.save(buffer, "AVIF", quality=quality or DEFAULT_QUALITY["avif"], speed=AVIF_SPEED)
    elif fmt == "png":
        image.save(buffer, "PNG", compress_level=PNG_COMPRESS_LEVEL)
    elif fmt == "gif":
        _binary_alpha(image).save(buffer, "GIF", optimize=False)
    else:  # pragma: no cover - options.py only lets known formats through
        raise ValueError(f"unknown output format {fmt!r}")


def encode_animation(
    frames: list[Image.Image], durations_ms: list[int], fmt: str, quality: int | None, plays: int
) -> tuple[bytes, str]:
    """Given equally sized frames, their durations and the play count (0 = forever), return the animation.

    Every frame is complete (the writers compute their own deltas). Consecutive identical
    frames may be merged by the writer, which adds up their durations.
    """
    mode = "RGBA" if any(frame.mode in ("RGBA", "LA") for frame in frames) else "RGB"
    frames = [frame if frame.mode == mode else frame.convert(mode) for frame in frames]
    for frame in frames:
        frame.info = {}
    options: dict[str, Any] = {"save_all": True, "append_images": frames[1:], "duration": durations_ms}
    options.update(loop_options(fmt, plays))
    if fmt == "gif":
        frames = [_binary_alpha(frame) for frame in frames]
        options.update(append_images=frames[1:], optimize=False)
        if mode == "RGBA":
            options["disposal"] = 2  # each frame is whole: clear, do not draw over the last one
    elif fmt == "webp":
        options.update(quality=quality or DEFAULT_QUALITY["webp"], method=WEBP_METHOD)
    elif fmt == "avif":
        options.update(quality=quality or DEFAULT_QUALITY["avif"], speed=AVIF_SPEED)
    elif fmt == "png":
        options.update(compress_level=PNG_COMPRESS_LEVEL)
    else:  # pragma: no cover - pipeline only animates into ANIMATED_KINDS
        raise ValueError(f"{fmt!r} cannot hold an animation")
    data = _written(lambda buffer: frames[0].save(buffer, fmt.upper(), **options))
    return (zero_timestamps(data) if fmt == "avif" else data), MEDIA_TYPES[fmt]


def _written(save: Callable[[IO[bytes]], None]) -> bytes:
    """Run ``save`` on a file and return what it wrote.

    Pillow's JPEG and GIF writers hold the GIL while they write into a Python buffer but let it
    go while they write to a file descriptor; so where the system has anonymous in-memory files
    (Linux's ``memfd_create``) the encoder writes into one, and the other render threads keep
    running during the encode (docs/performance.md). Elsewhere, or where a sandbox forbids it,
    an ``io.BytesIO``: the same bytes.
    """
    try:
        fd = os.memfd_create("thumbsvc-encode", os.MFD_CLOEXEC)
    except (AttributeError, OSError):
        buffer = io.BytesIO()
        save(buffer)
        return buffer.getvalue()
    with open(fd, "w+b") as file:
        save(file)
        file.seek(0)
        return file.read()


# ISOBMFF boxes that hold other boxes, on the way to the ones that carry timestamps.
_CONTAINER_BOXES = frozenset({b"moov", b"trak", b"mdia"})
_TIMESTAMPED_BOXES = frozenset({b"mvhd", b"tkhd", b"mdhd"})


def zero_timestamps(data: bytes) -> bytes:
    """Given an AVIF image sequence, return it with the creation and modification times of its movie,
    track and media headers set to zero.

    libavif stamps the wall-clock time into those boxes, so the same frames encoded a second later
    differ in ten bytes; a thumbnail must be the same bytes on every instance (its ETag says so).
    """
    out = bytearray(data)
    _zero_boxes(out, 0, len(out))
    return bytes(out)


def _zero_boxes(data: bytearray, start: int, end: int) -> None:
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1 and pos + 16 <= end:
            size, header = struct.unpack_from(">Q", data, pos + 8)[0], 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            return  # not a box structure we understand: leave the rest as it is
        body = pos + header
        if kind in _CONTAINER_BOXES:
            _zero_boxes(data, body, pos + size)
        elif kind in _TIMESTAMPED_BOXES and body + 4 <= pos + size:
            # A full box: version, flags, then creation and modification time (4 bytes each, 8 in version 1).
            width = 8 if data[body] == 1 else 4
            stop = min(body + 4 + 2 * width, pos + size)
            data[body + 4 : stop] = bytes(stop - body - 4)
        pos += size


def _binary_alpha(image: Image.Image) -> Image.Image:
    """GIF has one transparent palette entry: make every pixel fully opaque or fully clear (at 50%)."""
    if image.mode == "LA":
        image = image.convert("RGBA")  # the GIF writer would drop the alpha of LA
    if image.mode != "RGBA":
        return image
    alpha = image.getchannel("A").point(lambda value: 255 if value >= 128 else 0)
    result = image.copy()
    result.putalpha(alpha)
    return result
