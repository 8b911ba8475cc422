"""The options of a thumbnail: one frozen value, its canonical text, and its parser.

The options part of a URL is a run of ``/``-separated segments in a fixed order::

    300x200 / fit:cover / g:smart / crop:0:0:800:600 / f:webp / q:80 / dpr:2 / bg:ffffff / up:1
            / trim:10:ffffff / rot:90 / flip:h / gray:1 / blur:2.5 / sharp:1 / wm:logo / exp:1798000000

The size comes first and is always present (``300x200``, ``300x``, ``x200``, or ``x``
for the source's own size); every other option is ``key:value``, omitted when it has
its default. ``format_options`` writes that text and ``parse_options`` reads it back,
refusing anything that ``format_options`` would not have written, so one spec has
exactly one URL. This module is pure and imports nothing outside the standard
library, so the client stays light.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

FITS = ("contain", "cover", "fill", "pad")
GRAVITIES = (
    "center",
    "north",
    "south",
    "east",
    "west",
    "north-east",
    "north-west",
    "south-east",
    "south-west",
    "smart",
)
FORMATS = ("jpeg", "png", "webp", "avif", "gif", "auto", "json")  # json: the image's facts and a ThumbHash
MAX_DIMENSION = 16384  # hard ceiling; the server applies its own, smaller limit
MIN_DPR, MAX_DPR = 1.0, 4.0
ROTATIONS = (0, 90, 180, 270)
FLIPS = ("h", "v", "hv")
MIN_BLUR, MAX_BLUR = 0.3, 50.0
MIN_SHARPEN, MAX_SHARPEN = 0.3, 10.0
MAX_TRIM_THRESHOLD = 255

_HEX_RE = re.compile(r"[0-9a-f]{6}(?:[0-9a-f]{2})?")
_INT_RE = re.compile(r"0|[1-9][0-9]{0,8}")
_SIZE_RE = re.compile(r"(0|[1-9][0-9]{0,8})?x(0|[1-9][0-9]{0,8})?")
_OPTION_ORDER = (
    *("fit", "g", "crop", "f", "q", "dpr", "bg", "up"),
    *("trim", "rot", "flip", "gray", "blur", "sharp", "wm"),
    "exp",
)
_EXPIRES_RE = re.compile(r"[1-9][0-9]{0,10}")  # unix seconds; ten digits today
_WATERMARK_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
_SIGMA_RE = re.compile(r"(0|[1-9][0-9]?)(\.[1-9])?")

Gravity = str | tuple[float, float]


@dataclass(frozen=True, slots=True)
class RenderOptions:
    """What to make of a source: every field checked on construction."""

    width: int | None = None
    height: int | None = None
    fit: str = "contain"
    gravity: Gravity = "center"
    crop: tuple[int, int, int, int] | None = None
    format: str | None = None
    quality: int | None = None
    dpr: float = 1.0
    background: str | None = None
    upscale: bool = False
    trim: tuple[int, str | None] | None = None  # (threshold 0-255, border colour rrggbb or None: the top-left pixel)
    rotate: int = 0  # clockwise, after EXIF orientation, before fitting
    flip: str | None = None  # "h", "v" or "hv", after the rotation
    grayscale: bool = False
    blur: float | None = None  # Gaussian sigma on the output-sized image
    sharpen: float | None = None  # unsharp-mask sigma on the output-sized image
    watermark: str | None = None  # a name the operator defined (THUMBSVC_WATERMARKS)
    expires: int | None = None  # unix seconds: the URL answers 410 from then on

    def __post_init__(self) -> None:
        for name in ("width", "height"):
            value = getattr(self, name)
            if value is not None and (not _is_int(value) or not 1 <= value <= MAX_DIMENSION):
                raise ValueError(f"{name} must be an integer from 1 to {MAX_DIMENSION}, not {value!r}")
        if self.fit not in FITS:
            raise ValueError(f"fit must be one of {', '.join(FITS)}, not {self.fit!r}")
        _check_gravity(self.gravity)
        if self.crop is not None:
            if len(self.crop) != 4 or not all(_is_int(v) for v in self.crop):
                raise ValueError(f"crop must be four integers (left, top, width, height), not {self.crop!r}")
            left, top, width, height = self.crop
            if left < 0 or top < 0 or width < 1 or height < 1:
                raise ValueError(f"crop needs left, top >= 0 and width, height >= 1, not {self.crop!r}")
            if max(self.crop) > 10 * MAX_DIMENSION:
                raise ValueError(f"crop values must be at most {10 * MAX_DIMENSION}")
        if self.format is not None and self.format not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)} or None, not {self.format!r}")
        if self.quality is not None and (not _is_int(self.quality) or not 1 <= self.quality <= 100):
            raise ValueError(f"quality must be an integer from 1 to 100, not {self.quality!r}")
        if isinstance(self.dpr, bool) or not isinstance(self.dpr, int | float) or not math.isfinite(self.dpr):
            raise ValueError(f"dpr must be a number from 1 to 4, not {self.dpr!r}")
        if not MIN_DPR <= self.dpr <= MAX_DPR or round(self.dpr, 2) != self.dpr:
            raise ValueError(f"dpr must be from 1 to 4 with at most two decimals, not {self.dpr!r}")
        if self.background is not None and not _HEX_RE.fullmatch(self.background):
            raise ValueError(f"background must be '#rrggbb' or '#rrggbbaa' in lower-case hex, not {self.background!r}")
        if not isinstance(self.upscale, bool):
            raise ValueError(f"upscale must be True or False, not {self.upscale!r}")
        self._check_filters()

    def _check_filters(self) -> None:
        if self.trim is not None:
            if not isinstance(self.trim, tuple) or len(self.trim) != 2:
                raise ValueError(f"trim must be (threshold, colour or None), not {self.trim!r}")
            threshold, colour = self.trim
            if not _is_int(threshold) or not 0 <= threshold <= MAX_TRIM_THRESHOLD:
                raise ValueError(f"trim's threshold must be an integer from 0 to 255, not {threshold!r}")
            if colour is not None and not (isinstance(colour, str) and _HEX_RE.fullmatch(colour) and len(colour) == 6):
                raise ValueError(f"trim's colour must be '#rrggbb' in lower-case hex, not {colour!r}")
        if not _is_int(self.rotate) or self.rotate not in ROTATIONS:
            raise ValueError(f"rotate must be one of 90, 180, 270 (clockwise), not {self.rotate!r}")
        if self.flip is not None and self.flip not in FLIPS:
            raise ValueError(f"flip must be one of {', '.join(FLIPS)}, not {self.flip!r}")
        if not isinstance(self.grayscale, bool):
            raise ValueError(f"grayscale must be True or False, not {self.grayscale!r}")
        _check_sigma("blur", self.blur, MIN_BLUR, MAX_BLUR)
        _check_sigma("sharpen", self.sharpen, MIN_SHARPEN, MAX_SHARPEN)
        if self.expires is not None and (not _is_int(self.expires) or not 0 < self.expires < 10**11):
            raise ValueError(f"expires must be unix seconds (a positive integer), not {self.expires!r}")
        if self.watermark is not None and not (
            isinstance(self.watermark, str) and _WATERMARK_RE.fullmatch(self.watermark)
        ):
            raise ValueError(
                "watermark must be a name of lower-case letters, digits, '-' and '_' (up to 32 characters), "
                f"not {self.watermark!r}"
            )

    @property
    def box(self) -> tuple[int | None, int | None]:
        """Return the requested box in output pixels (the size times ``dpr``, rounded)."""
        width = max(1, round(self.width * self.dpr)) if self.width else None
        height = max(1, round(self.height * self.dpr)) if self.height else None
        return width, height


def make_options(
    *,
    width: int | None = None,
    height: int | None = None,
    fit: str = "contain",
    gravity: Gravity | list[float] = "center",
    crop: tuple[int, int, int, int] | list[int] | None = None,
    format: str | None = None,
    quality: int | None = None,
    dpr: float = 1,
    background: str | None = None,
    upscale: bool = False,
    trim: int | tuple[int, str] | list[Any] | None = None,
    rotate: int = 0,
    flip: str | None = None,
    grayscale: bool = False,
    blur: float | None = None,
    sharpen: float | None = None,
    watermark: str | None = None,
    expires: int | datetime | timedelta | None = None,
) -> RenderOptions:
    """Given the client's keyword arguments, return normalised ``RenderOptions``.

    Accepts friendly spellings (``"#FFF000"``, a focal point as a list, ``dpr=2``)
    and raises ``ValueError`` with a clear message for anything out of range.
    """
    if isinstance(gravity, list | tuple):
        if len(gravity) != 2:
            raise ValueError(f"a focal point is (x, y), not {gravity!r}")
        gravity = (_round_focal(gravity[0]), _round_focal(gravity[1]))
    if background is not None:
        if not isinstance(background, str) or not background.startswith("#"):
            raise ValueError(f"background must be '#rrggbb' or '#rrggbbaa', not {background!r}")
        background = background[1:].lower()
    if isinstance(dpr, int | float) and not isinstance(dpr, bool) and math.isfinite(dpr):
        dpr = float(dpr)
    if format is not None and isinstance(format, str):
        format = format.lower()
        format = "jpeg" if format == "jpg" else format
    return RenderOptions(
        width=width,
        height=height,
        fit=fit,
        gravity=gravity,
        crop=tuple(crop) if crop is not None else None,  # type: ignore[arg-type]
        format=format,
        quality=quality,
        dpr=dpr,
        background=background,
        upscale=upscale,
        trim=_make_trim(trim),
        rotate=rotate,
        flip=flip,
        grayscale=grayscale,
        blur=_make_sigma("blur", blur),
        sharpen=_make_sigma("sharpen", sharpen),
        watermark=watermark,
        expires=_make_expires(expires),
    )


def _make_expires(value: object) -> int | None:
    """``expires`` as the client takes it: unix seconds, an absolute ``datetime`` (aware, or naive UTC) or a
    ``timedelta`` from now; a fraction of a second is carried up to the next whole second, nothing more."""
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    if isinstance(value, datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return math.ceil(moment.timestamp())
    if isinstance(value, timedelta):
        return math.ceil(time.time() + value.total_seconds())
    raise ValueError(f"expires is unix seconds, a datetime or a timedelta, not {value!r}")


def _make_trim(value: object) -> tuple[int, str | None] | None:
    """``trim=10`` or ``trim=(10, "#ffffff")``; ``None`` (or ``False``) is no trim."""
    if value is None or value is False:
        return None
    if isinstance(value, list | tuple):
        if len(value) != 2:
            raise ValueError(f"trim is a threshold or (threshold, '#rrggbb'), not {value!r}")
        threshold, colour = value
        if not isinstance(colour, str) or not colour.startswith("#"):
            raise ValueError(f"trim's colour must be '#rrggbb', not {colour!r}")
        return (threshold, colour[1:].lower())
    return (value, None)  # type: ignore[return-value]


def _make_sigma(name: str, value: object) -> float | None:
    """A sigma as the client passes it (``2.5``, ``1``), rounded to its canonical one decimal place."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a number, not {value!r}")
    rounded = round(float(value), 1)
    if rounded != value:
        raise ValueError(f"{name} has at most one decimal place, not {value!r}")
    return rounded


def format_options(options: RenderOptions) -> str:
    """Given options, return their one canonical text (no leading or trailing slash)."""
    parts = [f"{options.width or ''}x{options.height or ''}"]
    if options.fit != "contain":
        parts.append(f"fit:{options.fit}")
    if options.gravity != "center":
        if isinstance(options.gravity, tuple):
            parts.append(f"g:{_fmt_number(options.gravity[0])}:{_fmt_number(options.gravity[1])}")
        else:
            parts.append(f"g:{options.gravity}")
    if options.crop is not None:
        parts.append("crop:" + ":".join(str(v) for v in options.crop))
    if options.format is not None:
        parts.append(f"f:{options.format}")
    if options.quality is not None:
        parts.append(f"q:{options.quality}")
    if options.dpr != 1:
        parts.append(f"dpr:{_fmt_number(options.dpr)}")
    if options.background is not None:
        parts.append(f"bg:{options.background}")
    if options.upscale:
        parts.append("up:1")
    if options.trim is not None:
        threshold, colour = options.trim
        parts.append(f"trim:{threshold}" + (f":{colour}" if colour else ""))
    if options.rotate:
        parts.append(f"rot:{options.rotate}")
    if options.flip:
        parts.append(f"flip:{options.flip}")
    if options.grayscale:
        parts.append("gray:1")
    if options.blur is not None:
        parts.append(f"blur:{_fmt_number(options.blur)}")
    if options.sharpen is not None:
        parts.append(f"sharp:{_fmt_number(options.sharpen)}")
    if options.watermark:
        parts.append(f"wm:{options.watermark}")
    if options.expires is not None:
        parts.append(f"exp:{options.expires}")
    return "/".join(parts)


def split_options(segments: list[str]) -> tuple[list[str], list[str]]:
    """Given the path segments after the signature, return (option segments, source segments).

    The size segment is always first; then come ``key:value`` segments. The source
    starts at the first segment without a colon (sources always percent-encode ``:``).
    """
    if not segments:
        raise ValueError("the path has no size segment")
    index = 1
    while index < len(segments) and ":" in segments[index]:
        index += 1
    return segments[:index], segments[index:]


def parse_options(segments: list[str]) -> RenderOptions:
    """Given the option segments of a path, return ``RenderOptions``.

    Raise ``ValueError`` if a segment is unknown, out of order, repeated, out of range,
    or not in its canonical spelling.
    """
    size = _SIZE_RE.fullmatch(segments[0])
    if size is None:
        raise ValueError(f"bad size segment {segments[0]!r}")
    values: dict[str, str] = {}
    last = -1
    for segment in segments[1:]:
        key, _, value = segment.partition(":")
        if key not in _OPTION_ORDER:
            raise ValueError(f"unknown option {key!r}")
        position = _OPTION_ORDER.index(key)
        if position <= last:
            raise ValueError(f"option {key!r} is repeated or out of order")
        last = position
        values[key] = value
    kwargs: dict[str, object] = {
        "width": int(size.group(1)) if size.group(1) else None,
        "height": int(size.group(2)) if size.group(2) else None,
    }
    if "fit" in values:
        kwargs["fit"] = values["fit"]
    if "g" in values:
        kwargs["gravity"] = _parse_gravity(values["g"])
    if "crop" in values:
        kwargs["crop"] = tuple(_parse_int(v) for v in _split_exact(values["crop"], 4))
    if "f" in values:
        kwargs["format"] = values["f"]
    if "q" in values:
        kwargs["quality"] = _parse_int(values["q"])
    if "dpr" in values:
        kwargs["dpr"] = _parse_number(values["dpr"])
    if "bg" in values:
        kwargs["background"] = values["bg"]
    if "up" in values:
        if values["up"] != "1":
            raise ValueError("up takes only the value 1")
        kwargs["upscale"] = True
    _parse_filters(values, kwargs)
    options = RenderOptions(**kwargs)  # type: ignore[arg-type]
    if format_options(options) != "/".join(segments):
        raise ValueError("options are not in their canonical form")
    return options


def _parse_filters(values: dict[str, str], kwargs: dict[str, object]) -> None:
    if "trim" in values:
        parts = values["trim"].split(":")
        if len(parts) > 2:
            raise ValueError(f"trim takes a threshold and an optional colour, not {values['trim']!r}")
        kwargs["trim"] = (_parse_int(parts[0]), parts[1] if len(parts) == 2 else None)
    if "rot" in values:
        kwargs["rotate"] = _parse_int(values["rot"])
    if "flip" in values:
        kwargs["flip"] = values["flip"]
    if "gray" in values:
        if values["gray"] != "1":
            raise ValueError("gray takes only the value 1")
        kwargs["grayscale"] = True
    for key, name in (("blur", "blur"), ("sharp", "sharpen")):
        if key in values:
            if not _SIGMA_RE.fullmatch(values[key]):
                raise ValueError(f"{values[key]!r} is not a canonical sigma (one decimal place at most)")
            kwargs[name] = float(values[key])
    if "wm" in values:
        kwargs["watermark"] = values["wm"]
    if "exp" in values:
        if not _EXPIRES_RE.fullmatch(values["exp"]):
            raise ValueError(f"{values['exp']!r} is not canonical unix seconds")
        kwargs["expires"] = int(values["exp"])


def _check_sigma(name: str, value: object, low: float, high: float) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a number from {low:g} to {high:g}, not {value!r}")
    if not low <= value <= high or round(value, 1) != value:
        raise ValueError(f"{name} must be from {low:g} to {high:g} with one decimal place at most, not {value!r}")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_gravity(gravity: object) -> None:
    if isinstance(gravity, tuple):
        if len(gravity) != 2 or not all(
            isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and 0 <= v <= 1 for v in gravity
        ):
            raise ValueError(f"a focal point is (x, y) with 0 <= x, y <= 1, not {gravity!r}")
        if any(round(v, 4) != v for v in gravity):
            raise ValueError("focal point coordinates have at most four decimals")
        return
    if gravity not in GRAVITIES:
        raise ValueError(f"gravity must be one of {', '.join(GRAVITIES)} or a focal point (x, y), not {gravity!r}")


def _round_focal(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"focal point coordinates are numbers from 0 to 1, not {value!r}")
    return round(float(value), 4)


def _fmt_number(value: float) -> str:
    text = f"{value:.4f}".rstrip("0").rstrip(".")
    return text or "0"


def _parse_gravity(value: str) -> Gravity:
    if ":" in value:
        x, y = _split_exact(value, 2)
        return (_parse_number(x), _parse_number(y))
    return value


def _split_exact(value: str, count: int) -> list[str]:
    parts = value.split(":")
    if len(parts) != count:
        raise ValueError(f"expected {count} values, got {value!r}")
    return parts


def _parse_int(text: str) -> int:
    if not _INT_RE.fullmatch(text):
        raise ValueError(f"{text!r} is not a canonical integer")
    return int(text)


def _parse_number(text: str) -> float:
    if not re.fullmatch(r"(0|[1-9][0-9]{0,3})(\.[0-9]{1,4})?", text):
        raise ValueError(f"{text!r} is not a canonical number")
    return float(text)
