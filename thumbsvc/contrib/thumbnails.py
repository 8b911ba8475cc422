"""Template helpers shared by the Django and Jinja2 integrations.

A ``Thumbnailer`` turns a source (a relative path, an absolute URL or a Django
``FieldFile``) and options into signed URLs, ``srcset`` values and complete
``<img>``/``<picture>`` markup. It computes and signs only: no storage, database or
network call happens while a page renders. Markup is returned as ``str`` with every
attribute escaped; the framework adapters mark it safe.
"""

from __future__ import annotations

import html
import logging
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar

from thumbsvc.client import URLSigner
from thumbsvc.contrib.sizes import output_size
from thumbsvc.options import make_options

__all__ = ["Source", "Thumbnailer", "resolve_source"]

logger = logging.getLogger("thumbsvc.contrib")

OPTION_NAMES = ("width", "height", "fit", "gravity", "crop", "format", "quality", "background", "upscale")
SRCSET_NAMES = ("widths", "densities", "sizes")
MEDIA_TYPES = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp", "avif": "image/avif", "gif": "image/gif"}
_ATTR_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_.:-]*")
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


class _Variant(NamedTuple):
    url: str
    descriptor: str
    options: dict[str, Any]
    size: tuple[int, int] | None


def _srcset_value(variants: list[_Variant]) -> str:
    return ", ".join(f"{v.url} {v.descriptor}" for v in variants)


@dataclass(slots=True)
class _Spec:
    source: Source
    options: dict[str, Any]
    widths: list[int] | None = None
    densities: list[float] | None = None
    sizes: str | None = None
    attrs: dict[str, Any] = field(default_factory=dict)


class Thumbnailer:
    """Signs thumbnail URLs and writes the markup for them.

    ``defaults`` and each entry of ``presets`` are client options (``width``,
    ``fit``, ``format``, …) and may also hold ``widths``, ``densities`` and
    ``sizes``; a call's own arguments win over its preset, which wins over the
    defaults. An empty source gives the ``placeholder`` source, or nothing. With
    ``raise_errors`` false, a bad argument is logged and the helper returns "".
    """

    def __init__(
        self,
        signer: URLSigner,
        *,
        defaults: Mapping[str, Any] | None = None,
        presets: Mapping[str, Mapping[str, Any]] | None = None,
        placeholder: str | None = None,
        densities: Iterable[float] = (1, 2),
        source_prefix: str = "",
        raise_errors: bool = True,
    ) -> None:
        self.signer = signer
        self.defaults = _check_preset("the defaults", defaults or {})
        if not isinstance(presets or {}, Mapping):
            raise TypeError("presets must be a mapping of name to options")
        self.presets = {str(name): _check_preset(f"preset {name!r}", value) for name, value in (presets or {}).items()}
        self.placeholder = placeholder or None
        self.densities = _parse_numbers(densities, "densities", float)
        self.source_prefix = source_prefix
        self.raise_errors = raise_errors

    # Public helpers: each returns "" for an empty source (or, with raise_errors off, on a bad argument).

    def url(self, source: object, width: Any = None, height: Any = None, **kwargs: Any) -> str:
        """Return the signed URL of one thumbnail; ``dpr`` is accepted here."""
        return self._guard(self._url, "url", source, width, height, kwargs)

    def srcset(self, source: object, width: Any = None, height: Any = None, **kwargs: Any) -> str:
        """Return a ``srcset`` value, by ``widths`` (``320w``) or else by ``densities`` (``2x``)."""
        return self._guard(self._srcset, "srcset", source, width, height, kwargs)

    def img(self, source: object, width: Any = None, height: Any = None, **kwargs: Any) -> str:
        """Return an ``<img>`` element with src, srcset, sizes, exact width/height, alt, lazy loading."""
        return self._guard(self._img, "markup", source, width, height, kwargs)

    def picture(self, source: object, width: Any = None, height: Any = None, **kwargs: Any) -> str:
        """Return a ``<picture>`` with a ``<source>`` per entry of ``formats`` and an ``<img>`` fallback."""
        return self._guard(self._picture, "markup", source, width, height, kwargs)

    def _guard(
        self,
        render: Callable[[_Spec], str],
        kind: str,
        source: object,
        width: Any,
        height: Any,
        kwargs: dict[str, Any],
    ) -> str:
        try:
            spec = self._spec(source, width, height, dict(kwargs), kind=kind)
            return "" if spec is None else render(spec)
        except (ValueError, TypeError):
            if self.raise_errors:
                raise
            logger.warning("thumbnail not rendered", exc_info=True)
            return ""

    def _url(self, spec: _Spec) -> str:
        return self.signer.url(spec.source.ref, **spec.options)

    def _srcset(self, spec: _Spec) -> str:
        return _srcset_value(self._variants(spec, spec.options))

    def _img(self, spec: _Spec) -> str:
        return _element("img", self._img_attrs(spec))

    def _picture(self, spec: _Spec) -> str:
        formats = _parse_list(spec.attrs.pop("formats", ("avif", "webp")), "formats")
        attrs = self._img_attrs(spec)
        parts = ["<picture>"]
        for fmt in formats:
            fmt = "jpeg" if fmt.lower() == "jpg" else fmt.lower()
            if fmt not in MEDIA_TYPES:
                raise ValueError(f"formats are among {', '.join(MEDIA_TYPES)}, not {fmt!r}")
            srcset = _srcset_value(self._variants(spec, {**spec.options, "format": fmt}))
            parts.append(_element("source", {"type": MEDIA_TYPES[fmt], "srcset": srcset, "sizes": attrs["sizes"]}))
        parts.append(_element("img", attrs))
        parts.append("</picture>")
        return "".join(parts)

    def _img_attrs(self, spec: _Spec) -> dict[str, Any]:
        variants = self._variants(spec, spec.options)
        # The 1x density (or the width asked for) is the src itself: sign it once.
        same = next((v for v in variants if v.options == spec.options), None)
        if same is not None:
            src, css_size = same.url, same.size
        else:
            src = self.signer.url(spec.source.ref, **spec.options)
            css_size = output_size(make_options(**spec.options), spec.source.size)
        attrs: dict[str, Any] = {"src": src}
        if spec.widths is not None or len(variants) > 1:
            attrs["srcset"] = _srcset_value(variants)
        attrs["sizes"] = self._sizes(spec, css_size)
        attrs["width"], attrs["height"] = css_size or (None, None)
        attrs.update({"alt": "", "loading": "lazy", "decoding": "async"})
        attrs.update(spec.attrs)
        return attrs

    def _sizes(self, spec: _Spec, css_size: tuple[int, int] | None) -> str | None:
        if spec.widths is None:
            return None
        if spec.sizes is not None:
            return spec.sizes
        css_width = css_size[0] if css_size else spec.options.get("width")
        return f"(max-width: {css_width}px) 100vw, {css_width}px" if css_width else None

    def _variants(self, spec: _Spec, options: dict[str, Any]) -> list[_Variant]:
        """Return the srcset entries, dropping variants the source is too small to tell apart."""
        entries: list[_Variant] = []
        seen: set[tuple[int, int]] = set()
        known = spec.source.size is not None
        if spec.widths is not None:
            base_w, base_h = options.get("width"), options.get("height")
            if base_h is not None and base_w is None:
                raise ValueError("a srcset by widths with a height needs a width for the aspect ratio")
            candidates = []
            for width in spec.widths:
                variant = {**options, "width": width}
                if base_h is not None:
                    variant["height"] = max(1, round(width * base_h / base_w))
                candidates.append(variant)
        else:
            candidates = [options if d == 1 else {**options, "dpr": d} for d in spec.densities or self.densities]
        for variant in candidates:
            size = output_size(make_options(**variant), spec.source.size)
            if size is not None and known:
                if size in seen:
                    continue
                seen.add(size)
            if spec.widths is not None:
                descriptor = f"{size[0] if size and known else variant['width']}w"
            else:
                descriptor = f"{variant.get('dpr', 1):g}x"
            entries.append(_Variant(self.signer.url(spec.source.ref, **variant), descriptor, variant, size))
        return entries

    def _spec(self, value: object, width: Any, height: Any, kwargs: dict[str, Any], *, kind: str) -> _Spec | None:
        """Given one call's arguments, return what to build; None when there is no source at all."""
        preset_name = kwargs.pop("preset", None)
        focal = kwargs.pop("focal", None)
        source_w, source_h = kwargs.pop("source_width", None), kwargs.pop("source_height", None)
        placeholder = kwargs.pop("placeholder", self.placeholder)
        source = resolve_source(value, prefix=self.source_prefix)
        if source is None:
            source = resolve_source(placeholder)
            if source is None:
                return None
        if source_w not in (None, "") and source_h not in (None, ""):
            source = Source(source.ref, (_parse_int(source_w, "source_width"), _parse_int(source_h, "source_height")))

        merged: dict[str, Any] = dict(self.defaults)
        if preset_name is not None:
            if preset_name not in self.presets:
                raise ValueError(f"unknown thumbnail preset {preset_name!r}")
            merged.update(self.presets[preset_name])
        if isinstance(width, str) and "x" in width and height is None:
            width, height = _parse_size(width)
        for name, value_ in (("width", width), ("height", height)):
            if value_ is not None and value_ != "":
                merged[name] = value_
        if "dpr" in kwargs:
            if kind != "url":
                raise TypeError("srcset, img and picture take densities, not dpr")
            merged["dpr"] = kwargs.pop("dpr")
        attrs = {}
        for name, value_ in kwargs.items():
            if name in OPTION_NAMES or name in SRCSET_NAMES:
                merged[name] = value_
            elif kind == "markup":
                attrs[name] = value_
            else:
                raise TypeError(f"unknown thumbnail option {name!r}")
        if focal is not None and focal != "":
            merged["gravity"] = _parse_numbers(focal, "focal", float)
        spec = _Spec(source=source, options=_normalise(merged), attrs=attrs)
        if merged.get("widths") is not None:
            spec.widths = _parse_numbers(merged["widths"], "widths", int)
        if merged.get("densities") is not None:
            spec.densities = _parse_numbers(merged["densities"], "densities", float)
        spec.sizes = merged.get("sizes")
        return spec


def _check_preset(label: str, preset: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(preset, Mapping):
        raise TypeError(f"{label} must be a mapping of option names to values")
    unknown = sorted(set(preset) - set(OPTION_NAMES) - set(SRCSET_NAMES))
    if unknown:
        raise ValueError(f"{label}: unknown option(s) {', '.join(unknown)}")
    make_options(**_normalise(dict(preset)))
    if preset.get("widths") is not None:
        _parse_numbers(preset["widths"], "widths", int)
    if preset.get("densities") is not None:
        _parse_numbers(preset["densities"], "densities", float)
    return dict(preset)


def _normalise(merged: Mapping[str, Any]) -> dict[str, Any]:
    """Given option values as templates write them ("300", "0,0,10,10", None), return client kwargs."""
    options: dict[str, Any] = {}
    for name in (*OPTION_NAMES, "dpr"):
        value = merged.get(name)
        if value is None or value == "":
            continue
        if name in ("width", "height", "quality"):
            value = _parse_int(value, name)
        elif name == "crop":
            value = tuple(_parse_numbers(value, "crop", int))
        elif name == "dpr":
            value = _parse_numbers(value, "dpr", float)[0] if isinstance(value, str) else value
        elif name == "gravity" and isinstance(value, str) and "," in value:
            value = tuple(_parse_numbers(value, "gravity", float))
        options[name] = value
    return options


def _parse_size(text: str) -> tuple[int | None, int | None]:
    match = _SIZE_RE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"a size is 'WxH', 'Wx' or 'xH', not {text!r}")
    return (int(match[1]) if match[1] else None, int(match[2]) if match[2] else None)


def _parse_int(value: Any, name: str) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{name} must be a whole number, not {value!r}")
    return value


def _parse_list(value: Any, name: str) -> list[str]:
    items = value.split(",") if isinstance(value, str) else list(value)
    items = [str(item).strip() for item in items if str(item).strip()]
    if not items:
        raise ValueError(f"{name} must not be empty")
    return items


def _parse_numbers(value: Any, name: str, kind: Callable[[Any], T]) -> list[T]:
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = [value]
    items: Sequence[Any] = _parse_list(value, name) if isinstance(value, str) else list(value)
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


def _element(tag: str, attrs: Mapping[str, Any]) -> str:
    """Return ``<tag a="v" …>`` with names checked and values escaped; None/False drop, True is bare."""
    parts = [tag]
    for name, value in attrs.items():
        name = name.rstrip("_").replace("_", "-")
        if not _ATTR_NAME_RE.fullmatch(name):
            raise ValueError(f"{name!r} is not an HTML attribute name")
        if value is None or value is False:
            continue
        parts.append(name if value is True else f'{name}="{_escape(value)}"')
    return "<" + " ".join(parts) + ">"


def _escape(value: Any) -> str:
    # Values that are already markup (Django's SafeString, markupsafe's Markup) say so with __html__.
    if hasattr(value, "__html__"):
        return str(value.__html__())
    return html.escape(str(value), quote=True)
