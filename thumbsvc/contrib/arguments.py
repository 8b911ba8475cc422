"""Template arguments as templates write them, made into client options and sources.

Templates pass strings (``"300"``, ``"320,640"``, ``"0,0,800,600"``), ``None`` and model
fields; this module turns them into ``URLSigner`` keyword arguments and a ``Source``, with
a ``ValueError``/``TypeError`` that names the argument. Nothing here opens a file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from thumbsvc.options import make_options

OPTION_NAMES = (
    *("width", "height", "fit", "gravity", "crop", "format", "quality", "background", "upscale"),
    *("trim", "rotate", "flip", "grayscale", "blur", "sharpen", "watermark"),
    "expires_in",
)
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
SRCSET_NAMES = ("widths", "densities", "sizes")
_SIZE_RE = re.compile(r"([0-9]*)x([0-9]*)")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Source:
    """A source reference for the service, and its upright pixel size when known without I/O."""

    ref: str
    size: tuple[int, int] | None = None


def resolve_source(value: object, *, prefix: str = "") -> Source | None:
    """Given a template value, return its ``Source``, or None for an empty value.

    A string is used as it is (a path under the service's media root or an absolute
    URL). A Django ``FieldFile`` gives ``prefix + name`` and, for an image field, the
    size stored in its ``width_field``/``height_field`` or already read by Django.
    Nothing here opens the file. Raise ``TypeError`` for any other kind of value.
    """
    if value is None:
        return None
    if isinstance(value, str):
        return Source(value) if value.strip() else None
    if isinstance(value, int | float):
        raise TypeError(f"a thumbnail source is a path, a URL or a file field, not {type(value).__name__}")
    if not value:  # an empty file field, Jinja2's Undefined
        return None
    if isinstance(value, os.PathLike):
        text = os.fspath(value)
        return Source(str(text)) if text else None
    if hasattr(value, "field") and hasattr(value, "instance") and hasattr(value, "name"):
        return Source(prefix + str(value.name), _field_file_size(value))
    raise TypeError(f"a thumbnail source is a path, a URL or a file field, not {type(value).__name__}")


def _field_file_size(file: Any) -> tuple[int, int] | None:
    # Django caches the size here once something has read it; never read it ourselves.
    cached = getattr(file, "_dimensions_cache", None)
    if isinstance(cached, tuple) and len(cached) == 2 and all(_positive_int(v) for v in cached):
        return int(cached[0]), int(cached[1])
    width_field = getattr(file.field, "width_field", None)
    height_field = getattr(file.field, "height_field", None)
    if width_field and height_field:
        width, height = getattr(file.instance, width_field, None), getattr(file.instance, height_field, None)
        if isinstance(width, int) and isinstance(height, int) and _positive_int(width) and _positive_int(height):
            return width, height
    return None


def check_preset(label: str, preset: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(preset, Mapping):
        raise TypeError(f"{label} must be a mapping of option names to values")
    unknown = sorted(set(preset) - set(OPTION_NAMES) - set(SRCSET_NAMES))
    if unknown:
        raise ValueError(f"{label}: unknown option(s) {', '.join(unknown)}")
    make_options(**normalise_options(dict(preset)))
    if preset.get("widths") is not None:
        parse_numbers(preset["widths"], "widths", int)
    if preset.get("densities") is not None:
        parse_numbers(preset["densities"], "densities", float)
    return dict(preset)


def normalise_options(merged: Mapping[str, Any]) -> dict[str, Any]:
    """Given option values as templates write them ("300", "0,0,10,10", None), return client kwargs."""
    options: dict[str, Any] = {}
    for name in (*OPTION_NAMES, "dpr"):
        value = merged.get(name)
        if value is None or value == "":
            continue
        if name in ("width", "height", "quality", "rotate", "expires_in"):
            value = parse_int(value, name)
        elif name in ("blur", "sharpen") and isinstance(value, str):
            value = parse_numbers(value, name, float)[0]
        elif name in ("grayscale", "upscale") and isinstance(value, str):
            value = parse_bool(value, name)
        elif name == "trim" and isinstance(value, str):
            threshold, _, colour = value.partition(",")
            value = (parse_int(threshold.strip(), "trim"), colour.strip()) if colour else parse_int(value, "trim")
        elif name == "crop":
            value = tuple(parse_numbers(value, "crop", int))
        elif name == "dpr":
            value = parse_numbers(value, "dpr", float)[0] if isinstance(value, str) else value
        elif name == "gravity" and isinstance(value, str) and "," in value:
            value = tuple(parse_numbers(value, "gravity", float))
        options[name] = value
    return options


def parse_size(text: str) -> tuple[int | None, int | None]:
    match = _SIZE_RE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"a size is 'WxH', 'Wx' or 'xH', not {text!r}")
    return (int(match[1]) if match[1] else None, int(match[2]) if match[2] else None)


def parse_int(value: Any, name: str) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{name} must be a whole number, not {value!r}")
    return value


def parse_bool(value: str, name: str) -> bool:
    text = value.strip().lower()
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise ValueError(f"{name} must be true or false, not {value!r}")


def parse_list(value: Any, name: str) -> list[str]:
    items = value.split(",") if isinstance(value, str) else list(value)
    items = [str(item).strip() for item in items if str(item).strip()]
    if not items:
        raise ValueError(f"{name} must not be empty")
    return items


def parse_numbers(value: Any, name: str, kind: Callable[[Any], T]) -> list[T]:
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = [value]
    items: Sequence[Any] = parse_list(value, name) if isinstance(value, str) else list(value)
    result: list[T] = []
    for item in items:
        text = str(item).strip().removesuffix("x").removesuffix("w") if isinstance(item, str) else item
        try:
            number = kind(text)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be numbers, not {value!r}") from None
        if kind is int and isinstance(text, float) and not text.is_integer():
            raise ValueError(f"{name} must be whole numbers, not {value!r}")
        result.append(number)
    if not result:
        raise ValueError(f"{name} must not be empty")
    return result


def _positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0
