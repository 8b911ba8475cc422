"""Walk a source's container structure before Pillow parses it, within fixed budgets.

Pillow's plugins parse headers in Python, one marker, chunk or block at a time, and keep
much of what they read: a JPEG made of a million empty APP0 markers, a PNG of a million
empty chunks or a GIF of a million one-byte comment blocks costs seconds of CPU and
hundreds of MB before a single pixel is decoded, and counting a GIF's frames walks all of
them. The walks here read only lengths and tags (and inflate PNG text within a budget),
stop at the first budget they pass, and raise:

- ``SourceTooLarge`` (413) for too much of something legitimate: markers, chunks, blocks,
  metadata or text bytes, scans, frames;
- ``UnprocessableSource`` (422) for stray bytes between structures, which no encoder
  writes and which Pillow skips one byte at a time.

A structure that is truncated or not understood ends the walk quietly: the decoder
reports it later. Each budget is a module constant: they bound work per request, not
policy, so they are not settings. Real files are far inside them (the shared corpus:
an ICC profile of 390 KB in 7 APP2 segments, camera EXIF, XMP, MPO, 10-30 scans).
"""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass

from PIL import PngImagePlugin

from thumbsvc.errors import SourceTooLarge, UnprocessableSource

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# Bytes between structures that Pillow skips one at a time (JPEG fill bytes and junk, GIF
# bytes that start no block). Real files have a handful; 64 KiB cost Pillow about 20 ms.
MAX_STRAY_BYTES = 64 * 1024
# EXIF is parsed entry by entry (up to one entry per 12 bytes), at open for a JPEG and for
# the orientation of every format. The standard puts it in one APP1 segment of 64 KB; Pillow
# joins several, so a few are allowed.
MAX_EXIF_BYTES = 256 * 1024

# JPEG: Pillow parses every marker before the first scan in Python and keeps every APPn/COM
# payload (and joins EXIF segments, quadratically). Real files: under 300 markers (an ICC
# profile takes at most 255 APP2 segments), metadata up to a few MB (extended XMP).
MAX_JPEG_MARKERS = 1000
MAX_JPEG_METADATA_BYTES = 16 * 1024 * 1024
# Each scan of a progressive JPEG is a pass over all its coefficients (30 ms at 49 MP here):
# a 300 KB file of repeated scans costs seconds. Encoders write 10 (libjpeg's script) to ~35.
MAX_JPEG_SCANS = 64

# PNG: every chunk costs Pillow a Python call (before the image data at open, after it while
# decoding); real files have a few dozen besides IDAT chunks of 8-64 KB (3,000 in 25 MB).
MAX_PNG_CHUNKS = 50_000
# Inflated bytes of zTXt, iTXt and iCCP chunks plus tEXt, per file. Pillow allows 1 MB per
# chunk and 64 MB of text in all, which it holds in memory; real files carry well under 1 MB.
MAX_PNG_TEXT_BYTES = 16 * 1024 * 1024

# GIF: data sub-blocks walked in Python (to count frames, and for comments at open). A 25 MB
# GIF written with 255-byte sub-blocks has 100,000.
MAX_GIF_SUB_BLOCKS = 250_000

# WebP: chunks besides the animation frames (VP8X, ICCP, ANIM, EXIF, XMP, unknown ones).
MAX_WEBP_OTHER_CHUNKS = 64
# AVIF (ISOBMFF): boxes walked to find the sample tables; real files have a few dozen.
MAX_AVIF_BOXES = 10_000

_GIF_BLOCK_START = re.compile(rb"[\x21\x2c\x3b]")
_FILL = re.compile(rb"\xff+")
_JPEG_METADATA = frozenset({*range(0xE0, 0xF0), 0xFE})  # APP0-APP15 and COM
# Markers that Pillow reads with a length (the others stand alone).
_JPEG_SEGMENTS = frozenset({*range(0xC0, 0xD0), *range(0xDA, 0xE0), *range(0xE0, 0xF0), 0xFE}) - {0xC8}
_SOS = 0xDA
# Frame headers (SOF0-SOF15 less DHT, JPG and DAC), and the progressive ones among them.
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_PROGRESSIVE_SOF = frozenset({0xC2, 0xC6, 0xCA, 0xCE})
_PNG_COMPRESSED = frozenset({b"zTXt", b"iTXt", b"iCCP"})
_AVIF_CONTAINERS = frozenset({b"moov", b"trak", b"mdia", b"minf", b"stbl"})


def check(data: bytes, max_frames: int) -> None:
    """Given source bytes, raise if walking their structure passes a budget; else return.

    Formats are told apart by their signatures; anything else is left to ``Image.open``.
    """
    if data.startswith(b"\xff\xd8\xff"):
        check_jpeg(data)
    elif data.startswith(PNG_SIGNATURE):
        check_png(data)
    elif data.startswith((b"GIF87a", b"GIF89a")):
        gif_layout(data, max_frames, preamble_only=True)
    elif data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        check_webp(data, max_frames)
    elif data[4:8] == b"ftyp":
        check_isobmff(data, max_frames)


# JPEG -------------------------------------------------------------------------------------------------------------


def check_jpeg(data: bytes) -> None:
    """Walk a JPEG's markers as Pillow will (up to the first scan), then count its scans where the
    decoder would read more than one.

    Raise ``SourceTooLarge`` past the marker, metadata, EXIF or scan budgets and
    ``UnprocessableSource`` past the stray-byte budget.
    """
    pos, size = 2, len(data)
    markers = metadata = exif = stray = 0
    frame: tuple[int, int] | None = None  # the frame header's marker and component count
    while pos + 1 < size:
        # Stray bytes are skipped in C, but never past the budget (nor the GIL held over megabytes).
        window = min(size, pos + MAX_STRAY_BYTES - stray + 2)
        if data[pos] != 0xFF:  # junk: Pillow skips it a byte at a time
            found = data.find(b"\xff", pos, window)
            end = window if found < 0 else found
            stray += end - pos
            pos = end
        elif data[pos + 1] == 0xFF:  # fill bytes before a marker
            run = _FILL.match(data, pos, window)
            end = run.end() - 1 if run else pos  # the last 0xFF of the run starts the marker
            stray += end - pos
            pos = end
        else:
            marker = data[pos + 1]
            markers += 1
            if markers > MAX_JPEG_MARKERS:
                raise SourceTooLarge(f"JPEG has over {MAX_JPEG_MARKERS} markers before its first scan")
            if marker not in _JPEG_SEGMENTS:
                pos += 2
                continue
            if pos + 4 > size:
                return
            length = max(0, struct.unpack_from(">H", data, pos + 2)[0] - 2)
            if marker in _JPEG_METADATA:
                metadata += length
                if marker == 0xE1 and data.startswith(b"Exif\0\0", pos + 4):
                    exif += length
            if marker in _SOF and pos + 9 < size:
                frame = (marker, data[pos + 9])
            if marker == _SOS:
                if _may_have_more_scans(frame, data[pos + 4] if pos + 4 < size else 0):
                    _check_scans(data, pos)
                break
            pos += 4 + length
        if stray > MAX_STRAY_BYTES:
            raise UnprocessableSource(f"JPEG has over {MAX_STRAY_BYTES} stray bytes between markers")
        if metadata > MAX_JPEG_METADATA_BYTES:
            raise SourceTooLarge(f"JPEG metadata is over {MAX_JPEG_METADATA_BYTES} bytes")
        if exif > MAX_EXIF_BYTES:
            raise SourceTooLarge(f"JPEG EXIF is over {MAX_EXIF_BYTES} bytes")


def _may_have_more_scans(frame: tuple[int, int] | None, components_in_first_scan: int) -> bool:
    """Whether the decoder would read scans after the first: a progressive frame, or a sequential
    one whose first scan leaves components out. Of a sequential JPEG whose first scan holds every
    component, libjpeg refuses a second scan at once, so counting them (a pass over the whole file
    with the GIL held) would buy nothing."""
    if frame is None:
        return True
    marker, components = frame
    return marker in _PROGRESSIVE_SOF or components_in_first_scan < components


def _check_scans(data: bytes, first_scan: int) -> None:
    # Entropy-coded data escapes every 0xFF (FF 00), so FF DA past the first scan is a scan
    # header, or metadata between scans, or a second picture (MPO): over-counting only.
    scans = data.count(b"\xff\xda", first_scan)
    if scans > MAX_JPEG_SCANS:
        raise SourceTooLarge(f"JPEG has {scans} scans, over {MAX_JPEG_SCANS}")


# PNG --------------------------------------------------------------------------------------------------------------


def check_png(data: bytes) -> None:
    """Walk every chunk header of a PNG; inflate its text and profile chunks within one budget.

    Raise ``SourceTooLarge`` past the chunk count, a compressed chunk over Pillow's per-chunk
    limit (a zlib bomb is a size problem, not a corrupt file), the text budget, or an eXIf
    chunk over the EXIF budget. Inflating never produces more than the budget left plus one byte.
    """
    pos, size = len(PNG_SIGNATURE), len(data)
    chunks = text = 0
    while pos + 8 <= size:
        length, kind = struct.unpack_from(">I4s", data, pos)
        chunks += 1
        if chunks > MAX_PNG_CHUNKS:
            raise SourceTooLarge(f"PNG has over {MAX_PNG_CHUNKS} chunks")
        if kind == b"IEND":
            return
        if kind in _PNG_COMPRESSED or kind == b"tEXt":
            text += _text_bytes(kind, data[pos + 8 : pos + 8 + length], MAX_PNG_TEXT_BYTES - text)
            if text > MAX_PNG_TEXT_BYTES:
                raise SourceTooLarge(f"PNG text and profile chunks inflate past {MAX_PNG_TEXT_BYTES} bytes")
        elif kind == b"eXIf" and length > MAX_EXIF_BYTES:
            raise SourceTooLarge(f"PNG eXIf chunk is over {MAX_EXIF_BYTES} bytes")
        pos += 12 + length


def _text_bytes(kind: bytes, body: bytes, budget: int) -> int:
    """Return the bytes a text or profile chunk holds once inflated, at most ``budget + 1``.

    Raise ``SourceTooLarge`` if it inflates past Pillow's limit for one chunk.
    """
    compressed = _compressed_payload(kind, body)
    if compressed is None:
        return len(body)
    limit = PngImagePlugin.MAX_TEXT_CHUNK
    inflater = zlib.decompressobj()
    try:
        size = len(inflater.decompress(compressed, min(limit, budget) + 1))
    except zlib.error:
        return 0  # corrupt, not large: Pillow drops such a chunk or reports it
    if size > limit:
        raise SourceTooLarge(f"PNG {kind.decode('latin-1')} chunk inflates past {limit} bytes")
    return size


def _compressed_payload(kind: bytes, body: bytes) -> bytes | None:
    """Return the zlib stream of a zTXt, compressed iTXt or iCCP chunk, else None."""
    if kind in (b"zTXt", b"iCCP"):
        keyword_end = body.find(b"\0")
        return body[keyword_end + 2 :] if keyword_end >= 0 else None
    if kind == b"iTXt":
        keyword_end = body.find(b"\0")
        if keyword_end < 0 or len(body) < keyword_end + 3 or body[keyword_end + 1] != 1:
            return None
        language_end = body.find(b"\0", keyword_end + 3)
        translated_end = body.find(b"\0", language_end + 1) if language_end >= 0 else -1
        return body[translated_end + 1 :] if translated_end >= 0 else None
    return None


def late_png_exif(data: bytes) -> bytes | None:
    """Return the body of an eXIf chunk that follows a PNG's image data, or None.

    Only chunk headers are read: each IDAT is skipped by its length, nothing is inflated.
    ``check_png`` has bounded the number of chunks.
    """
    pos = len(PNG_SIGNATURE)
    seen_data = False
    while pos + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        if kind == b"IEND":
            break
        if kind == b"IDAT":
            seen_data = True
        elif kind == b"eXIf" and seen_data:
            return data[pos + 8 : pos + 8 + length]
        pos += 12 + length
    return None


# GIF --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GifLayout:
    canvas: tuple[int, int]  # the logical screen grown to cover every frame counted
    frames: int  # at most max_frames + 1: counting stops there


def gif_layout(data: bytes, max_frames: int, *, preamble_only: bool = False) -> GifLayout:
    """Given GIF bytes, walk their blocks as Pillow does and return the canvas and the frame count.

    Pillow enlarges its canvas to a frame that lies outside the logical screen, so a 44-byte
    file can declare frames that need gigapixels. Counting stops after ``max_frames + 1``
    frames; with ``preamble_only`` the walk ends at the first frame (what ``Image.open``
    reads). Raise ``SourceTooLarge`` past the sub-block budget, ``UnprocessableSource`` past
    the stray-byte budget. A truncated stream ends the walk (the decoder reports it).
    """
    walk = _GifWalk(data)
    if len(data) < 13:
        return GifLayout((0, 0), 0)
    width, height = struct.unpack_from("<2H", data, 6)
    walk.pos = 13 + _colour_table_size(data[10])
    frames = 0
    while walk.pos < len(data) and frames <= max_frames:
        block = data[walk.pos]
        if block == 0x3B:  # trailer
            break
        if block == 0x21:
            walk.extension(first_frame=frames == 0)
        elif block == 0x2C:
            if preamble_only or walk.pos + 10 > len(data):
                break
            left, top, frame_w, frame_h = struct.unpack_from("<4H", data, walk.pos + 1)
            width, height = max(width, left + frame_w), max(height, top + frame_h)
            frames += 1
            walk.pos += 11 + _colour_table_size(data[walk.pos + 9])  # descriptor, palette, LZW code size
            walk.sub_blocks()
        else:
            walk.skip_stray()
    return GifLayout((width, height), frames)


class _GifWalk:
    """A position in GIF bytes and the Python-level work Pillow will do there, within budget."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.blocks = 0
        self.stray = 0

    def sub_block(self) -> bytes:
        """Read one data sub-block (its size byte, then that many bytes); return its bytes (empty: terminator)."""
        data, pos = self.data, self.pos
        if pos >= len(data):
            return b""
        self.blocks += 1
        if self.blocks > MAX_GIF_SUB_BLOCKS:
            raise SourceTooLarge(f"GIF has over {MAX_GIF_SUB_BLOCKS} data blocks")
        size = data[pos]
        self.pos = pos + 1 + size
        return data[pos + 1 : self.pos]

    def sub_blocks(self) -> None:
        """Skip sub-blocks up to and including the next terminator (or the end of the data)."""
        while self.pos < len(self.data) and self.sub_block():
            pass

    def extension(self, *, first_frame: bool) -> None:
        # Pillow reads the label and a first sub-block, then keeps reading until an empty one,
        # even when the first one was already empty (except for comments): walk exactly that.
        label = self.data[self.pos + 1] if self.pos + 1 < len(self.data) else -1
        self.pos += 2
        first = self.sub_block()
        if label == 0xFE:
            if first:
                self.sub_blocks()
            return
        if label == 0xFF and first_frame and first.startswith(b"NETSCAPE2.0"):
            self.sub_block()  # the loop count
        self.sub_blocks()

    def skip_stray(self) -> None:
        window = min(len(self.data), self.pos + MAX_STRAY_BYTES - self.stray + 1)
        found = _GIF_BLOCK_START.search(self.data, self.pos, window)
        end = found.start() if found else window
        self.stray += end - self.pos
        if self.stray > MAX_STRAY_BYTES:
            raise UnprocessableSource(f"GIF has over {MAX_STRAY_BYTES} stray bytes between blocks")
        self.pos = end


def _colour_table_size(flags: int) -> int:
    return 3 << ((flags & 0x07) + 1) if flags & 0x80 else 0


# WebP and AVIF ----------------------------------------------------------------------------------------------------


def check_webp(data: bytes, max_frames: int) -> None:
    """Count a WebP's top-level chunks before libwebp's demuxer indexes them all.

    Raise ``SourceTooLarge`` past ``max_frames`` animation frames, the budget of other
    chunks, or an EXIF chunk over the EXIF budget.
    """
    pos, size = 12, len(data)
    frames = others = 0
    while pos + 8 <= size:
        kind, length = struct.unpack_from("<4sI", data, pos)
        if kind == b"ANMF":
            frames += 1
            if frames > max_frames:
                raise SourceTooLarge(f"WebP has over {max_frames} frames")
        else:
            others += 1
            if others > MAX_WEBP_OTHER_CHUNKS:
                raise SourceTooLarge(f"WebP has over {MAX_WEBP_OTHER_CHUNKS} chunks besides its frames")
            if kind == b"EXIF" and length > MAX_EXIF_BYTES:
                raise SourceTooLarge(f"WebP EXIF chunk is over {MAX_EXIF_BYTES} bytes")
        pos += 8 + length + (length & 1)


def check_isobmff(data: bytes, max_frames: int) -> None:
    """Read the sample counts of an AVIF's tracks before libavif allocates one entry per sample.

    Raise ``SourceTooLarge`` if a track has more than ``max_frames`` samples (frames) or the
    walk passes the box budget. Only ``moov`` and the boxes down to each ``stbl`` are entered.
    """
    _BoxWalk(data, max_frames).walk(0, len(data))


class _BoxWalk:
    """ISOBMFF boxes (32- or 64-bit sizes), entered only where sample tables live."""

    def __init__(self, data: bytes, max_frames: int) -> None:
        self.data = data
        self.max_frames = max_frames
        self.boxes = 0

    def walk(self, start: int, end: int) -> None:
        data, pos = self.data, start
        while pos + 8 <= end:
            self.boxes += 1
            if self.boxes > MAX_AVIF_BOXES:
                raise SourceTooLarge(f"AVIF has over {MAX_AVIF_BOXES} boxes")
            size, kind = struct.unpack_from(">I4s", data, pos)
            header = 8
            if size == 1 and pos + 16 <= end:
                size, header = struct.unpack_from(">Q", data, pos + 8)[0], 16
            elif size == 0:  # to the end of the enclosing box
                size = end - pos
            if size < header:
                return  # malformed: libavif reports it
            box_end = min(end, pos + size)
            if kind in _AVIF_CONTAINERS:
                self.walk(pos + header, box_end)
            elif kind in (b"stsz", b"stz2") and pos + header + 12 <= box_end:
                # Both carry the sample count after version/flags and one more 32-bit field.
                samples = struct.unpack_from(">I", data, pos + header + 8)[0]
                if samples > self.max_frames:
                    raise SourceTooLarge(f"AVIF track has {samples} frames, over {self.max_frames}")
            pos += size
