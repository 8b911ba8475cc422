"""thumbor's geometry as a ``geometry.Planner``: where the pixels go for a thumbor URL.

The arithmetic follows thumbor 7.8's ``Transformer`` step for step, roundings included (Python's
``round`` halves to even, as thumbor's does), because a site moving its URLs over expects the
same picture at the same size:

    no_upscale()   the requested sides are clamped to the source's (upright, before any crop)
    trim           the part kept (``base``); a manual crop box is moved by what trim cut
    manual crop    ``AxB:CxD``, clamped into the image; an empty box is no crop
    target         ``W``/``H``; ``0`` follows the other side's ratio, ``orig`` is the source's side
    crop mode      centre of mass of the focal points (``focal()``, smart crop, else halign/valign),
                   crop to the target's ratio around it unless ``stretch()``, then resize to the target:
                   a source smaller than the target is enlarged
    fit-in         fit inside (never enlarging), ``full-`` fits the other side (enlarging),
                   ``adaptive-`` swaps the box when its orientation is not the source's
    upscale()      a fit-in result smaller than the box is enlarged to fit it
    fill()         the result centred on the box

Flips (negative sizes) and ``rotate()`` come after all of it: they are ``turn``, an orientation
the pipeline applies to the finished result.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from PIL import Image, ImageStat

from thumbsvc.geometry import GeometryError, Plan
from thumbsvc.thumbor import ORIG

Box = tuple[int, int, int, int]  # left, top, width, height


@dataclass(frozen=True, slots=True)
class ThumborGeometry:
    """One thumbor URL's geometry: the elements of its path and its geometric filters."""

    width: int = 0  # 0: from the other side's ratio; ORIG: the source's
    height: int = 0
    crop: tuple[int, int, int, int] | None = None  # left, top, right, bottom
    fit_in: bool = False
    full: bool = False
    adaptive: bool = False
    halign: float = 0.5
    valign: float = 0.5
    focal: tuple[tuple[int, int, int, int], ...] = ()  # focal() boxes: left, top, right, bottom
    smart: bool = False
    stretch: bool = False
    upscale: bool = False
    no_upscale: bool = False
    fill: bool = False
    fill_auto: bool = False
    turn: int = 1
    trim_corner: tuple[int, int] = (0, 0)
    name: str = "thumbor"

    def plan(
        self,
        upright: tuple[int, int],
        *,
        max_output_px: int,
        focus: tuple[float, float] | None = None,
        base: tuple[int, int, int, int] | None = None,
    ) -> Plan:
        """Given the upright source size, return thumbor's plan for it (``geometry.Planner``).

        Raise ``GeometryError`` when the output or its canvas would exceed ``max_output_px`` a side.
        """
        base_left, base_top, base_w, base_h = base or (0, 0, *upright)
        want_w, want_h = self.width, self.height
        if self.no_upscale:
            want_w = min(want_w, upright[0]) if want_w != ORIG else want_w
            want_h = min(want_h, upright[1]) if want_h != ORIG else want_h
        left, top, src_w, src_h = self._manual_crop(base_left, base_top, (base_w, base_h))
        target = _target(want_w, want_h, src_w, src_h)
        if self.fit_in:
            box = (0, 0, src_w, src_h)
            size, canvas = self._fit_in((src_w, src_h), target, want_w, want_h)
        else:
            box = (0, 0, src_w, src_h)
            if not self.stretch:
                centre = self._centre(left, top, src_w, src_h, focus, (base_w, base_h))
                box = _auto_crop((src_w, src_h), target, centre)
            size = (max(1, int(target[0])), max(1, int(target[1])))
            canvas = size
        if max(*size, *canvas) > max_output_px:
            raise GeometryError(f"output {max(size, canvas)} exceeds {max_output_px} px on a side")
        x, y = base_left + left + box[0], base_top + top + box[1]
        region = (float(x), float(y), float(x + box[2]), float(y + box[3]))
        offset = (max(0, (canvas[0] - size[0]) // 2), max(0, (canvas[1] - size[1]) // 2))
        return Plan(region, size, canvas, offset)

    def fill_colour(self, image: Image.Image) -> str | None:
        """``fill(auto)``: the mean colour of the resized image (of every pixel, transparent ones too)."""
        if not self.fill_auto:
            return None
        stat = ImageStat.Stat(image.convert("RGB"))
        count = image.width * image.height
        return "".join(f"{int(total) // count:02x}" for total in stat.sum)

    def _manual_crop(self, base_left: int, base_top: int, size: tuple[int, int]) -> Box:
        """The crop box inside what trim kept: moved by what trim cut, clamped; an empty box is no crop."""
        width, height = size
        if self.crop is None:
            return 0, 0, width, height
        left, top, right, bottom = self.crop
        left, right = (min(max(v - base_left, 0), width) for v in (left, right))
        top, bottom = (min(max(v - base_top, 0), height) for v in (top, bottom))
        if left >= right or top >= bottom:
            return 0, 0, width, height
        return left, top, right - left, bottom - top

    def _centre(
        self,
        left: int,
        top: int,
        width: int,
        height: int,
        focus: tuple[float, float] | None,
        whole: tuple[int, int],
    ) -> tuple[float, float]:
        """The centre of mass of the focal points in the cropped image, as thumbor weighs them."""
        points: list[tuple[int, int, int]] = []
        for f_left, f_top, f_right, f_bottom in self.focal:
            f_w, f_h = f_right - f_left, f_bottom - f_top
            x, y = f_left + f_w // 2, f_top + f_h // 2
            if self.crop is not None:
                # Points outside the crop box are dropped; the rest move with it.
                if not (left <= x <= left + width and top <= y <= top + height):
                    continue
                x, y = x - left, y - top
            points.append((x, y, f_w * f_h))
        if not points and focus is not None:
            points.append((int(focus[0] * whole[0]) - left, int(focus[1] * whole[1]) - top, 1))
        if not points:
            points.append((int(width * self.halign), int(height * self.valign), 1))
        weight = sum(p[2] for p in points)
        return (sum(p[0] * p[2] for p in points) // weight, sum(p[1] * p[2] for p in points) // weight)

    def _fit_in(
        self, source: tuple[int, int], target: tuple[float, float], want_w: int, want_h: int
    ) -> tuple[tuple[int, int], tuple[int, int]]:
        """``fit-in``, ``full-fit-in``, ``adaptive-``, then upscale() and fill(): (size, canvas)."""
        src_w, src_h = source
        target_w, target_h = target
        box_w = src_w if want_w == ORIG else want_w
        box_h = src_h if want_h == ORIG else want_h
        if self.adaptive and ((src_w < src_h and target_w > target_h) or (src_w > src_h and target_w < target_h)):
            target_w, target_h, box_w, box_h = target_h, target_w, box_h, box_w
        sign = -1 if self.full else 1
        if sign == 1 and target_w >= src_w and target_h >= src_h:
            size = source
        else:
            target_w, target_h = max(target_w, 1.0), max(target_h, 1.0)
            # thumbor adds 1e-5 so that halves round up, as they did in Python 2.
            if src_w / target_w * sign >= src_h / target_h * sign:
                size = (int(target_w), round(src_h * target_w / src_w + 1e-5))
            else:
                size = (round(src_w * target_h / src_h + 1e-5), int(target_h))
            size = (max(1, size[0]), max(1, size[1]))
            box_w, box_h = max(box_w, size[0]), max(box_h, size[1])
        if self.upscale and box_w > 0 and box_h > 0 and size[0] < box_w and size[1] < box_h:
            if size[0] / box_w >= size[1] / box_h:
                size = (box_w, max(1, int(size[1] * box_w / size[0])))
            else:
                size = (max(1, int(size[0] * box_h / size[1])), box_h)
        canvas = (box_w or size[0], box_h or size[1]) if self.fill else size
        return size, (max(canvas[0], size[0]), max(canvas[1], size[1]))


def _target(want_w: int, want_h: int, src_w: int, src_h: int) -> tuple[float, float]:
    """thumbor's target size: both sides, a missing one from the other's ratio (halves to even)."""
    if not want_w and not want_h:
        return float(src_w), float(src_h)
    side_w = src_w if want_w == ORIG else want_w
    side_h = src_h if want_h == ORIG else want_h
    width = float(side_w) if want_w else float(round(side_h * src_w / src_h))
    height = float(side_h) if want_h else float(round(side_w * src_h / src_w))
    return width, height


def _auto_crop(source: tuple[int, int], target: tuple[float, float], centre: tuple[float, float]) -> Box:
    """The box of the target's ratio around ``centre``, as thumbor cuts it (ratios compared to two decimals)."""
    src_w, src_h = source
    target_w, target_h = target
    if round(src_w / src_h, 2) == round((target_w or 1) / (target_h or 1), 2):
        return 0, 0, src_w, src_h
    if target_w / src_w > target_h / src_h:
        crop_w, crop_h = src_w, round(src_w * target_h / (target_w or 1))
    else:
        crop_w, crop_h = round(math.ceil(target_w * src_h / (target_h or 1))), src_h
    crop_w, crop_h = max(1, crop_w), max(1, crop_h)
    left = round(min(max(centre[0] - crop_w / 2, 0.0), src_w - crop_w))
    top = round(min(max(centre[1] - crop_h / 2, 0.0), src_h - crop_h))
    return left, top, min(left + crop_w, src_w) - left, min(top + crop_h, src_h) - top
