"""What the playground's form means: a spec, its query string, and the code that gives its URL.

Pure functions over the form's text fields (``source w h fit g fx fy f q dpr bg up`` and the filters,
named after their URL keys: ``trim trimc rot flip gray blur sharp wm``); every value goes through the
client's own checks (``make_options``, ``encode_source``) one field at a time, so the page refuses
exactly what ``URLSigner`` refuses, with its message, next to the field that holds the value (the
focal point is checked one coordinate at a time, with a message of its own). Two refusals are the
playground's own: ``f:json`` (the preview is an image) and a watermark name the service does not define.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from thumbsvc.options import make_options
from thumbsvc.urls import encode_source

T = TypeVar("T")

FOCAL = "focal"  # the gravity control's value for a focal point (fx, fy)
# The filters' form fields, named after their URL keys (trimc: trim's colour), in the URL's order.
FILTER_FIELDS = ("trim", "trimc", "rot", "flip", "gray", "blur", "sharp", "wm")
FILTER_NAMES = ("trim", "rotate", "flip", "grayscale", "blur", "sharpen", "watermark")  # the client's names
ON = ("1", "on", "true")  # what a checkbox (or a bookmarked address) says for "on"


@dataclass(frozen=True, slots=True)
class Spec:
    """One thumbnail as the playground sees it: a source and ``URLSigner`` keyword arguments."""

    source: str
    options: dict[str, Any]  # defaults left out, in the client's documented order
    gravity: str  # the gravity control's value: a gravity name or "focal"


@dataclass(frozen=True, slots=True)
class Form:
    """The form read field by field: a spec of every valid field, and the client's message for each bad one."""

    spec: Spec  # a bad field is left out (its default), so the spec is what the page can still show
    errors: dict[str, str]  # form field name (``w``, ``fit``, ...) -> why its value was refused


def read_form(
    params: Mapping[str, Any], *, default_source: str, max_output_px: int, watermarks: tuple[str, ...] = ()
) -> Form:
    """Given the form's fields (``source w h fit g fx fy f q dpr bg up`` and ``FILTER_FIELDS``), return each
    valid value and each refusal.

    Every field is checked alone with the client's own checks, so one bad value never costs the
    others: ``?w=300&fit=squash`` keeps the width and says why ``squash`` is refused. A box over the
    service's output limit is refused on the size field that exceeds it; a watermark on anything but
    one of ``watermarks`` (the service's names) is refused. A bad or missing source falls back to
    ``default_source`` (an error only when there is none).
    """
    errors: dict[str, str] = {}

    def field(name: str) -> str:
        value = params.get(name)
        return "" if value is None else str(value).strip()

    def check(name: str, make: Callable[[], T]) -> T | None:
        try:
            return make()
        except ValueError as exc:
            errors[name] = str(exc)
            return None

    source = field("source")
    if source and check("source", lambda: encode_source(source)) is None:
        source = ""
    source = source or default_source
    if not source:
        errors.setdefault("source", "choose a source image (the media root has none)")
    width = check("w", partial(_dimension, field("w"), "width")) if field("w") else None
    height = check("h", partial(_dimension, field("h"), "height")) if field("h") else None
    fit = check("fit", partial(_option, "fit", field("fit"))) if field("fit") else None
    control = field("g") or "center"
    gravity: Any = None
    if control == FOCAL:
        gravity = _focal(field("fx") or "0.5", field("fy") or "0.5", errors)
    elif control != "center" and check("g", partial(_option, "gravity", control)) is not None:
        gravity = control
    else:
        control = "center"
    fmt_name = check("f", partial(_format, field("f"))) if field("f") else None
    quality = check("q", partial(_quality, field("q"))) if field("q") else None
    dpr = check("dpr", partial(_dpr, field("dpr"))) if field("dpr") else None
    background = check("bg", partial(_option, "background", field("bg"))) if field("bg") else None
    box_w, box_h = make_options(width=width, height=height, dpr=dpr or 1).box
    over = f"the service makes thumbnails of at most {max_output_px} px a side (size times dpr)"
    if (box_w or 0) > max_output_px:
        errors["w"], width = over, None
    if (box_h or 0) > max_output_px:
        errors["h"], height = over, None
    # In the client's documented order, defaults left out.
    named = {
        "width": width,
        "height": height,
        "fit": fit if fit != "contain" else None,
        "gravity": gravity,
        "format": fmt_name,
        "quality": quality,
        "dpr": dpr if dpr != 1 else None,
        "background": background,
        "upscale": True if field("up").lower() in ON else None,
    }
    named.update(_filters(field, check, errors, watermarks))
    options = {name: value for name, value in named.items() if value is not None}
    make_options(**options)  # every field passed alone; together they cannot fail
    return Form(Spec(source, options, control), errors)


def _filters(
    field: Callable[[str], str],
    check: Callable[[str, Callable[[], Any]], Any],
    errors: dict[str, str],
    watermarks: tuple[str, ...],
) -> dict[str, Any]:
    """The filter fields as the client's keyword arguments (None: not asked for, or refused)."""
    threshold = check("trim", partial(_trim, field("trim"))) if field("trim") else None
    colour = check("trimc", partial(_trim_colour, field("trimc"))) if field("trimc") else None
    if colour is not None and threshold is None:
        if "trim" not in errors:
            errors["trimc"] = "a trim colour needs a trim threshold (0 to 255)"
        colour = None
    rotate = check("rot", partial(_rotate, field("rot"))) if field("rot") else None
    watermark = check("wm", partial(_watermark, field("wm"), watermarks)) if field("wm") else None
    return {
        "trim": (threshold, colour) if colour is not None else threshold,
        "rotate": rotate or None,  # 0: no rotation
        "flip": check("flip", partial(_option, "flip", field("flip"))) if field("flip") else None,
        "grayscale": True if field("gray").lower() in ON else None,
        "blur": check("blur", partial(_sigma, field("blur"), "blur")) if field("blur") else None,
        "sharpen": check("sharp", partial(_sigma, field("sharp"), "sharpen")) if field("sharp") else None,
        "watermark": watermark,
    }


def spec_query(spec: Spec) -> dict[str, str]:
    """Return the form fields that give ``spec`` back (the page's query string)."""
    options = spec.options
    query = {
        "source": spec.source,
        "w": str(options.get("width", "")),
        "h": str(options.get("height", "")),
        "fit": options.get("fit", "contain"),
        "g": spec.gravity,
    }
    if isinstance(options.get("gravity"), tuple):
        query["fx"], query["fy"] = (fmt(v) for v in options["gravity"])
    for key, name in (("f", "format"), ("q", "quality"), ("bg", "background")):
        if name in options:
            query[key] = str(options[name])
    query["dpr"] = fmt(options.get("dpr", 1))
    if options.get("upscale"):
        query["up"] = "1"
    trim = options.get("trim")
    if isinstance(trim, tuple):
        query["trim"], query["trimc"] = str(trim[0]), trim[1]
    elif trim is not None:
        query["trim"] = str(trim)
    for key, name in (("rot", "rotate"), ("flip", "flip"), ("blur", "blur"), ("sharp", "sharpen"), ("wm", "watermark")):
        if name in options:
            query[key] = fmt(options[name])
    if options.get("grayscale"):
        query["gray"] = "1"
    return query


def grid_query(spec: Spec) -> dict[str, str]:
    """Return the grid view's query for ``spec``: its source and output options, at the grid's own size."""
    query = spec_query(spec)
    for key in ("w", "h", "fit", "g"):
        query.pop(key)
    if spec.gravity == FOCAL:
        query["g"] = FOCAL
    return query


def django_tag(spec: Spec) -> str:
    """Return the ``{% thumbnail_url %}`` tag (thumbsvc.contrib.django) that gives the same URL."""
    options = spec.options
    args = [_django_str(spec.source)]
    width, height = options.get("width"), options.get("height")
    if width and height:
        args += [str(width), str(height)]
    elif width:
        args.append(str(width))
    elif height:
        args.append(_django_str(f"x{height}"))
    for name in (*("fit", "gravity", "format", "quality", "dpr", "background", "upscale"), *FILTER_NAMES):
        value = options.get(name)
        if value is None:
            continue
        if name == "trim" and isinstance(value, tuple):
            args.append(f'trim="{value[0]},{value[1]}"')  # the tags' spelling of (threshold, colour)
        elif isinstance(value, tuple):
            args.append(f'focal="{fmt(value[0])},{fmt(value[1])}"')
        elif isinstance(value, bool):
            args.append(f"{name}={value}")
        elif isinstance(value, str):
            args.append(f"{name}={_django_str(value)}")
        else:
            args.append(f"{name}={fmt(value)}")
    return "{% load thumbsvc %}\n{% thumbnail_url " + " ".join(args) + " %}"


def python_call(spec: Spec, base_url: str) -> str:
    """Return the ``URLSigner`` code that gives the same URL with the same key."""
    args = [_py(spec.source)] + [f"{name}={_py(value)}" for name, value in spec.options.items()]
    call = f"signer.url({', '.join(args)})"
    if len(call) > 100:
        call = "signer.url(\n" + "".join(f"    {arg},\n" for arg in args) + ")"
    return (
        "import os\n\nfrom thumbsvc.client import URLSigner\n\n"
        f'signer = URLSigner(key=os.environ["THUMBSVC_KEY"], base_url={_py(base_url)})\n{call}'
    )


def _whole(text: str, name: str) -> int:
    if not text.isdigit():
        raise ValueError(f"{name} must be a whole number, not {text!r}")
    return int(text)


def _number(text: str, name: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{name} must be a number, not {text!r}") from None
    return round(value, 4)


def _option(name: str, value: Any) -> Any:
    """Return ``value`` if the client takes it as this argument; raise its ``ValueError`` otherwise."""
    make_options(**{name: value})
    return value


def _dimension(text: str, name: str) -> int:
    return int(_option(name, _whole(text, name)))


def _format(text: str) -> str | None:
    name = make_options(format=text).format  # the canonical name: "JPG" is "jpeg"
    if name == "json":
        raise ValueError(
            'the playground previews images: json (the facts of a thumbnail) is for the client, format="json"'
        )
    return name


def _trim(text: str) -> int:
    return int(_option("trim", _whole(text, "trim")))


def _trim_colour(text: str) -> str:
    make_options(trim=(0, text))
    return text.lower()


def _rotate(text: str) -> int:
    return int(_option("rotate", _whole(text, "rotate")))


def _sigma(text: str, name: str) -> float:
    """A blur or sharpen sigma as typed (``2.5``, ``1``), checked by the client: 2.55 is refused, not rounded."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{name} must be a number, not {text!r}") from None
    number = int(value) if value.is_integer() else value
    _option(name, number)
    return number


def _watermark(name: str, defined: tuple[str, ...]) -> str:
    if name not in defined:
        if not defined:
            raise ValueError("the service defines no watermarks (THUMBSVC_WATERMARKS)")
        raise ValueError(f"watermark must be one of {', '.join(defined)} (THUMBSVC_WATERMARKS), not {name!r}")
    return name


def _quality(text: str) -> int:
    return int(_option("quality", _whole(text, "quality")))


def _dpr(text: str) -> float:
    value = _number(text, "dpr")
    _option("dpr", value)
    return int(value) if value.is_integer() else value


def _focal(x_text: str, y_text: str, errors: dict[str, str]) -> tuple[float, float]:
    """Return the focal point; a refused coordinate (noted in ``errors``) is 0.5 and the other is kept."""
    point: list[float] = []
    for key, text, name in (("fx", x_text, "focal x"), ("fy", y_text, "focal y")):
        try:
            value = _number(text, name)
            if not 0 <= value <= 1:  # also NaN
                raise ValueError(f"{name} must be from 0 to 1, not {text!r}")
            point.append(value)
        except ValueError as exc:
            errors[key] = str(exc)
            point.append(0.5)
    return point[0], point[1]


def fmt(value: float) -> str:
    return f"{value:.4f}".rstrip("0").rstrip(".") if isinstance(value, float) else str(value)


def _django_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _py(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, tuple):
        return "(" + ", ".join(_py(v) for v in value) + ")"
    return fmt(value) if isinstance(value, float) else repr(value)
