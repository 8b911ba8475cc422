"""Image placeholders for application code: a ThumbHash and an average colour per image file.

A site stores them on its model at upload time (``compute``) or backfills them
(``thumbsvc placeholders DIR``, or Django's ``manage.py thumbsvc_placeholders``); templates
then paint a placeholder from the stored hash with no I/O (``thumbsvc.contrib``). The
ThumbHash codec itself is ``thumbsvc.thumbhash``, whose names are re-exported here.
"""

from __future__ import annotations

import base64
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, TextIO

from thumbsvc.jsmath import js_round
from thumbsvc.thumbhash import (
    MAX_SIDE,
    average_colour,
    hex_colour,
    parse_thumbhash,
    thumbhash,
    thumbhash_aspect_ratio,
    thumbhash_average,
    thumbhash_data_uri,
    thumbhash_to_rgba,
)

if TYPE_CHECKING:
    from PIL import Image

    from thumbsvc.decode import Limits

__all__ = [
    "IMAGE_SUFFIXES",
    "MAX_SIDE",
    "Placeholder",
    "SmallImage",
    "average_colour",
    "backfill",
    "compute",
    "dominant_colour",
    "hex_colour",
    "load_small",
    "parse_thumbhash",
    "scan",
    "small_rgba",
    "thumbhash",
    "thumbhash_aspect_ratio",
    "thumbhash_average",
    "thumbhash_data_uri",
    "thumbhash_to_rgba",
]

MAX_SOURCE_BYTES = 25_000_000  # the service's default
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".gif", ".webp", ".avif", ".heic", ".heif"})


@dataclass(frozen=True, slots=True)
class SmallImage:
    """An upright sRGB image reduced to at most 100x100 RGBA pixels, and the upright size of its source."""

    width: int
    height: int
    rgba: bytes
    source_size: tuple[int, int]


@dataclass(frozen=True, slots=True)
class Placeholder:
    """What a site stores for an image: its ThumbHash (base64), average colour and upright size."""

    thumbhash: str
    average: str
    width: int
    height: int


def compute(
    source: str | os.PathLike[str] | IO[bytes], *, limits: Limits | None = None, max_bytes: int = MAX_SOURCE_BYTES
) -> Placeholder:
    """Given an image file (a path, or a binary file object read from where it stands), return its placeholder.

    The image is opened with the service's limits (``thumbsvc.decode``), turned upright by its
    EXIF orientation, converted to sRGB and reduced to at most 100x100 pixels, alpha kept.
    ``average`` is the alpha-weighted average colour of those pixels, ``#rrggbb``.
    Raise ``SourceTooLarge``, ``UnsupportedFormat`` or ``UnprocessableSource`` (all
    ``thumbsvc.errors.ThumbError``) for files the service would refuse, ``OSError`` if unreadable.
    """
    small = load_small(source, limits=limits, max_bytes=max_bytes)
    hash_ = thumbhash(small.width, small.height, small.rgba)
    return Placeholder(
        thumbhash=base64.b64encode(hash_).decode("ascii"),
        average=average_colour(small.rgba),
        width=small.source_size[0],
        height=small.source_size[1],
    )


def load_small(
    source: str | os.PathLike[str] | IO[bytes], *, limits: Limits | None = None, max_bytes: int = MAX_SOURCE_BYTES
) -> SmallImage:
    """Given an image file, return the pixels ``compute`` hashes (see there); raise as ``compute``."""
    from PIL import Image

    from thumbsvc import color
    from thumbsvc.decode import Limits, open_image, pillow_errors
    from thumbsvc.errors import SourceTooLarge
    from thumbsvc.pipeline import read_orientation, upright_size

    if isinstance(source, str | os.PathLike):
        with open(source, "rb") as file:
            data = file.read(max_bytes + 1)
    else:
        data = source.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise SourceTooLarge(f"over {max_bytes} bytes")
    image = open_image(bytes(data), limits or Limits())
    with pillow_errors():
        orientation = read_orientation(image)
        upright = upright_size(image.size, orientation)
        stored = upright_size(_fit(upright), orientation)
        icc = image.info.get("icc_profile")
        if image.format in ("JPEG", "MPO"):
            image.draft(image.mode, stored)  # a DCT-scaled decode that is still at least this large
        image.load()
        small = color.normalise_mode(image).resize(stored, Image.Resampling.LANCZOS, reducing_gap=3.0)
        method = _transpose_table().get(orientation)
        if method is not None:
            small = small.transpose(method)
        small = color.to_srgb(small, icc if isinstance(icc, bytes) else None).convert("RGBA")
    return SmallImage(small.width, small.height, small.tobytes(), upright)


def small_rgba(image: Image.Image) -> tuple[int, int, bytes]:
    """Given an upright sRGB Pillow image (any size; L, LA, RGB, RGBA or P), return it reduced to at most
    100x100 pixels as (width, height, RGBA bytes), alpha kept: the input of ``thumbhash`` and ``average_colour``.

    For an image already decoded (a rendered thumbnail); ``compute`` does the same for a file.
    """
    from PIL import Image

    from thumbsvc import color

    image = color.normalise_mode(image)
    size = _fit(image.size)
    if size != image.size:
        image = image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    rgba = image.convert("RGBA")
    return rgba.width, rgba.height, rgba.tobytes()


def _fit(size: tuple[int, int]) -> tuple[int, int]:
    """The size that fits in 100x100 with the aspect ratio kept; never larger than ``size``."""
    scale = min(1.0, MAX_SIDE / max(size))
    return max(1, js_round(size[0] * scale)), max(1, js_round(size[1] * scale))


def _transpose_table() -> dict[int, Image.Transpose]:
    from PIL import Image

    return {
        2: Image.Transpose.FLIP_LEFT_RIGHT,
        3: Image.Transpose.ROTATE_180,
        4: Image.Transpose.FLIP_TOP_BOTTOM,
        5: Image.Transpose.TRANSPOSE,
        6: Image.Transpose.ROTATE_270,
        7: Image.Transpose.TRANSVERSE,
        8: Image.Transpose.ROTATE_90,
    }


def scan(root: str | os.PathLike[str]) -> list[Path]:
    """Given a folder, return the image files under it (by suffix), sorted, hidden files and folders left out."""
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found += [Path(folder, n) for n in files if not n.startswith(".") and Path(n).suffix.lower() in IMAGE_SUFFIXES]
    return sorted(found, key=lambda path: path.relative_to(root).parts)


def backfill(root: str | os.PathLike[str], out: TextIO | None = None, err: TextIO | None = None) -> int:
    """``thumbsvc placeholders DIR``: print ``path<TAB>thumbhash<TAB>#rrggbb<TAB>WxH`` for each image under DIR.

    Paths are relative to DIR (as a file field under a media root names them). An image that
    cannot be read or decoded is reported on ``err`` and skipped. Return the exit status: 0,
    or 1 if any image failed or DIR is not a folder.
    """
    from thumbsvc.errors import ThumbError

    out, err = out or sys.stdout, err or sys.stderr
    if not os.path.isdir(root):
        print(f"thumbsvc: {os.fspath(root)!r} is not a folder", file=err)
        return 1
    status = 0
    for path in scan(root):
        name = path.relative_to(root).as_posix()
        try:
            found = compute(path)
        except (ThumbError, OSError) as exc:
            print(f"thumbsvc: {name}: {exc or type(exc).__name__}", file=err)
            status = 1
            continue
        print(f"{name}\t{found.thumbhash}\t{found.average}\t{found.width}x{found.height}", file=out)
    return status


def dominant_colour(width: int, height: int, rgba: bytes) -> str:
    """Given an RGBA preview (at most 100x100), return its most common colour as ``#rrggbb``: the pixels
    median-cut into 16 colours, the largest group's; pixels under half opacity do not count."""
    from PIL import Image

    pixels = [rgba[i : i + 3] for i in range(0, len(rgba), 4) if rgba[i + 3] >= 128] or [b"\0\0\0"]
    image = Image.frombytes("RGB", (len(pixels), 1), b"".join(pixels))
    quantized = image.quantize(colors=16, method=Image.Quantize.MEDIANCUT)
    counts: list[tuple[int, int]] = quantized.getcolors() or [(1, 0)]  # type: ignore[assignment]
    index = max(counts, key=lambda item: (item[0], -item[1]))[1]  # the most pixels; ties: the first
    palette = quantized.getpalette() or [0, 0, 0]
    red, green, blue = palette[3 * index : 3 * index + 3]
    return f"#{red:02x}{green:02x}{blue:02x}"
