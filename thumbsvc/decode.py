"""Bytes to a ``PIL.Image`` under limits: format allowlist, pixel and frame budgets, draft.

Nothing is decoded before the header has been checked: ``open_image`` reads only the
header, and the caller decodes (``load``) after choosing a draft scale.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from PIL import Image, ImageFile, UnidentifiedImageError

from thumbsvc.errors import SourceTooLarge, ThumbError, UnprocessableSource, UnsupportedFormat

# Formats we decode. Anything else (SVG, PDF, PostScript, TIFF, BMP, PSD, ...) is refused at open.
BASE_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "AVIF")  # JPEG also opens multi-picture (MPO) files


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


def allowed_formats() -> tuple[str, ...]:
    """Return the Pillow format names we open: the base list plus HEIF when its plugin is registered."""
    Image.init()
    extra = ("HEIF",) if "HEIF" in Image.OPEN else ()
    return BASE_FORMATS + extra


def configure(max_source_pixels: int) -> None:
    """Set Pillow's process-wide guards once, at start-up.

    Pillow's own bomb check stays armed at twice our limit as a second fence, and its
    warning becomes an error; truncated images are never accepted.
    """
    try:
        import pillow_heif  # type: ignore[import-not-found,unused-ignore]

        pillow_heif.register_heif_opener()
    except ImportError:
        pass
    Image.MAX_IMAGE_PIXELS = max_source_pixels
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    warnings.simplefilter("error", Image.DecompressionBombWarning)


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
    with pillow_errors():
        image = Image.open(io.BytesIO(data), formats=allowed_formats())
        check_dimensions(image, limits)
    return image


def check_dimensions(image: Image.Image, limits: Limits) -> None:
    """Raise ``SourceTooLarge`` if the header declares more pixels or frames than allowed."""
    width, height = image.size
    if width < 1 or height < 1:
        raise UnprocessableSource(f"image declares {width}x{height}")
    if width * height > limits.max_source_pixels:
        raise SourceTooLarge(f"{width}x{height} is over {limits.max_source_pixels} pixels")
    frames = frame_count(image)
    if frames > limits.max_frames:
        raise SourceTooLarge(f"{frames} frames is over {limits.max_frames}")
    if frames > 1 and frames * width * height > limits.max_animation_pixels:
        raise SourceTooLarge(f"{frames}x{width}x{height} is over the animation budget")


def frame_count(image: Image.Image) -> int:
    """Return the number of animation frames (1 for stills and for multi-picture JPEGs)."""
    if image.format == "MPO":
        return 1
    return int(getattr(image, "n_frames", 1))
