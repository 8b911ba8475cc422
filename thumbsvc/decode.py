"""Bytes to a ``PIL.Image`` under limits: format allowlist, pixel and frame budgets, draft.

Nothing is decoded before the header has been checked: ``open_image`` reads only the
header, and the caller decodes (``load``) after choosing a draft scale. Before Pillow
parses the header, ``prescan`` walks the container structure within fixed budgets, so
the parse itself (markers, chunks, blocks, metadata, frame counting) is bounded too.
"""

from __future__ import annotations

import functools
import io
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from PIL import Image, ImageFile, UnidentifiedImageError

from thumbsvc import prescan
from thumbsvc.errors import SourceTooLarge, ThumbError, UnprocessableSource, UnsupportedFormat
from thumbsvc.prescan import MAX_EXIF_BYTES

# Formats we decode. Anything else (SVG, PDF, PostScript, TIFF, BMP, PSD, ...) is refused at open.
BASE_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "AVIF")  # JPEG also opens multi-picture (MPO) files


@dataclass(frozen=True, slots=True)
class Limits:
    max_source_pixels: int = 50_000_000
    max_frames: int = 100
    max_animation_pixels: int = 250_000_000
    max_output_px: int = 4096


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
    too many pixels or frames or a structure over the ``prescan`` budgets,
    ``UnprocessableSource`` for a header Pillow cannot read.
    """
    if not data:
        raise UnsupportedFormat("empty source")
    prescan.check(data, limits.max_frames)
    with pillow_errors():
        image = Image.open(io.BytesIO(data), formats=allowed_formats())
        check_dimensions(image, limits, data)
    if image.format == "PNG" and "exif" not in image.info:
        # Pillow reads the chunks after the pixels only when it decodes them; a late eXIf chunk is
        # found here so the orientation is known from the header (``pipeline.read_orientation``).
        late = prescan.late_png_exif(data)
        if late is not None:
            image.info["exif"] = late
    check_exif_size(image)
    return image


def check_exif_size(image: Image.Image) -> None:
    """Raise ``SourceTooLarge`` if the EXIF the orientation is read from is over ``MAX_EXIF_BYTES``.

    Parsing EXIF costs Python work per entry (one per 12 bytes); the prescan bounds it for
    JPEG, PNG and WebP before Pillow opens them, this bounds it for every format (AVIF's
    EXIF item, a PNG's hex-encoded ``Raw profile type exif`` text) before it is parsed.
    """
    exif = image.info.get("exif")
    raw = image.info.get("Raw profile type exif")
    size = len(exif) if isinstance(exif, bytes) else 0
    if isinstance(raw, str):
        size = max(size, len(raw) // 2)
    if size > MAX_EXIF_BYTES:
        raise SourceTooLarge(f"EXIF of {size} bytes is over {MAX_EXIF_BYTES}")


def check_dimensions(image: Image.Image, limits: Limits, data: bytes = b"") -> None:
    """Raise ``SourceTooLarge`` if the header declares more pixels or frames than allowed.

    For GIF (given its bytes) the canvas is what the decoder will grow to (a frame may lie
    outside the logical screen) and the frames are counted, both from the block structure
    without decoding any pixels; counting stops at ``max_frames + 1``.
    """
    width, height = image.size
    if width < 1 or height < 1:
        raise UnprocessableSource(f"image declares {width}x{height}")
    if image.format == "GIF" and data:
        layout = prescan.gif_layout(data, limits.max_frames)
        width, height = max(width, layout.canvas[0]), max(height, layout.canvas[1])
        frames = layout.frames
    else:
        frames = frame_count(image)
    if width * height > limits.max_source_pixels:
        raise SourceTooLarge(f"{width}x{height} is over {limits.max_source_pixels} pixels")
    if frames > limits.max_frames:
        raise SourceTooLarge(f"{frames} frames (counting stops there) is over {limits.max_frames}")
    if frames > 1 and frames * width * height > limits.max_animation_pixels:
        raise SourceTooLarge(f"{frames}x{width}x{height} is over the animation budget")


def frame_count(image: Image.Image) -> int:
    """Return the number of animation frames (1 for stills and for multi-picture JPEGs).

    Pillow counts a GIF's frames by walking all of them: cheap only for an image that
    ``open_image`` returned, whose frames and blocks it has bounded.
    """
    if image.format == "MPO":
        return 1
    return int(getattr(image, "n_frames", 1))
