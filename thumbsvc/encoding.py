"""``encode(image, fmt, quality) -> (bytes, media_type)`` and content negotiation."""

from __future__ import annotations

import io

from PIL import Image

MEDIA_TYPES = {
    "jpeg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "avif": "image/avif",
    "gif": "image/gif",
}
# Output kind for each source format when the URL asks for none.
SOURCE_KINDS = {"JPEG": "jpeg", "MPO": "jpeg", "PNG": "png", "GIF": "gif", "WEBP": "webp", "AVIF": "avif"}
DEFAULT_QUALITY = {"jpeg": 82, "webp": 80, "avif": 60}
ALPHA_FORMATS = frozenset({"png", "webp", "avif", "gif"})
# JPEGs larger than this many pixels are written progressive: smaller and they render early.
PROGRESSIVE_MIN_PIXELS = 100 * 100


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
    """Given an RGB/RGBA/L/LA/P image, return its encoded bytes and media type. No metadata is written."""
    buffer = io.BytesIO()
    if fmt == "jpeg":
        pixels = image.width * image.height
        image.save(
            buffer,
            "JPEG",
            quality=quality or DEFAULT_QUALITY["jpeg"],
            progressive=pixels >= PROGRESSIVE_MIN_PIXELS,
            optimize=pixels < PROGRESSIVE_MIN_PIXELS,
            subsampling="4:2:0",
        )
    elif fmt == "webp":
        image.save(buffer, "WEBP", quality=quality or DEFAULT_QUALITY["webp"], method=4)
    elif fmt == "avif":
        image.save(buffer, "AVIF", quality=quality or DEFAULT_QUALITY["avif"], speed=8)
    elif fmt == "png":
        image.save(buffer, "PNG", compress_level=6)
    elif fmt == "gif":
        image.save(buffer, "GIF", optimize=False)
    else:  # pragma: no cover - options.py only lets known formats through
        raise ValueError(f"unknown output format {fmt!r}")
    return buffer.getvalue(), MEDIA_TYPES[fmt]
