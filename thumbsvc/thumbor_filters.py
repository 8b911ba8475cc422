"""thumbor's filters, one small handler each: the arguments checked against their bounds, then
written into what the request asks of the pipeline (``Mapped``). ``thumbor_options`` runs them."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from PIL import ImageColor

from thumbsvc.options import MAX_BLUR, MAX_DIMENSION, MAX_SHARPEN, MIN_BLUR, MIN_SHARPEN
from thumbsvc.thumbor import Filter, ThumborPathError, number

# thumbor's built-in filters thumbsvc does not reproduce: refused by name rather than ignored.
UNSUPPORTED = frozenset(
    {
        *("brightness", "contrast", "rgb", "round_corner", "noise", "saturation", "equalize", "convolution"),
        *("curve", "max_bytes", "proportion", "red_eye", "frame", "extract_focal", "cover", "autojpg", "colorize"),
    }
)
FORMATS = {"jpeg": "jpeg", "jpg": "jpeg", "png": "png", "gif": "gif", "webp": "webp", "avif": "avif"}
MAX_BLUR_RADIUS = 150  # thumbor's own kernel limit
MAX_COORDINATE = 10 * MAX_DIMENSION  # crop and focal boxes, as options.py bounds a crop
_DECIMAL = re.compile(r"-?(?:\d{1,6}(?:\.\d{0,6})?|\.\d{1,6})")
_BOOLEAN = {"true": True, "True": True, "1": True, "false": False, "False": False, "0": False}
_FOCAL = re.compile(r"(\d+)x(\d+):(\d+)x(\d+)")
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")


@dataclass(slots=True)
class Mapped:
    """What the filters ask for, filled one filter at a time."""

    options: dict[str, Any] = field(default_factory=dict)
    geometry: dict[str, Any] = field(default_factory=dict)
    focal: list[tuple[int, int, int, int]] = field(default_factory=list)
    rotate: int = 0  # counter-clockwise, after everything else


def bounded(value: int, low: int, high: int, what: str) -> int:
    if not low <= value <= high:
        raise ThumborPathError(f"{what} must be from {low} to {high}")
    return value


def _args(item: Filter, low: int, high: int) -> tuple[str, ...]:
    if not low <= len(item.args) <= high:
        count = str(low) if low == high else f"{low} to {high}"
        raise ThumborPathError(f"{item.name}() takes {count} arguments")
    return item.args


def _integer(item: Filter, text: str, low: int, high: int) -> int:
    if not re.fullmatch(r"-?\d+", text):
        raise ThumborPathError(f"{item.name}() takes whole numbers, not {text[:16]!r}")
    sign = -1 if text.startswith("-") else 1
    return bounded(sign * number(text.lstrip("-")), low, high, f"{item.name}()'s value")


def _decimal(item: Filter, text: str) -> float:
    if not _DECIMAL.fullmatch(text):
        raise ThumborPathError(f"{item.name}() takes numbers, not {text[:16]!r}")
    return float(text)


def _colour(item: Filter, text: str) -> str | None:
    """A thumbor colour (a CSS name or hex digits without '#') as ``rrggbb``/``rrggbbaa``; None: transparent."""
    if text == "transparent":
        return None
    if not re.fullmatch(r"\w{1,32}", text):
        raise ThumborPathError(f"{item.name}() takes a colour name or hex digits")
    for spelling in (text, f"#{text}"):
        try:
            rgb = ImageColor.getrgb(spelling)
        except ValueError:
            continue
        channels = rgb if len(rgb) == 4 and rgb[3] < 255 else rgb[:3]
        return "".join(f"{channel:02x}" for channel in channels)
    raise ThumborPathError(f"{item.name}() does not know the colour {text!r}")


def _no_args(flag: str, *, geometry: bool = True) -> Callable[[Filter, Mapped], None]:
    def apply(item: Filter, mapped: Mapped) -> None:
        _args(item, 0, 0)
        (mapped.geometry if geometry else mapped.options)[flag] = True

    return apply


def _quality(item: Filter, mapped: Mapped) -> None:
    mapped.options["quality"] = _integer(item, _args(item, 1, 1)[0], 1, 100)


def _format(item: Filter, mapped: Mapped) -> None:
    name = _args(item, 1, 1)[0].lower()
    if name not in FORMATS:
        raise ThumborPathError(f"format() takes jpeg, png, gif, webp or avif, not {name[:16]!r}")
    mapped.options["format"] = FORMATS[name]


def _fill(item: Filter, mapped: Mapped) -> None:
    args = _args(item, 1, 2)
    if len(args) == 2 and args[1] not in _BOOLEAN:
        raise ThumborPathError("fill()'s second argument is true or false")
    mapped.geometry["fill"] = True
    if args[0] == "blur":
        raise ThumborPathError("fill(blur) is not supported")
    mapped.geometry["fill_auto"] = args[0] == "auto"
    mapped.options["background"] = None if args[0] == "auto" else _colour(item, args[0])


def _background(item: Filter, mapped: Mapped) -> None:
    mapped.options["background"] = _colour(item, _args(item, 1, 1)[0])


def _focal(item: Filter, mapped: Mapped) -> None:
    box = _FOCAL.fullmatch(_args(item, 1, 1)[0])
    if box is None:
        raise ThumborPathError("focal() takes a box: focal(LEFTxTOP:RIGHTxBOTTOM)")
    left, top, right, bottom = (bounded(number(v), 0, MAX_COORDINATE, "focal()'s box") for v in box.groups())
    if right > left and bottom > top:
        mapped.focal.append((left, top, right, bottom))


def _blur(item: Filter, mapped: Mapped) -> None:
    args = _args(item, 1, 2)
    radius = _integer(item, args[0], 1, MAX_BLUR_RADIUS)
    sigma = _decimal(item, args[1]) if len(args) == 2 else 0.0
    spread = kernel_sigma(radius, sigma or float(radius))
    mapped.options["blur"] = max(MIN_BLUR, round(spread, 1))
    if mapped.options["blur"] > MAX_BLUR:
        raise ThumborPathError(f"blur() is limited to a spread of {MAX_BLUR:g} px")


def kernel_sigma(radius: int, sigma: float) -> float:
    """The standard deviation of thumbor's blur kernel: a Gaussian of ``sigma`` cut at ``radius`` pixels
    (with ``sigma == radius``, about half a Gaussian blur of that sigma)."""
    weights = [math.exp(-(k * k) / (2 * sigma * sigma)) for k in range(-radius, radius + 1)]
    return math.sqrt(sum(w * k * k for w, k in zip(weights, range(-radius, radius + 1), strict=True)) / sum(weights))


def _sharpen(item: Filter, mapped: Mapped) -> None:
    amount, radius, luminance = _args(item, 3, 3)
    if not 0 <= _decimal(item, amount) <= 10 or luminance not in _BOOLEAN:
        raise ThumborPathError("sharpen() takes an amount from 0 to 10, a radius and true or false")
    sigma = round(_decimal(item, radius), 1)
    if not MIN_SHARPEN <= sigma <= MAX_SHARPEN:
        raise ThumborPathError(f"sharpen()'s radius must be from {MIN_SHARPEN:g} to {MAX_SHARPEN:g}")
    mapped.options["sharpen"] = sigma


def _rotate(item: Filter, mapped: Mapped) -> None:
    degrees = _integer(item, _args(item, 1, 1)[0], -3600, 3600)
    if degrees % 90:
        raise ThumborPathError("rotate() takes multiples of 90 degrees")
    mapped.rotate = (mapped.rotate + degrees) % 360


def _watermark(item: Filter, mapped: Mapped) -> None:
    name = _args(item, 1, 6)[0]
    if not _NAME.fullmatch(name):
        raise ThumborPathError("watermark() takes the name of a watermark the service defines, not a URL")
    mapped.options["watermark"] = name


def _max_age(item: Filter, mapped: Mapped) -> None:
    _integer(item, _args(item, 1, 1)[0], 0, 10**9)  # checked, then the service's Cache-Control stands


def _ignored(item: Filter, mapped: Mapped) -> None:
    _args(item, 0, 0)


HANDLERS: dict[str, Callable[[Filter, Mapped], None]] = {
    "quality": _quality,
    "format": _format,
    "fill": _fill,
    "background_color": _background,
    "upscale": _no_args("upscale"),
    "no_upscale": _no_args("no_upscale"),
    "stretch": _no_args("stretch"),
    "focal": _focal,
    "grayscale": _no_args("grayscale", geometry=False),
    "blur": _blur,
    "sharpen": _sharpen,
    "rotate": _rotate,
    "watermark": _watermark,
    "max_age": _max_age,
    # thumbsvc writes neither EXIF nor an ICC profile (colours are converted to sRGB): nothing to strip.
    "strip_icc": _ignored,
    "strip_exif": _ignored,
}
