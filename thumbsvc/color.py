"""Colour: decoded pixels to 8-bit sRGB that needs no profile.

Two steps around the resize. ``normalise_mode`` (before) collapses palette, bilevel
and 16-bit modes into L, LA, RGB, RGBA or CMYK, applying a tRNS transparent colour.
``to_srgb`` (after, on the small image, so it costs almost nothing) converts through the
embedded ICC profile with LittleCMS (relative colorimetric with black-point
compensation) and turns CMYK into RGB. The output then carries no profile: untagged
pixels are sRGB by convention, so nothing in the file can contradict them.

CMYK without a usable embedded profile goes through a bundled fallback press profile
(``profiles/cmyk-fallback-swop-tr003.icc``: SWOP coated, built with ArgyllCMS from the
CGATS TR 003 characterization data), the profile most untagged Adobe CMYK files were
made for (see docs/rendering.md).
"""

from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageChops, ImageCms

# The profile colour space (ICC header field) each of our working modes needs.
PROFILE_SPACES = {"L": "GRAY", "LA": "GRAY", "RGB": "RGB", "RGBA": "RGB", "CMYK": "CMYK"}
# A transform whose output differs from its input by at most this much on every probe
# colour is an sRGB profile under another name: skip it.
IDENTITY_TOLERANCE = 1
CMS_ERRORS = (ImageCms.PyCMSError, OSError, ValueError, TypeError)
MAX_CACHED_PROFILE_BYTES = 1_000_000
FALLBACK_CMYK_PROFILE = Path(__file__).parent / "profiles" / "cmyk-fallback-swop-tr003.icc"


def has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info


def normalise_mode(image: Image.Image) -> Image.Image:
    """Return the image in one of L, LA, RGB, RGBA, CMYK, YCbCr (a tRNS colour becomes alpha).

    YCbCr only comes from the JPEG decoder (``pipeline.draft`` asks for it), and stays.
    """
    mode = image.mode
    if mode in ("L", "RGB") and "transparency" in image.info:
        return image.convert(mode + "A")
    if mode in ("L", "LA", "RGB", "RGBA", "CMYK", "YCbCr"):
        return image
    if mode in ("P", "PA"):
        return image.convert("RGBA" if has_alpha(image) else "RGB")
    if mode == "1":
        return image.convert("L")
    if mode.startswith("I") or mode == "F":
        # 16-bit greys: scale to 8 bits instead of clipping at 255.
        grey = image.convert("I").point(lambda value: value * (1 / 256)).convert("L")
        return grey.convert("LA") if "transparency" in image.info else grey
    return image.convert("RGBA" if has_alpha(image) else "RGB")


def to_srgb(image: Image.Image, icc_profile: bytes | None) -> Image.Image:
    """Given a normalised image and its embedded profile, return sRGB pixels in L, LA, RGB or RGBA
    (or YCbCr, JPEG's coding of RGB, when the profile changes nothing).

    A profile that does not describe the image's colour space, or that LittleCMS cannot
    read, is ignored (the pixels are taken as sRGB), never an error.
    """
    transform = None
    if icc_profile:
        build = _cached_transform if len(icc_profile) <= MAX_CACHED_PROFILE_BYTES else _transform
        transform = build(icc_profile, "RGB" if image.mode == "YCbCr" else image.mode)
    if image.mode == "YCbCr":
        if transform is None:
            return image
        image = image.convert("RGB")
    if transform is None and image.mode == "CMYK":
        transform = _cached_transform(_fallback_cmyk_profile(), "CMYK")
    if transform is None:
        return image.convert("RGB") if image.mode == "CMYK" else image
    if image.mode == "LA":
        grey = ImageCms.applyTransform(image.convert("L"), transform)
        assert grey is not None
        result = grey.convert("L")
        result.putalpha(image.getchannel("A"))
        return result.convert("LA")
    converted = ImageCms.applyTransform(image, transform)
    assert converted is not None
    return converted.convert("L") if image.mode == "L" else converted


def _transform(icc_profile: bytes, mode: str) -> ImageCms.ImageCmsTransform | None:
    """Return the transform from ``icc_profile`` to sRGB for ``mode``; None when there is nothing to do."""
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc_profile))
        if profile.profile.xcolor_space.strip() != PROFILE_SPACES.get(mode):
            return None
        in_mode = "L" if mode == "LA" else mode
        out_mode = "RGBA" if mode == "RGBA" else "RGB"
        transform = ImageCms.buildTransform(
            profile,
            _srgb(),
            in_mode,
            out_mode,
            renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC,
            flags=ImageCms.Flags.BLACKPOINTCOMPENSATION,
        )
        if in_mode != "CMYK" and _is_identity(transform, in_mode):
            return None
    except CMS_ERRORS:
        return None
    return transform


# Building a transform costs 2-40 ms (more than the whole resize of a photo), so each distinct
# profile's is built once and kept: a pure, bounded memo (its keys are the profile bytes, so
# profiles over MAX_CACHED_PROFILE_BYTES, which a JPEG can spread over many APP2 segments,
# are built every time rather than pinned in memory).
_cached_transform = lru_cache(maxsize=32)(_transform)


@lru_cache(maxsize=1)
def _fallback_cmyk_profile() -> bytes:
    return FALLBACK_CMYK_PROFILE.read_bytes()


@lru_cache(maxsize=1)
def _srgb() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def _is_identity(transform: ImageCms.ImageCmsTransform, mode: str) -> bool:
    """True when the transform leaves a grid of probe colours unchanged (an sRGB profile)."""
    steps = range(0, 256, 17)
    if mode == "L":
        probe = Image.new("L", (len(steps), 1))
        probe.putdata(list(steps))
    else:
        probe = Image.new("RGB", (len(steps) ** 3, 1))
        probe.putdata([(r, g, b) for r in steps for g in steps for b in steps])
        probe = probe.convert(mode)
    result = ImageCms.applyTransform(probe, transform)
    assert result is not None
    difference = ImageChops.difference(result.convert("RGB"), probe.convert("RGB"))
    return difference.point(lambda value: 255 if value > IDENTITY_TOLERANCE else 0).getbbox() is None
