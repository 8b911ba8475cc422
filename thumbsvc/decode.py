"""Bytes to a ``PIL.Image`` under limits: format allowlist, pixel and frame budgets, draft.

Nothing is decoded before the header has been checked: ``open_image`` reads only the
header, and the caller decodes (``load``) after choosing a draft scale.
"""

from __future__ import annotations

import functools
import io
import struct
import warnings
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from PIL import Image, ImageFile, PngImagePlugin, UnidentifiedImageError

from thumbsvc.errors import SourceTooLarge, ThumbError, UnprocessableSource, UnsupportedFormat

# Formats we decode. Anything else (SVG, PDF, PostScript, TIFF, BMP, PSD, ...) is refused at open.
BASE_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "AVIF")  # JPEG also opens multi-picture (MPO) files
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True, slots=True)
class Limits:
    max_source_pixels: int = 50_000_000
    max_frames: int = 100
    max_animation_pixels: int = 250_000_000
    max_output_px: int = 4096

    @classmethod
    def from_settings(cls, settings: object) -> Limits:
        return cls(
            max_source_pixels=settings.max_source_pixels,  # type: ignore[attr-defined]
            max_frames=settings.max_frames,  # type: ignore[attr-defined]
            max_animation_pixels=settings.max_animation_pixels,  # type: ignore[attr-defined]
            max_output_px=settings.max_output_px,  # type: ignore[attr-defined]
        )


@functools.cache
def _register_plugins() -> None:
    from PIL import AvifImagePlugin, GifImagePlugin, JpegImagePlugin, WebPImagePlugin  # noqa: F401


def allowed_formats() -> tuple[str, ...]:
    """Return the Pillow format names we open: the base list plus HEIF when its plugin is registered.

    Only the plugins of these formats are imported, on the first call, never Pillow's whole set
    (``Image.init``): the others would only be refused, and importing them costs about 1 MiB.
    """
    _register_plugins()
    extra = ("HEIF",) if "HEIF" in Image.OPEN else ()
    return BASE_FORMATS + extra


def configure(max_source_pixels: int) -> None:
    """Set Pillow's process-wide guards once, at start-up.

    Pillow's own bomb check stays armed at twice our limit as a second fence, and its
    warning becomes an error; truncated images are never accepted; the EXIF reader's
    complaints about corrupt blocks are silenced (such a block is ignored).
    """
    try:
        import pillow_heif  # type: ignore[import-not-found,unused-ignore]

        pillow_heif.register_heif_opener()
    except ImportError:
        pass
    Image.MAX_IMAGE_PIXELS = max_source_pixels
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    warnings.simplefilter("error", Image.DecompressionBombWarning)
    # A corrupt EXIF block means "no orientation", not a log line per request.
    warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.TiffImagePlugin")


@contextmanager
def pillow_errors() -> Iterator[None]:
    """Translate whatever Pillow raises while reading untrusted bytes into our errors."""
    try:
        yield
    except ThumbError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise SourceTooLarge(str(exc)) from exc
    except UnidentifiedImageError as exc:
        raise UnsupportedFormat(str(exc)) from exc
    except MemoryError as exc:
        raise SourceTooLarge(f"out of memory: {exc}") from exc
    except Exception as exc:
        # Decoders raise OSError, but also ValueError, KeyError, IndexError, struct.error, ... on bad input.
        raise UnprocessableSource(f"{type(exc).__name__}: {exc}") from exc


def open_image(data: bytes, limits: Limits) -> Image.Image:
    """Given source bytes, return an opened (not yet decoded) image that is within limits.

    Raise ``UnsupportedFormat`` for formats off the allowlist, ``SourceTooLarge`` for
    too many pixels or frames, ``UnprocessableSource`` for a header Pillow cannot read.
    """
    if not data:
        raise UnsupportedFormat("empty source")
    png = data.startswith(PNG_SIGNATURE)
    if png:
        check_png_chunks(data)
    with pillow_errors():
        image = Image.open(io.BytesIO(data), formats=allowed_formats())
        check_dimensions(image, limits, data)
    if png and "exif" not in image.info:
        # Pillow reads the chunks after the pixels only when it decodes them; a late eXIf chunk is
        # found here so the orientation is known from the header (``pipeline.read_orientation``).
        late = late_png_exif(data)
        if late is not None:
            image.info["exif"] = late
    return image


def check_dimensions(image: Image.Image, limits: Limits, data: bytes = b"") -> None:
    """Raise ``SourceTooLarge`` if the header declares more pixels or frames than allowed.

    For GIF the canvas is what the decoder will grow to (a frame may lie outside the
    logical screen), read from the frame descriptors without decoding any pixels.
    """
    width, height = image.size
    if width < 1 or height < 1:
        raise UnprocessableSource(f"image declares {width}x{height}")
    if image.format == "GIF":
        width, height = gif_canvas(data, (width, height))
    if width * height > limits.max_source_pixels:
        raise SourceTooLarge(f"{width}x{height} is over {limits.max_source_pixels} pixels")
    frames = frame_count(image)
    if frames > limits.max_frames:
        raise SourceTooLarge(f"{frames} frames is over {limits.max_frames}")
    if frames > 1 and frames * width * height > limits.max_animation_pixels:
        raise SourceTooLarge(f"{frames}x{width}x{height} is over the animation budget")


def gif_canvas(data: bytes, screen: tuple[int, int]) -> tuple[int, int]:
    """Given GIF bytes, return the logical screen grown to cover every frame's extent.

    Pillow enlarges its canvas to a frame that lies outside the screen, so a 44-byte
    file can declare frames that need gigapixels. Only block headers are walked; a
    truncated stream ends the walk (the decoder reports it later).
    """
    width, height = screen
    if len(data) < 13:
        return width, height
    pos = 13 + _colour_table_size(data[10])
    while pos < len(data):
        block = data[pos]
        if block == 0x21:  # extension: label, then data sub-blocks
            pos = _skip_sub_blocks(data, pos + 2)
        elif block == 0x2C and pos + 10 <= len(data):  # image descriptor
            left, top, frame_w, frame_h = struct.unpack_from("<4H", data, pos + 1)
            width, height = max(width, left + frame_w), max(height, top + frame_h)
            pos = _skip_sub_blocks(data, pos + 11 + _colour_table_size(data[pos + 9]))
        else:  # trailer, garbage or truncation
            break
    return width, height


def check_png_chunks(data: bytes) -> None:
    """Raise ``SourceTooLarge`` if a compressed PNG text or profile chunk inflates past Pillow's chunk limit.

    Pillow refuses such a chunk too, but with a ``ValueError`` that looks like any other
    corrupt file; a zlib bomb is a size problem, so it is found here and answered 413.
    Only the chunks before the image data are read, and each inflates at most one byte
    past the limit.
    """
    limit = PngImagePlugin.MAX_TEXT_CHUNK
    pos = len(PNG_SIGNATURE)
    while pos + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        body = data[pos + 8 : pos + 8 + length]
        if kind in (b"IDAT", b"IEND"):
            return
        compressed = _compressed_payload(kind, body)
        if compressed is not None:
            inflater = zlib.decompressobj()
            try:
                size = len(inflater.decompress(compressed, limit + 1))
            except zlib.error:
                return  # corrupt, not large: the decoder reports it
            if size > limit:
                raise SourceTooLarge(f"PNG {kind.decode('latin-1')} chunk inflates past {limit} bytes")
        pos += 12 + length


def late_png_exif(data: bytes) -> bytes | None:
    """Return the body of an eXIf chunk that follows a PNG's image data, or None.

    Only chunk headers are read: each IDAT is skipped by its length, nothing is inflated.
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


def _colour_table_size(flags: int) -> int:
    return 3 << ((flags & 0x07) + 1) if flags & 0x80 else 0


def _skip_sub_blocks(data: bytes, pos: int) -> int:
    while pos < len(data):
        size = data[pos]
        pos += 1 + size
        if size == 0:
            break
    return pos


def frame_count(image: Image.Image) -> int:
    """Return the number of animation frames (1 for stills and for multi-picture JPEGs)."""
    if image.format == "MPO":
        return 1
    return int(getattr(image, "n_frames", 1))
