"""What the playground's form means: a spec, its query string, and the code that gives its URL.

Pure functions over the form's text fields (``source w h fit g fx fy f q dpr bg up``); every
value goes through the client's own checks (``make_options``), so the page refuses exactly what
``URLSigner`` refuses, with the same message.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from thumbsvc.options import make_options

FOCAL = "focal"  # the gravity control's value for a focal point (fx, fy)


@dataclass(frozen=True, slots=True)
class Spec:
    """One thumbnail as the playground sees it: a source and ``URLSigner`` keyword arguments."""

    source: str
    options: dict[str, Any]  # defaults left out, in the client's documented order
    gravity: str  # the gravity control's value: a gravity name or "focal"


def parse_spec(params: Mapping[str, Any], *, default_source: str, max_output_px: int) -> Spec:
    """Given the form's fields (``source w h fit g fx fy f q dpr bg up``), return the spec.

    Raise ``ValueError`` with the client's own message for anything it would refuse, and for
    a box over the service's output limit.
    """

    def field(name: str) -> str:
        value = params.get(name)
        return "" if value is None else str(value).strip()

    source = field("source") or default_source
    if not source:
        raise ValueError("choose a source image (the media root has none)")
    options: dict[str, Any] = {}
    for name, key in (("width", "w"), ("height", "h")):
        if field(key):
            options[name] = _whole(field(key), name)
    if (field("fit") or "contain") != "contain":
        options["fit"] = field("fit")
    gravity = field("g") or "center"
    if gravity == FOCAL:
        options["gravity"] = (_number(field("fx") or "0.5", "focal x"), _number(field("fy") or "0.5", "focal y"))
    elif gravity != "center":
        options["gravity"] = gravity
    if field("f"):
        options["format"] = field("f")
    if field("q"):
        options["quality"] = _whole(field("q"), "quality")
    dpr = _number(field("dpr") or "1", "dpr")
    if dpr != 1:
        options["dpr"] = int(dpr) if dpr.is_integer() else dpr
    if field("bg"):
        options["background"] = field("bg")
    if field("up").lower() in ("1", "on", "true"):
        options["upscale"] = True
    box_w, box_h = make_options(**options).box
    if max(box_w or 0, box_h or 0) > max_output_px:
        raise ValueError(f"the service makes thumbnails of at most {max_output_px} px a side (size times dpr)")
    return Spec(source, options, gravity)


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
    for name in ("fit", "gravity", "format", "quality", "dpr", "background", "upscale"):
        value = options.get(name)
        if value is None:
            continue
        if isinstance(value, tuple):
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
