"""The render step: source bytes and options in, encoded thumbnail out.

``render`` runs in a worker thread, never on the event loop. It is an ordered list
of small steps over one image: open (header only) → plan → draft → decode → orient →
normalise mode → resize (in premultiplied alpha) → pad → flatten → encode.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from PIL import ExifTags, Image

from thumbsvc.decode import Limits, open_image, pillow_errors
from thumbsvc.encoding import ALPHA_FORMATS, encode, negotiate, output_kind
from thumbsvc.errors import BadRequest
from thumbsvc.geometry import GeometryError, Plan, plan
from thumbsvc.options import RenderOptions

# Decode JPEGs at the smallest DCT scale that still leaves this many source pixels per
# output pixel, so the final resample has real detail to work from.
DRAFT_OVERSAMPLE = 2.0
REDUCING_GAP = 3.0

# Bump whenever a change to the pipeline changes its output: it is part of every ETag.
RENDER_VERSION = "1"

_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


@dataclass(frozen=True, slots=True)
class Rendered:
    data: bytes
    media_type: str
    width: int
    height: int


def render(data: bytes, options: RenderOptions, limits: Limits, accept: str | None = None) -> Rendered:
    """Given source bytes and options, return the encoded thumbnail.

    Raise ``BadRequest`` when the options cannot apply to this image (crop box outside
    it, output too large) and the decode errors of ``decode.open_image``.
    """
    image = open_image(data, limits)
    with pillow_errors():
        orientation = read_orientation(image)
        upright = upright_size(image.size, orientation)
        kind = output_kind(
            options.format,
            image.format,
            negotiate(accept) if options.format == "auto" else "",
            has_alpha(image),
        )
        layout = make_plan(upright, options, limits)
        draft(image, layout, upright, orientation)
        image.load()
        image = orient(image, orientation)
        image = normalise_mode(image)
        image = resize(image, layout, upright)
        image = pad(image, layout, options, kind)
        image = flatten(image, options, kind)
        body, media_type = encode(image, kind, options.quality)
    return Rendered(body, media_type, image.width, image.height)


def make_plan(upright: tuple[int, int], options: RenderOptions, limits: Limits) -> Plan:
    try:
        return plan(upright, options, max_output_px=limits.max_output_px)
    except GeometryError as exc:
        raise BadRequest(str(exc), public_message=f"Options do not fit the image: {exc}") from exc


def read_orientation(image: Image.Image) -> int:
    """Return the EXIF orientation (1-8); a missing or broken EXIF block means 1."""
    try:
        value = image.getexif().get(ExifTags.Base.Orientation, 1)
    except Exception:
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def upright_size(size: tuple[int, int], orientation: int) -> tuple[int, int]:
    return (size[1], size[0]) if orientation >= 5 else size


def has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info


def draft(image: Image.Image, layout: Plan, upright: tuple[int, int], orientation: int) -> None:
    """Let the JPEG decoder scale by 1/2, 1/4 or 1/8 while keeping DRAFT_OVERSAMPLE margin."""
    if image.format not in ("JPEG", "MPO"):
        return
    factor = min(1.0, layout.scale * DRAFT_OVERSAMPLE)
    want = (math.ceil(upright[0] * factor), math.ceil(upright[1] * factor))
    if orientation >= 5:
        want = (want[1], want[0])
    image.draft(image.mode, want)


def orient(image: Image.Image, orientation: int) -> Image.Image:
    method = _TRANSPOSE.get(orientation)
    return image.transpose(method) if method is not None else image


def normalise_mode(image: Image.Image) -> Image.Image:
    """Return the image in one of L, LA, RGB, RGBA."""
    mode = image.mode
    if mode in ("L", "LA", "RGB", "RGBA"):
        return image
    if mode in ("P", "PA"):
        return image.convert("RGBA" if has_alpha(image) else "RGB")
    if mode == "1":
        return image.convert("L")
    if mode.startswith("I") or mode == "F":
        # 16-bit and 32-bit greys: scale to 8 bits instead of clipping at 255.
        return image.convert("I").point(lambda value: value * (1 / 256)).convert("L")
    if mode == "CMYK":
        return image.convert("RGB")
    return image.convert("RGBA" if has_alpha(image) else "RGB")


def resize(image: Image.Image, layout: Plan, upright: tuple[int, int]) -> Image.Image:
    """Resample the plan's region to its size, in premultiplied alpha so edges get no dark halo."""
    fx, fy = image.width / upright[0], image.height / upright[1]
    left, top, right, bottom = layout.region
    box = (left * fx, top * fy, right * fx, bottom * fy)
    if box == (0, 0, image.width, image.height) and layout.size == image.size:
        return image
    premultiplied = {"RGBA": "RGBa", "LA": "La"}.get(image.mode)
    if premultiplied:
        image = image.convert(premultiplied)
    image = image.resize(layout.size, Image.Resampling.LANCZOS, box=box, reducing_gap=REDUCING_GAP)
    if premultiplied:
        image = image.convert("RGBA" if premultiplied == "RGBa" else "LA")
    return image


def background_colour(options: RenderOptions, kind: str) -> tuple[int, int, int, int]:
    """The pad and flatten colour: as asked, else transparent where the format has alpha, else white."""
    if options.background is not None:
        hex_ = options.background
        alpha = int(hex_[6:8], 16) if len(hex_) == 8 else 255
        return (int(hex_[0:2], 16), int(hex_[2:4], 16), int(hex_[4:6], 16), alpha)
    return (255, 255, 255, 0) if kind in ALPHA_FORMATS else (255, 255, 255, 255)


def pad(image: Image.Image, layout: Plan, options: RenderOptions, kind: str) -> Image.Image:
    if layout.canvas == image.size and layout.offset == (0, 0):
        return image
    colour = background_colour(options, kind)
    mode = "RGBA" if colour[3] < 255 or image.mode in ("RGBA", "LA") else "RGB"
    canvas = Image.new(mode, layout.canvas, colour if mode == "RGBA" else colour[:3])
    source = image.convert(mode) if image.mode != mode else image
    if mode == "RGBA":
        canvas.alpha_composite(source, layout.offset)
    else:
        canvas.paste(source, layout.offset)
    return canvas


def flatten(image: Image.Image, options: RenderOptions, kind: str) -> Image.Image:
    """For formats without alpha, composite onto the background (white unless asked)."""
    if kind in ALPHA_FORMATS or image.mode not in ("RGBA", "LA"):
        return image
    colour = background_colour(options, kind)[:3]
    rgba = image.convert("RGBA")
    base = Image.new("RGBA", image.size, (*colour, 255))
    base.alpha_composite(rgba)
    return base.convert("RGB" if image.mode == "RGBA" or colour[0] != colour[1] or colour[1] != colour[2] else "L")
