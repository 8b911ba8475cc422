"""ThumbHash, ported from the reference JavaScript (npm ``thumbhash``) so that it gives the same bytes.

A ThumbHash (https://evanw.github.io/thumbhash/) is about 25 bytes that describe an image of
at most 100x100 pixels: its average colour, alpha, approximate aspect ratio and a few
low-frequency DCT terms, enough to paint a blurred likeness while the real image loads. Its
text form here is standard base64, as ``f:json`` returns it.

The encoder (``thumbhash``) and the decoder (``thumbhash_to_rgba``, ``thumbhash_average``,
``thumbhash_aspect_ratio``) do the reference's arithmetic in the reference's order, with
JavaScript's cosine and rounding (``thumbsvc.jsmath``): ``math.cos`` and ``round`` flip a
nibble now and then. Everything here is pure: no I/O, no Pillow. ``thumbsvc.placeholders``
re-exports these names next to ``compute``, which reads image files.
"""

from __future__ import annotations

import base64
import binascii
import functools
import math
import struct
import zlib
from collections import deque
from dataclasses import dataclass
from itertools import accumulate, repeat
from operator import mul

from thumbsvc.jsmath import js_cos, js_round

__all__ = [
    "MAX_SIDE",
    "average_colour",
    "hex_colour",
    "parse_thumbhash",
    "thumbhash",
    "thumbhash_aspect_ratio",
    "thumbhash_average",
    "thumbhash_data_uri",
    "thumbhash_to_rgba",
]

MAX_SIDE = 100  # the encoder's limit, as the reference's
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def thumbhash(width: int, height: int, rgba: bytes) -> bytes:
    """Given an image of at most 100x100 pixels as RGBA bytes (not premultiplied), return its ThumbHash.

    The bytes are those of the reference encoder (``rgbaToThumbHash``) for the same pixels.
    Raise ``ValueError`` for a size outside 1-100 or a buffer that is not width*height*4 bytes.
    """
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
        raise ValueError(f"a ThumbHash is made from at most {MAX_SIDE}x{MAX_SIDE} pixels, not {width}x{height}")
    if len(rgba) != width * height * 4:
        raise ValueError(f"{width}x{height} RGBA is {width * height * 4} bytes, not {len(rgba)}")
    count = width * height
    avg_r, avg_g, avg_b, avg_a = _average(rgba)
    has_alpha = avg_a < count
    l_limit = 5 if has_alpha else 7  # fewer luminance terms when alpha needs the room
    lx = max(1, js_round(l_limit * width / max(width, height)))
    ly = max(1, js_round(l_limit * height / max(width, height)))

    # RGBA to luminance, yellow-blue, red-green and alpha, composited over the average colour.
    l_: list[float] = []
    p_: list[float] = []
    q_: list[float] = []
    a_: list[float] = []
    for j in range(0, 4 * count, 4):
        alpha = rgba[j + 3] / 255
        r = avg_r * (1 - alpha) + alpha / 255 * rgba[j]
        g = avg_g * (1 - alpha) + alpha / 255 * rgba[j + 1]
        b = avg_b * (1 - alpha) + alpha / 255 * rgba[j + 2]
        l_.append((r + g + b) / 3)
        p_.append((r + g) / 2 - b)
        q_.append(r - g)
        a_.append(alpha)

    l_dc, l_ac, l_scale = _encode_channel(l_, width, height, max(3, lx), max(3, ly))
    p_dc, p_ac, p_scale = _encode_channel(p_, width, height, 3, 3)
    q_dc, q_ac, q_scale = _encode_channel(q_, width, height, 3, 3)
    landscape = width > height
    header24 = (
        js_round(63 * l_dc)
        | (js_round(31.5 + 31.5 * p_dc) << 6)
        | (js_round(31.5 + 31.5 * q_dc) << 12)
        | (js_round(31 * l_scale) << 18)
        | (has_alpha << 23)
    )
    header16 = (ly if landscape else lx) | (js_round(63 * p_scale) << 3) | (js_round(63 * q_scale) << 9)
    header16 |= landscape << 15
    out = [header24 & 255, (header24 >> 8) & 255, header24 >> 16, header16 & 255, header16 >> 8]
    channels = [l_ac, p_ac, q_ac]
    if has_alpha:
        a_dc, a_ac, a_scale = _encode_channel(a_, width, height, 5, 5)
        out.append(js_round(15 * a_dc) | (js_round(15 * a_scale) << 4))
        channels.append(a_ac)
    nibbles = [js_round(15 * f) for ac in channels for f in ac]
    nibbles.append(0)  # pads an odd count
    out.extend(nibbles[i] | (nibbles[i + 1] << 4) for i in range(0, len(nibbles) - 1, 2))
    return bytes(value & 255 for value in out)


def _average(rgba: bytes) -> tuple[float, float, float, float]:
    """The reference's alpha-weighted average colour (0-1) and the sum of alpha (0 to the pixel count)."""
    avg_r = avg_g = avg_b = avg_a = 0.0
    for j in range(0, len(rgba), 4):
        alpha = rgba[j + 3] / 255
        avg_r += alpha / 255 * rgba[j]
        avg_g += alpha / 255 * rgba[j + 1]
        avg_b += alpha / 255 * rgba[j + 2]
        avg_a += alpha
    if avg_a:
        avg_r /= avg_a
        avg_g /= avg_a
        avg_b /= avg_a
    return avg_r, avg_g, avg_b, avg_a


@functools.lru_cache(maxsize=512)
def _cosines(frequency: int, size: int) -> tuple[float, ...]:
    """The reference's basis ``cos(pi / size * frequency * (i + 0.5))`` for i in 0..size-1 (a pure memo: the
    same terms come back for every channel, term and image of a size)."""
    return tuple(js_cos(math.pi / size * frequency * (i + 0.5)) for i in range(size))


def _encode_channel(
    channel: list[float], width: int, height: int, nx: int, ny: int
) -> tuple[float, list[float], float]:
    """DCT of one channel: the DC term, the AC terms normalised to 0-1, and their scale."""
    dc, scale = 0.0, 0.0
    ac: list[float] = []
    rows = [channel[y * width : (y + 1) * width] for y in range(height)]
    for cy in range(ny):
        fy = _cosines(cy, height)
        cx = 0
        while cx * ny < nx * (ny - cy):
            fx = _cosines(cx, width)
            f = 0.0
            for row, fy_y in zip(rows, fy, strict=True):
                # One addition after another, in the reference's order (sum() would compensate).
                f = deque(accumulate(map(mul, map(mul, row, fx), repeat(fy_y)), initial=f), maxlen=1)[0]
            f /= width * height
            if cx or cy:
                ac.append(f)
                scale = max(scale, abs(f))
            else:
                dc = f
            cx += 1
    if scale:
        ac = [0.5 + 0.5 / scale * f for f in ac]
    return dc, ac, scale


@dataclass(frozen=True, slots=True)
class _Header:
    l_dc: float
    p_dc: float
    q_dc: float
    l_scale: float
    p_scale: float
    q_scale: float
    has_alpha: bool
    landscape: bool
    lx: int  # luminance terms across and down, as the decoder uses them (at least 3)
    ly: int
    a_dc: float
    a_scale: float


def _read_header(hash_: bytes) -> _Header:
    header24 = hash_[0] | (hash_[1] << 8) | (hash_[2] << 16)
    header16 = hash_[3] | (hash_[4] << 8)
    has_alpha = bool(header24 >> 23)
    landscape = bool(header16 >> 15)
    long_side = 5 if has_alpha else 7
    return _Header(
        l_dc=(header24 & 63) / 63,
        p_dc=((header24 >> 6) & 63) / 31.5 - 1,
        q_dc=((header24 >> 12) & 63) / 31.5 - 1,
        l_scale=((header24 >> 18) & 31) / 31,
        p_scale=((header16 >> 3) & 63) / 63,
        q_scale=((header16 >> 9) & 63) / 63,
        has_alpha=has_alpha,
        landscape=landscape,
        lx=max(3, long_side if landscape else header16 & 7),
        ly=max(3, header16 & 7 if landscape else long_side),
        a_dc=(hash_[5] & 15) / 15 if has_alpha else 1.0,
        a_scale=(hash_[5] >> 4) / 15,
    )


def _terms(nx: int, ny: int) -> list[tuple[int, int]]:
    """The (cx, cy) of the AC terms of an nx-by-ny channel, in the order the hash stores them."""
    return [(cx, cy) for cy in range(ny) for cx in range(0 if cy else 1, nx) if cx * ny < nx * (ny - cy)]


def parse_thumbhash(value: str | bytes) -> bytes:
    """Given a ThumbHash as base64 text (padding optional) or as bytes, return its bytes.

    Raise ``ValueError`` if it is not base64 or not a whole ThumbHash (the length must be
    the one its header implies).
    """
    if isinstance(value, str):
        text = value.strip()
        try:
            raw = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"a ThumbHash is base64 text, not {value!r}") from None
    elif isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
    else:
        raise TypeError(f"a ThumbHash is base64 text or bytes, not {type(value).__name__}")
    if len(raw) < 5 or raw[3] & 7 == 0:
        raise ValueError(f"{value!r} is not a ThumbHash")
    header = _read_header(raw + b"\0")
    count = len(_terms(header.lx, header.ly)) + 2 * len(_terms(3, 3))
    count += len(_terms(5, 5)) if header.has_alpha else 0
    if len(raw) != (6 if header.has_alpha else 5) + (count + 1) // 2:
        raise ValueError(f"{value!r} is not a ThumbHash: its length does not match its header")
    return raw


def thumbhash_average(hash_: str | bytes) -> tuple[float, float, float, float]:
    """Given a ThumbHash, return its average colour as (r, g, b, a) in 0-1, like ``thumbHashToAverageRGBA``."""
    header = _read_header(parse_thumbhash(hash_))
    r, g, b = _lpq_to_rgb(header.l_dc, header.p_dc, header.q_dc)
    return max(0.0, min(1.0, r)), max(0.0, min(1.0, g)), max(0.0, min(1.0, b)), header.a_dc


def thumbhash_aspect_ratio(hash_: str | bytes) -> float:
    """Given a ThumbHash, return the approximate width/height of its image (``thumbHashToApproximateAspectRatio``)."""
    raw = parse_thumbhash(hash_)
    long_side = 5 if raw[2] & 0x80 else 7
    if raw[4] & 0x80:  # landscape
        return long_side / (raw[3] & 7)
    return (raw[3] & 7) / long_side


def hex_colour(rgba: tuple[float, float, float, float], *, alpha: bool = False) -> str:
    """Given (r, g, b, a) in 0-1, return ``#rrggbb`` (or ``#rrggbbaa`` with ``alpha`` when a < 1)."""
    channels = rgba if alpha and rgba[3] < 1 else rgba[:3]
    return "#" + "".join(f"{min(255, max(0, js_round(255 * value))):02x}" for value in channels)


def average_colour(rgba: bytes) -> str:
    """Given RGBA bytes, return their alpha-weighted average colour as ``#rrggbb`` (black if all transparent)."""
    r, g, b, _ = _average(rgba)
    return hex_colour((r, g, b, 1.0))


def _lpq_to_rgb(lum: float, p: float, q: float) -> tuple[float, float, float]:
    b = lum - 2 / 3 * p
    r = (3 * lum - b + q) / 2
    return r, r - q, b


def thumbhash_to_rgba(hash_: str | bytes) -> tuple[int, int, bytes]:
    """Given a ThumbHash, return the (width, height, RGBA bytes) of its placeholder image (at most 32x32).

    The pixels are those of the reference's ``thumbHashToRGBA``.
    """
    raw = parse_thumbhash(hash_)
    header = _read_header(raw)
    nibbles = [(byte >> shift) & 15 for byte in raw[6 if header.has_alpha else 5 :] for shift in (0, 4)]
    # Saturation is boosted by 1.25 to make up for the quantisation, as the reference does.
    channels = [(_terms(header.lx, header.ly), header.l_scale), (_terms(3, 3), header.p_scale * 1.25)]
    channels += [(_terms(3, 3), header.q_scale * 1.25)]
    if header.has_alpha:
        channels.append((_terms(5, 5), header.a_scale))
    decoded: list[list[tuple[float, int, int]]] = []
    start = 0
    for terms, scale in channels:
        values = nibbles[start : start + len(terms)]
        decoded.append([((n / 7.5 - 1) * scale, cx, cy) for n, (cx, cy) in zip(values, terms, strict=True)])
        start += len(terms)
    l_ac, p_ac, q_ac = decoded[:3]
    a_ac = decoded[3] if header.has_alpha else []

    ratio = thumbhash_aspect_ratio(raw)
    width = js_round(32 if ratio > 1 else 32 * ratio)
    height = js_round(32 / ratio if ratio > 1 else 32)
    n_x = max(header.lx, 5 if header.has_alpha else 3)
    n_y = max(header.ly, 5 if header.has_alpha else 3)
    fx_table = [[js_cos(math.pi / width * (x + 0.5) * cx) for cx in range(n_x)] for x in range(width)]
    fy2_table = [[js_cos(math.pi / height * (y + 0.5) * cy) * 2 for cy in range(n_y)] for y in range(height)]
    out = bytearray()
    for fy2 in fy2_table:
        for fx in fx_table:
            lum, p, q, a = header.l_dc, header.p_dc, header.q_dc, header.a_dc
            for value, cx, cy in l_ac:
                lum += value * fx[cx] * fy2[cy]
            for (p_value, cx, cy), (q_value, _, _) in zip(p_ac, q_ac, strict=True):
                f = fx[cx] * fy2[cy]
                p += p_value * f
                q += q_value * f
            for value, cx, cy in a_ac:
                a += value * fx[cx] * fy2[cy]
            r, g, b = _lpq_to_rgb(lum, p, q)
            # A Uint8Array truncates.
            out += bytes(int(max(0.0, 255 * min(1.0, v))) for v in (r, g, b, a))
    return width, height, bytes(out)


@functools.lru_cache(maxsize=1024)
def _data_uri(hash_: bytes) -> str:
    width, height, rgba = thumbhash_to_rgba(hash_)
    return "data:image/png;base64," + base64.b64encode(_png(width, height, rgba)).decode("ascii")


def thumbhash_data_uri(value: str | bytes) -> str:
    """Given a ThumbHash (base64 text or bytes), return its placeholder image as a PNG ``data:`` URI.

    Decoding takes a few milliseconds, so the URIs of the last 1024 hashes are kept in memory.
    Raise ``ValueError`` for a value that is not a ThumbHash.
    """
    return _data_uri(parse_thumbhash(value))


def _png(width: int, height: int, rgba: bytes) -> bytes:
    """A PNG of these pixels: RGB when they are all opaque, else RGBA; every row "Up"-filtered.

    The filter (each byte minus the one above) turns the smooth placeholder into near-zeros,
    which deflate to about half the size of the unfiltered rows.
    """
    opaque = all(alpha == 255 for alpha in rgba[3::4])
    pixels = bytes(b for i, b in enumerate(rgba) if i % 4 != 3) if opaque else rgba
    stride = width * (3 if opaque else 4)
    above = bytes(stride)
    rows = []
    for y in range(height):
        row = pixels[y * stride : (y + 1) * stride]
        rows.append(b"\x02" + bytes((b - a) & 255 for a, b in zip(above, row, strict=True)))
        above = row

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2 if opaque else 6, 0, 0, 0)
    idat = zlib.compress(b"".join(rows), 9)
    return _PNG_SIGNATURE + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
