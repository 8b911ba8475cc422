"""A thumbor URL mapped onto thumbsvc's one pipeline: its filters as ``RenderOptions`` and its
geometry as a ``ThumborGeometry`` planner, after the signature and every bound are checked.

Filters thumbsvc serves (docs/migrating.md has the table): ``quality``, ``format``, ``fill``,
``background_color``, ``upscale``, ``no_upscale``, ``stretch``, ``focal``, ``strip_icc``,
``strip_exif``, ``grayscale``, ``blur``, ``sharpen``, ``rotate``, ``watermark`` (a name from
``THUMBSVC_WATERMARKS`` only) and ``max_age`` (accepted; the service's Cache-Control stands).
thumbor's other built-in filters answer 400 naming the filter; names thumbor does not know are
ignored, as thumbor ignores them. A served filter with arguments out of its bounds is a 400, where
thumbor would skip it silently.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from PIL import ImageColor

from thumbsvc.errors import BadRequest, Forbidden
from thumbsvc.geometry import FLIPS, ROTATIONS, compose, orientation_of
from thumbsvc.options import MAX_BLUR, MAX_DIMENSION, MAX_SHARPEN, MIN_BLUR, MIN_SHARPEN, RenderOptions
from thumbsvc.thumbor import (
    HALIGNS,
    UNSAFE,
    VALIGNS,
    Filter,
    ThumborPath,
    ThumborPathError,
    ThumborSigner,
    number,
    parse_path,
    reencoded_variant,
    split_signature,
)
from thumbsvc.thumbor_geometry import ThumborGeometry
from thumbsvc.urls import ThumbPath

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
class _Mapped:
    """What the filters ask for, filled one filter at a time."""

    options: dict[str, Any] = field(default_factory=dict)
    geometry: dict[str, Any] = field(default_factory=dict)
    focal: list[tuple[int, int, int, int]] = field(default_factory=list)
    rotate: int = 0  # counter-clockwise, after everything else


class ThumborURLs:
    """Recognise, verify and map thumbor paths for one service (``THUMBSVC_THUMBOR_*``)."""

    def __init__(
        self,
        keys: Collection[str],
        *,
        allow_unsafe: bool,
        sources: str,
        max_output_px: int,
    ) -> None:
        self.signer = ThumborSigner(list(keys))
        self.allow_unsafe = allow_unsafe
        self.sources = sources
        self.max_output_px = max_output_px

    def recognises(self, raw_path: str) -> bool:
        """True when the path's first segment is a thumbor signature (28 characters) or ``unsafe``."""
        return split_signature(raw_path) is not None

    def parse(self, raw_path: str) -> tuple[ThumbPath, ThumborGeometry]:
        """Given a raw thumbor path, return the request as thumbsvc's path (its payload the verified
        thumbor path, one per thumbnail) and thumbor's geometry.

        Raise ``Forbidden`` for a bad signature or a refused ``unsafe``, ``BadRequest`` for the rest.
        """
        parts = split_signature(raw_path)
        if parts is None:
            raise BadRequest("not a thumbor path", public_message="Malformed thumbor URL")
        signature, rest = parts
        variant = reencoded_variant(rest)
        if signature == UNSAFE:
            if not self.allow_unsafe:
                raise Forbidden("unsafe thumbor URL", public_message="Unsafe URLs are not allowed")
        elif not (self.signer.verify(rest, signature) | self.signer.verify(variant, signature)):
            raise Forbidden("bad thumbor signature", public_message="Invalid signature")
        try:
            path = parse_path(variant)
            options, geometry = self.map(path)
        except ThumborPathError as exc:
            raise BadRequest(str(exc), public_message=str(exc)) from exc
        return ThumbPath(signature, variant, options, self.source(path.image)), geometry

    def source(self, image: str) -> str:
        """Given the image part, return the source: an absolute URL as it is, else a path under the
        media root (``media``) or an ``http://`` URL (``http``, as thumbor's http loader reads it)."""
        if not image.strip("/"):
            raise ThumborPathError("No image in the thumbor URL")
        if image.startswith(("http://", "https://", "s3://")):
            return image
        return f"http://{image}" if self.sources == "http" else image.lstrip("/")

    def map(self, path: ThumborPath) -> tuple[RenderOptions, ThumborGeometry]:
        """Given a parsed path, return the options and the planner; raise ``ThumborPathError`` when a
        size or a filter is out of bounds."""
        for side in (path.width, path.height):
            if side > self.max_output_px:
                raise ThumborPathError(f"Output size is limited to {self.max_output_px} px a side")
        if path.crop is not None and max(path.crop) > MAX_COORDINATE:
            raise ThumborPathError(f"Crop box values are at most {MAX_COORDINATE}")
        mapped = _Mapped()
        for item in path.filters:
            if item.name in UNSUPPORTED:
                raise ThumborPathError(f"thumbor's {item.name}() filter is not supported")
            handler = HANDLERS.get(item.name)
            if handler is not None:
                handler(item, mapped)
        options = mapped.options
        if path.trim is not None:
            options["trim"] = (_bounded(path.trim[1], 0, 255, "trim's tolerance"), None)
        smart = path.smart and not path.fit_in and not mapped.geometry.get("stretch") and not mapped.focal
        if smart:
            options.update(fit="cover", gravity="smart")
        turn = compose(FLIPS[_flip(path.flip_h, path.flip_v)], ROTATIONS[(360 - mapped.rotate) % 360])
        geometry = ThumborGeometry(
            width=path.width,
            height=path.height,
            crop=path.crop,
            fit_in=path.fit_in,
            full=path.full,
            adaptive=path.adaptive,
            halign=HALIGNS[path.halign],
            valign=VALIGNS[path.valign],
            focal=tuple(mapped.focal),
            smart=smart,
            turn=orientation_of(turn),
            trim_corner=(1, 1) if path.trim is not None and path.trim[0] == "bottom-right" else (0, 0),
            **mapped.geometry,
        )
        try:
            return RenderOptions(**options), geometry
        except ValueError as exc:
            raise ThumborPathError(f"Bad thumbor filter: {exc}") from exc


def _flip(horizontal: bool, vertical: bool) -> str | None:
    return ("h" if horizontal else "") + ("v" if vertical else "") or None


def _bounded(value: int, low: int, high: int, what: str) -> int:
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
    return _bounded(sign * number(text.lstrip("-")), low, high, f"{item.name}()'s value")


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


def _no_args(flag: str, *, geometry: bool = True) -> Callable[[Filter, _Mapped], None]:
    def apply(item: Filter, mapped: _Mapped) -> None:
        _args(item, 0, 0)
        (mapped.geometry if geometry else mapped.options)[flag] = True

    return apply


def _quality(item: Filter, mapped: _Mapped) -> None:
    mapped.options["quality"] = _integer(item, _args(item, 1, 1)[0], 1, 100)


def _format(item: Filter, mapped: _Mapped) -> None:
    name = _args(item, 1, 1)[0].lower()
    if name not in FORMATS:
        raise ThumborPathError(f"format() takes jpeg, png, gif, webp or avif, not {name[:16]!r}")
    mapped.options["format"] = FORMATS[name]


def _fill(item: Filter, mapped: _Mapped) -> None:
    args = _args(item, 1, 2)
    if len(args) == 2 and args[1] not in _BOOLEAN:
        raise ThumborPathError("fill()'s second argument is true or false")
    mapped.geometry["fill"] = True
    if args[0] == "blur":
        raise ThumborPathError("fill(blur) is not supported")
    mapped.geometry["fill_auto"] = args[0] == "auto"
    mapped.options["background"] = None if args[0] == "auto" else _colour(item, args[0])


def _background(item: Filter, mapped: _Mapped) -> None:
    mapped.options["background"] = _colour(item, _args(item, 1, 1)[0])


def _focal(item: Filter, mapped: _Mapped) -> None:
    box = _FOCAL.fullmatch(_args(item, 1, 1)[0])
    if box is None:
        raise ThumborPathError("focal() takes a box: focal(LEFTxTOP:RIGHTxBOTTOM)")
    left, top, right, bottom = (_bounded(number(v), 0, MAX_COORDINATE, "focal()'s box") for v in box.groups())
    if right > left and bottom > top:
        mapped.focal.append((left, top, right, bottom))


def _blur(item: Filter, mapped: _Mapped) -> None:
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


def _sharpen(item: Filter, mapped: _Mapped) -> None:
    amount, radius, luminance = _args(item, 3, 3)
    if not 0 <= _decimal(item, amount) <= 10 or luminance not in _BOOLEAN:
        raise ThumborPathError("sharpen() takes an amount from 0 to 10, a radius and true or false")
    sigma = round(_decimal(item, radius), 1)
    if not MIN_SHARPEN <= sigma <= MAX_SHARPEN:
        raise ThumborPathError(f"sharpen()'s radius must be from {MIN_SHARPEN:g} to {MAX_SHARPEN:g}")
    mapped.options["sharpen"] = sigma


def _rotate(item: Filter, mapped: _Mapped) -> None:
    degrees = _integer(item, _args(item, 1, 1)[0], -3600, 3600)
    if degrees % 90:
        raise ThumborPathError("rotate() takes multiples of 90 degrees")
    mapped.rotate = (mapped.rotate + degrees) % 360


def _watermark(item: Filter, mapped: _Mapped) -> None:
    name = _args(item, 1, 6)[0]
    if not _NAME.fullmatch(name):
        raise ThumborPathError("watermark() takes the name of a watermark the service defines, not a URL")
    mapped.options["watermark"] = name


def _max_age(item: Filter, mapped: _Mapped) -> None:
    _integer(item, _args(item, 1, 1)[0], 0, 10**9)  # checked, then the service's Cache-Control stands


def _ignored(item: Filter, mapped: _Mapped) -> None:
    _args(item, 0, 0)


HANDLERS: dict[str, Callable[[Filter, _Mapped], None]] = {
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
