"""The adjustments a URL may ask for: trim, grayscale, blur, sharpen, and the operator's named watermarks.

Plain functions over Pillow images; the pipeline decides where each runs (docs/rendering.md,
"Order of operations"). Rotation and flip are not here: they are folded into the EXIF orientation
(``geometry.with_rotation``), so only the small result is ever turned.

``trim_box`` never scans every pixel of a large image: it finds the box on a reduced preview
(``TRIM_PREVIEW_PX`` on the long side) and then reads strips of the image it is given around each
edge, so the box is the one a full scan of that image gives wherever the content is at least one
preview pixel wide. The pipeline gives it the decode the render works from: the source's own pixels,
or for a JPEG large enough to be decoded at a DCT scale, at least 1600 px on its long side.
"""

from __future__ import annotations

import functools
import io
import math
from collections.abc import Mapping
from dataclasses import dataclass

from PIL import Image, ImageChops, ImageFilter

# The trim preview's long side, and how many preview pixels beyond a coarse edge are read again at full size.
TRIM_PREVIEW_PX = 512
TRIM_STRIP_MARGIN = 1
# Unsharp mask: how strong and from which difference it acts (sigma comes from the URL).
SHARPEN_PERCENT = 80
SHARPEN_THRESHOLD = 2
# Named gravities of a watermark: anchor fractions (x, y) of the free space.
WATERMARK_GRAVITIES: Mapping[str, tuple[float, float]] = {
    "center": (0.5, 0.5),
    "north": (0.5, 0.0),
    "south": (0.5, 1.0),
    "east": (1.0, 0.5),
    "west": (0.0, 0.5),
    "north-east": (1.0, 0.0),
    "north-west": (0.0, 0.0),
    "south-east": (1.0, 1.0),
    "south-west": (0.0, 1.0),
}
MAX_WATERMARK_PX = 4096
MAX_WATERMARK_BYTES = 10_000_000


# ---- trim ----


def analysis_mode(image: Image.Image) -> Image.Image:
    """The image in a mode whose bands can be compared with a colour: L, LA, RGB or RGBA."""
    if image.mode in ("L", "LA", "RGB", "RGBA"):
        return image
    return image.convert("RGBA" if "A" in image.getbands() else "RGB")


def colour_of(image: Image.Image, hex_: str | None, point: tuple[int, int]) -> tuple[int, ...]:
    """The border colour, in the bands of ``image``: ``hex_`` (rrggbb) if given, else the pixel at ``point``."""
    if hex_ is None:
        pixel = image.getpixel(point)
        return tuple(pixel) if isinstance(pixel, tuple) else (int(pixel),)  # type: ignore[arg-type]
    rgb = (int(hex_[0:2], 16), int(hex_[2:4], 16), int(hex_[4:6], 16))
    solid = Image.new("RGB", (1, 1), rgb).convert(image.mode)
    value = solid.getpixel((0, 0))
    colour = tuple(value) if isinstance(value, tuple) else (int(value),)  # type: ignore[arg-type]
    return (*colour[:-1], 255) if "A" in image.getbands() else colour


def content_mask(image: Image.Image, colour: tuple[int, ...], threshold: int) -> Image.Image:
    """An L mask: 255 where a pixel differs from ``colour`` by more than ``threshold`` in some band."""
    difference = ImageChops.difference(image, Image.new(image.mode, image.size, colour))
    bands = difference.split()
    strongest = bands[0]
    for band in bands[1:]:
        strongest = ImageChops.lighter(strongest, band)
    return strongest.point(lambda value: 255 if value > threshold else 0)


def trim_box(image: Image.Image, threshold: int, colour: tuple[int, ...]) -> tuple[int, int, int, int] | None:
    """Given an image in an ``analysis_mode``, return the box (left, top, right, bottom) of what differs
    from ``colour`` by more than ``threshold``, or None when nothing does (a uniform image is kept whole).

    The box is found on a reduced preview, with a threshold lowered for the averaging, then each edge
    is read again at full resolution in a strip around it.
    """
    width, height = image.size
    factor = max(1, math.ceil(max(width, height) / TRIM_PREVIEW_PX))
    if factor == 1:
        return content_mask(image, colour, threshold).getbbox()
    preview = image.reduce(factor)
    # A pixel that differs by d moves its preview pixel's mean by at least d / factor² (one pixel of the block).
    coarse = content_mask(preview, colour, max(0, threshold // (factor * factor) - 1)).getbbox()
    if coarse is None:
        return None
    margin = (TRIM_STRIP_MARGIN + 1) * factor
    left, top, right, bottom = (edge * factor for edge in coarse)
    left, top = max(0, left - margin), max(0, top - margin)
    right, bottom = min(width, right + margin), min(height, bottom + margin)
    return _refine(image, colour, threshold, (left, top, right, bottom), margin)


def _refine(
    image: Image.Image, colour: tuple[int, ...], threshold: int, box: tuple[int, int, int, int], step: int
) -> tuple[int, int, int, int] | None:
    """Tighten each side of ``box`` (which holds all the content) by reading full-resolution strips."""
    left, top, right, bottom = box

    def found(region: tuple[int, int, int, int]) -> tuple[int, int, int, int] | None:
        inner = content_mask(image.crop(region), colour, threshold).getbbox()
        if inner is None:
            return None
        return (inner[0] + region[0], inner[1] + region[1], inner[2] + region[0], inner[3] + region[1])

    # Walk inwards strip by strip: the preview may have seen content a full-size scan would not.
    new_left = None
    for start in range(left, right, step):
        hit = found((start, top, min(right, start + step), bottom))
        if hit is not None:
            new_left = hit[0]
            break
    if new_left is None:
        return None
    new_right = next(
        hit[2]
        for end in range(right, new_left, -step)
        if (hit := found((max(new_left, end - step), top, end, bottom))) is not None
    )
    new_top = next(
        hit[1]
        for start in range(top, bottom, step)
        if (hit := found((new_left, start, new_right, min(bottom, start + step)))) is not None
    )
    new_bottom = next(
        hit[3]
        for end in range(bottom, new_top, -step)
        if (hit := found((new_left, max(new_top, end - step), new_right, end))) is not None
    )
    return (new_left, new_top, new_right, new_bottom)


# ---- pixels of the output ----


def grayscale(image: Image.Image) -> Image.Image:
    """Luminance in the output's colour space (ITU-R 601 luma of the sRGB values), alpha kept."""
    if image.mode in ("L", "LA"):
        return image
    if image.mode == "YCbCr":
        return image.getchannel(0)  # the luma plane is the luminance already
    if image.mode in ("RGBA", "RGBa"):
        grey = image.convert("L")
        grey.putalpha(image.getchannel("A"))
        return grey
    return image.convert("L")


def blur(image: Image.Image, sigma: float) -> Image.Image:
    """A Gaussian blur of standard deviation ``sigma`` pixels, in premultiplied alpha (no dark halos).

    A YCbCr image (a JPEG photo on its way to JPEG, WebP or AVIF) is blurred plane by plane: Pillow's
    blur refuses the mode, and YCbCr is an affine map of RGB, so blurring its planes is blurring RGB.
    """
    kernel = ImageFilter.GaussianBlur(radius=sigma)
    if image.mode == "YCbCr":
        return Image.merge("YCbCr", [plane.filter(kernel) for plane in image.split()])
    return _premultiplied(image, kernel)


def sharpen(image: Image.Image, sigma: float) -> Image.Image:
    """An unsharp mask of ``sigma`` pixels; a YCbCr image is sharpened on its luma plane only."""
    mask = ImageFilter.UnsharpMask(radius=sigma, percent=SHARPEN_PERCENT, threshold=SHARPEN_THRESHOLD)
    if image.mode == "YCbCr":
        luma, cb, cr = image.split()
        return Image.merge("YCbCr", (luma.filter(mask), cb, cr))
    return _premultiplied(image, mask)


def _premultiplied(image: Image.Image, kernel: ImageFilter.Filter) -> Image.Image:
    premultiplied = {"RGBA": "RGBa", "LA": "La"}.get(image.mode)
    if premultiplied is None:
        return image.filter(kernel)
    return image.convert(premultiplied).filter(kernel).convert(image.mode)


# ---- watermarks ----


@dataclass(frozen=True, slots=True)
class WatermarkSpec:
    """One entry of ``THUMBSVC_WATERMARKS``: ``name=path;gravity=…;margin=…;opacity=…;scale=…``."""

    name: str
    path: str  # under the media root
    gravity: str = "south-east"
    margin: float = 0.02  # of the output's shorter side
    opacity: float = 0.5
    scale: float = 0.2  # the watermark's longer side, as a share of the output's shorter side


def parse_watermarks(text: str) -> dict[str, WatermarkSpec]:
    """Given the text of ``THUMBSVC_WATERMARKS``, return the definitions by name.

    Raise ``ValueError`` saying what is wrong with which entry.
    """
    specs: dict[str, WatermarkSpec] = {}
    for entry in filter(None, (part.strip() for part in text.split(","))):
        head, *fields = (field.strip() for field in entry.split(";"))
        name, sep, path = head.partition("=")
        name, path = name.strip(), path.strip()
        if not sep or not name or not path:
            raise ValueError(f"entry {entry!r} must start with name=path/under/the/media/root.png")
        values: dict[str, str] = {}
        for field in fields:
            key, sep, value = field.partition("=")
            if not sep or key.strip() not in ("gravity", "margin", "opacity", "scale"):
                raise ValueError(f"entry {name!r}: {field!r} is not gravity=, margin=, opacity= or scale=")
            values[key.strip()] = value.strip()
        spec = WatermarkSpec(name, path)
        try:
            spec = WatermarkSpec(
                name,
                path,
                gravity=values.get("gravity", spec.gravity),
                margin=float(values.get("margin", spec.margin)),
                opacity=float(values.get("opacity", spec.opacity)),
                scale=float(values.get("scale", spec.scale)),
            )
        except ValueError as exc:
            raise ValueError(f"entry {name!r}: margin, opacity and scale are numbers ({exc})") from None
        _check_watermark(spec)
        if name in specs:
            raise ValueError(f"watermark {name!r} is defined twice")
        specs[name] = spec
    return specs


def _check_watermark(spec: WatermarkSpec) -> None:
    from thumbsvc.options import RenderOptions

    RenderOptions(watermark=spec.name)  # the name must be one a URL can carry
    if spec.gravity not in WATERMARK_GRAVITIES:
        raise ValueError(f"entry {spec.name!r}: gravity must be one of {', '.join(WATERMARK_GRAVITIES)}")
    for field, low, high in (("margin", 0.0, 0.5), ("opacity", 0.0, 1.0), ("scale", 0.01, 1.0)):
        value = getattr(spec, field)
        if not (math.isfinite(value) and low <= value <= high):
            raise ValueError(f"entry {spec.name!r}: {field} must be from {low:g} to {high:g}, not {value!r}")


@dataclass(frozen=True, slots=True, eq=False)
class Watermark:
    """A loaded watermark: its definition and its pixels (RGBA, alpha already scaled by the opacity)."""

    spec: WatermarkSpec
    image: Image.Image

    @classmethod
    def load(cls, spec: WatermarkSpec, data: bytes) -> Watermark:
        """Given a definition and the file's bytes, return the watermark; raise ``ValueError`` if unusable."""
        if len(data) > MAX_WATERMARK_BYTES:
            raise ValueError(f"watermark {spec.name!r}: {spec.path} is over {MAX_WATERMARK_BYTES} bytes")
        try:
            with Image.open(io.BytesIO(data), formats=("PNG", "WEBP", "JPEG", "GIF")) as opened:
                if max(opened.size) > MAX_WATERMARK_PX:
                    raise ValueError(f"is larger than {MAX_WATERMARK_PX} px")
                image = opened.convert("RGBA")
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            raise ValueError(f"watermark {spec.name!r}: {spec.path} is not a usable image ({exc})") from None
        if spec.opacity < 1:
            alpha = image.getchannel("A").point(lambda value: round(value * spec.opacity))
            image.putalpha(alpha)
        return cls(spec, image)


def apply_watermark(image: Image.Image, watermark: Watermark) -> Image.Image:
    """Composite ``watermark`` onto ``image`` at its gravity and margin, scaled to the output."""
    spec = watermark.spec
    short = min(image.size)
    mark = _scaled(watermark, max(1, round(short * spec.scale)))
    margin = round(short * spec.margin)
    ax, ay = WATERMARK_GRAVITIES[spec.gravity]
    free_w = image.width - mark.width - 2 * margin
    free_h = image.height - mark.height - 2 * margin
    offset = (margin + round(max(0, free_w) * ax), margin + round(max(0, free_h) * ay))
    mode = image.mode
    base = image.convert("RGBA") if mode != "RGBA" else image.copy()
    base.alpha_composite(mark, offset)
    if mode == "RGBA":
        return base
    return base.convert("RGB" if mode in ("RGB", "YCbCr", "CMYK", "L") else "RGBA" if mode == "LA" else mode)


@functools.lru_cache(maxsize=64)
def _scaled(watermark: Watermark, long_side: int) -> Image.Image:
    # A pure, bounded memo: the same watermark at the same output size is scaled once.
    image = watermark.image
    scale = long_side / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    if size == image.size:
        return image
    return image.convert("RGBa").resize(size, Image.Resampling.LANCZOS).convert("RGBA")
