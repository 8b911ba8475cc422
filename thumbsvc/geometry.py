"""Where the pixels go: pure arithmetic from a source size and options to a plan.

Everything here is in the pixels of the upright image (after EXIF orientation) and
floating point where Pillow's ``resize(box=…)`` takes floats, so the render step can
map the plan onto a draft-reduced image by scaling alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from thumbsvc.options import RenderOptions

if TYPE_CHECKING:
    from PIL import Image

# Pillow's ``resize(reducing_gap=...)``: reduce by an integer factor first while the remaining ratio is
# over this, then resample (the pipeline's resize; the memory estimate counts the reduced copy). 2, as
# libvips leaves: from a shared 3/8 decode it box-reduces the mid sizes (400x300 of 8-24 MP) before
# LANCZOS: 1.3 % less CPU on W1, 2-5 % on gallery pages, for 0.03 dB of luma (docs/decisions.md, "Session 6").
REDUCING_GAP = 2.0

# Named gravities as anchor fractions (x, y) of the free space.
ANCHORS: dict[str, tuple[float, float]] = {
    "center": (0.5, 0.5),
    "smart": (0.5, 0.5),
    "north": (0.5, 0.0),
    "south": (0.5, 1.0),
    "east": (1.0, 0.5),
    "west": (0.0, 0.5),
    "north-east": (1.0, 0.0),
    "north-west": (0.0, 0.0),
    "south-east": (1.0, 1.0),
    "south-west": (0.0, 1.0),
}


class GeometryError(ValueError):
    """The options cannot apply to this source (crop box outside it, output too large)."""


@dataclass(frozen=True, slots=True)
class Plan:
    region: tuple[float, float, float, float]  # (left, top, right, bottom) of the source to use
    size: tuple[int, int]  # what the region is resized to
    canvas: tuple[int, int]  # the output size (differs from size only for pad)
    offset: tuple[int, int]  # where the resized region sits on the canvas

    @property
    def scale(self) -> float:
        """Output pixels per source pixel (the larger of the two axes)."""
        left, top, right, bottom = self.region
        return max(self.size[0] / (right - left), self.size[1] / (bottom - top))


class Planner(Protocol):
    """Another URL grammar's geometry, used by a render in place of ``plan`` (thumbor's:
    ``thumbsvc.thumbor_geometry``). Its plan is in the pixels of the source after EXIF orientation."""

    @property
    def name(self) -> str:
        """Its cache keys and ETags are apart from thumbsvc's own."""

    @property
    def turn(self) -> int:
        """The EXIF orientation (1-8) the result is turned by after resizing and padding (1: none)."""

    @property
    def trim_corner(self) -> tuple[int, int]:
        """The pixel trim compares with: (0, 0) top-left, (1, 1) bottom-right."""

    def fill_colour(self, image: Image.Image) -> str | None:
        """The colour (``rrggbb``) to pad and flatten the resized ``image`` onto, if the planner picks it."""
        ...

    def plan(
        self,
        upright: tuple[int, int],
        *,
        max_output_px: int,
        focus: tuple[float, float] | None = None,
        base: tuple[int, int, int, int] | None = None,
    ) -> Plan:
        """Like ``plan``: ``focus`` is smart crop's point (fractions of ``base``, else of the image)."""
        ...


def plan(
    source_size: tuple[int, int],
    options: RenderOptions,
    *,
    max_output_px: int,
    focus: tuple[float, float] | None = None,
    base: tuple[int, int, int, int] | None = None,
) -> Plan:
    """Given the upright source size and options, return the plan for the output.

    ``focus`` overrides the gravity with a focal point (used for ``smart``). ``base`` is the part
    of the source (left, top, width, height) that stands for the whole image (what ``trim`` keeps):
    the crop box is relative to it. Raise ``GeometryError`` if the crop box leaves the image or the
    output would exceed ``max_output_px`` on a side.
    """
    base_left, base_top, base_w, base_h = base or (0, 0, *source_size)
    left, top, reg_w, reg_h = _crop_region((base_w, base_h), options)
    left, top = left + base_left, top + base_top
    box_w, box_h = options.box
    fit = options.fit
    size: tuple[int, int] | None = None

    if box_w is None or box_h is None:
        # One side given (or none): the other follows the aspect ratio, so every fit is contain.
        size = _fit_inside((reg_w, reg_h), (box_w, box_h), upscale=options.upscale or (box_w is None and box_h is None))
        box_w, box_h, fit = size[0], size[1], "contain"

    if fit in ("contain", "pad"):
        size = size or _fit_inside((reg_w, reg_h), (box_w, box_h), upscale=options.upscale)
        region = (float(left), float(top), float(left + reg_w), float(top + reg_h))
        if fit == "contain":
            result = Plan(region, size, size, (0, 0))
        else:
            ax, ay = _anchor(options, focus)
            offset = (round((box_w - size[0]) * ax), round((box_h - size[1]) * ay))
            result = Plan(region, size, (box_w, box_h), offset)
    else:
        if not options.upscale:
            # The largest output of exactly the requested aspect ratio that the source allows.
            shrink = min(1.0, reg_w / box_w, reg_h / box_h)
            if shrink < 1.0:
                box_w, box_h = max(1, round(box_w * shrink)), max(1, round(box_h * shrink))
        size = (box_w, box_h)
        if fit == "fill":
            region = (float(left), float(top), float(left + reg_w), float(top + reg_h))
        else:
            region = _cover_region((left, top, reg_w, reg_h), box_w / box_h, options, focus)
        result = Plan(region, size, size, (0, 0))

    if max(result.canvas) > max_output_px:
        raise GeometryError(f"output {result.canvas} exceeds {max_output_px} px on a side")
    return result


Matrix = tuple[int, int, int, int]  # (a, b, c, d): x' = a x + b y, y' = c x + d y (y down, about the centre)

IDENTITY: Matrix = (1, 0, 0, 1)
# Each EXIF orientation as the transform that turns the stored image upright.
ORIENTATIONS: dict[int, Matrix] = {
    1: IDENTITY,
    2: (-1, 0, 0, 1),  # mirror left-right
    3: (-1, 0, 0, -1),  # rotate 180
    4: (1, 0, 0, -1),  # mirror top-bottom
    5: (0, 1, 1, 0),  # transpose
    6: (0, -1, 1, 0),  # rotate 90 clockwise
    7: (0, -1, -1, 0),  # transverse
    8: (0, 1, -1, 0),  # rotate 90 counter-clockwise
}
ROTATIONS: dict[int, Matrix] = {0: IDENTITY, 90: ORIENTATIONS[6], 180: ORIENTATIONS[3], 270: ORIENTATIONS[8]}
FLIPS: dict[str | None, Matrix] = {None: IDENTITY, "h": ORIENTATIONS[2], "v": ORIENTATIONS[4], "hv": ORIENTATIONS[3]}


def compose(first: Matrix, then: Matrix) -> Matrix:
    """The transform that applies ``first``, then ``then``."""
    a, b, c, d = then
    e, f, g, h = first
    return (a * e + b * g, a * f + b * h, c * e + d * g, c * f + d * h)


def orientation_of(matrix: Matrix) -> int:
    """The EXIF orientation (1-8) whose transform is ``matrix``."""
    return next(number for number, known in ORIENTATIONS.items() if known == matrix)


def with_rotation(orientation: int, rotate: int, flip: str | None) -> int:
    """Given an EXIF orientation, a clockwise rotation and a flip applied after it, return the one
    orientation that does all three (so the render still turns only its small result)."""
    return orientation_of(compose(compose(ORIENTATIONS[orientation], ROTATIONS[rotate]), FLIPS[flip]))


def transform_box(
    box: tuple[float, float, float, float], size: tuple[float, float], matrix: Matrix
) -> tuple[float, float, float, float]:
    """Given a box (left, top, right, bottom) in an image of ``size`` and a transform of that image,
    return the box in the transformed image."""
    width, height = size
    a, b, c, d = matrix
    out_w, out_h = (height, width) if a == 0 else (width, height)
    left, top, right, bottom = box
    xs, ys = [], []
    for x, y in ((left, top), (right, bottom)):
        cx, cy = x - width / 2, y - height / 2
        xs.append(a * cx + b * cy + out_w / 2)
        ys.append(c * cx + d * cy + out_h / 2)
    return (min(xs), min(ys), max(xs), max(ys))


def stored_box(
    box: tuple[float, float, float, float], upright: tuple[float, float], orientation: int
) -> tuple[float, float, float, float]:
    """Given a box in the pixels of an upright image of size ``upright`` and the EXIF orientation,
    return the same box in the pixels of the image as stored (before the orientation is applied).

    Resampling the stored image over this box and then applying the orientation to the small
    result gives the pixels of resampling the upright image over ``box``.
    """
    left, top, right, bottom = box
    width, height = upright
    return {
        1: (left, top, right, bottom),
        2: (width - right, top, width - left, bottom),
        3: (width - right, height - bottom, width - left, height - top),
        4: (left, height - bottom, right, height - top),
        5: (top, left, bottom, right),
        6: (top, width - right, bottom, width - left),
        7: (height - bottom, width - right, height - top, width - left),
        8: (height - bottom, left, height - top, right),
    }[orientation]


def _fit_inside(region: tuple[int, int], box: tuple[int | None, int | None], *, upscale: bool) -> tuple[int, int]:
    """The largest size of the region's aspect ratio inside the box (a missing side is unbounded).

    The limiting side gets exactly the box's length, so rounding never loses a pixel there.
    """
    reg_w, reg_h = region
    box_w, box_h = box
    if box_w is None and box_h is None:
        return region
    if box_h is None or (box_w is not None and box_w * reg_h <= box_h * reg_w):
        assert box_w is not None
        width, height = float(box_w), reg_h * box_w / reg_w
    else:
        width, height = reg_w * box_h / reg_h, float(box_h)
    if not upscale and width > reg_w:
        return region
    return max(1, round(width)), max(1, round(height))


def _crop_region(source_size: tuple[int, int], options: RenderOptions) -> tuple[int, int, int, int]:
    src_w, src_h = source_size
    if options.crop is None:
        return 0, 0, src_w, src_h
    left, top, width, height = options.crop
    if left + width > src_w or top + height > src_h:
        raise GeometryError(f"crop box {options.crop} leaves the {src_w}x{src_h} image")
    return left, top, width, height


def _anchor(options: RenderOptions, focus: tuple[float, float] | None) -> tuple[float, float]:
    if focus is not None:
        return focus
    if isinstance(options.gravity, tuple):
        return options.gravity
    return ANCHORS[options.gravity]


def _cover_region(
    region: tuple[int, int, int, int],
    aspect: float,
    options: RenderOptions,
    focus: tuple[float, float] | None,
) -> tuple[float, float, float, float]:
    left, top, reg_w, reg_h = region
    if reg_w / reg_h > aspect:
        crop_w, crop_h = reg_h * aspect, float(reg_h)
    else:
        crop_w, crop_h = float(reg_w), reg_w / aspect
    free_w, free_h = reg_w - crop_w, reg_h - crop_h
    point = focus if focus is not None else (options.gravity if isinstance(options.gravity, tuple) else None)
    if point is not None:
        # A focal point is centred as far as the image allows.
        x = _clamp_f(point[0] * reg_w - crop_w / 2, 0.0, free_w)
        y = _clamp_f(point[1] * reg_h - crop_h / 2, 0.0, free_h)
    else:
        ax, ay = ANCHORS[str(options.gravity)]
        x, y = free_w * ax, free_h * ay
    return (left + x, top + y, left + x + crop_w, top + y + crop_h)


def _clamp_f(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))
