"""Template helpers shared by the Django and Jinja2 integrations.

A ``ThumbnailTags`` turns a source (a relative path, an absolute URL or a Django
``FieldFile``) and options into signed URLs, ``srcset`` values and complete
``<img>``/``<picture>`` markup. It computes and signs only: no storage, database or
network call happens while a page renders. Markup is returned as ``str`` with every
attribute escaped; the framework adapters mark it safe.

``thumbhash=`` (on ``img`` and ``picture``) takes a stored ThumbHash and paints the
``<img>``'s background with its average colour, or with the tiny image it decodes to, until
the thumbnail covers it; the hash is written in ``data-thumbhash`` for a script to use.
"""

from __future__ import annotations

import base64
import html
import logging
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from thumbsvc.client import URLSigner
from thumbsvc.contrib.arguments import (
    OPTION_NAMES,
    SRCSET_NAMES,
    Source,
    check_preset,
    normalise_options,
    parse_int,
    parse_list,
    parse_numbers,
    parse_size,
    resolve_source,
)
from thumbsvc.contrib.sizes import output_size
from thumbsvc.options import make_options
from thumbsvc.placeholders import hex_colour, parse_thumbhash, thumbhash_average, thumbhash_data_uri

__all__ = ["EXPIRES_ROUND_S", "ThumbnailTags"]

# expires_in= is rounded up to a multiple of this (THUMBSVC_EXPIRES_ROUND in Django settings).
EXPIRES_ROUND_S = 900

logger = logging.getLogger("thumbsvc.contrib")

MEDIA_TYPES = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp", "avif": "image/avif", "gif": "image/gif"}
_ATTR_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_.:-]*")


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
    thumbhash: bytes | None = None
    thumbhash_image: bool = False


class ThumbnailTags:
    """Signs thumbnail URLs and writes the markup for them.

    ``defaults`` and each entry of ``presets`` are client options (``width``,
    ``fit``, ``format``, …) and may also hold ``widths``, ``densities`` and
    ``sizes``; a call's own arguments win over its preset, which wins over the
    defaults. An empty source gives the ``placeholder`` source, or nothing. With
    ``raise_errors`` false, a bad argument is logged and the helper returns "".
    ``thumbhash_image`` makes ``thumbhash=`` paint the decoded image rather than the
    average colour by default (a call's ``thumbhash_image=`` wins). ``expires_in=N`` (seconds)
    makes an expiring URL whose ``exp`` is rounded up to a multiple of ``expires_round``, so a page
    rendered many times within that window gives the same URLs and a CDN keeps hitting.
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
        thumbhash_image: bool = False,
        expires_round: int = EXPIRES_ROUND_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.signer = signer
        self.defaults = check_preset("the defaults", defaults or {})
        if not isinstance(presets or {}, Mapping):
            raise TypeError("presets must be a mapping of name to options")
        self.presets = {str(name): check_preset(f"preset {name!r}", value) for name, value in (presets or {}).items()}
        self.placeholder = placeholder or None
        self.densities = parse_numbers(densities, "densities", float)
        self.source_prefix = source_prefix
        self.raise_errors = raise_errors
        self.thumbhash_image = thumbhash_image
        self.expires_round = parse_int(expires_round, "expires_round")
        if self.expires_round < 1:
            raise ValueError(f"expires_round must be a whole number of seconds >= 1, not {expires_round!r}")
        self.clock = clock

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

    def picture(
        self, source: object, width: Any = None, height: Any = None, *, formats: Any = ("avif", "webp"), **kwargs: Any
    ) -> str:
        """Return a ``<picture>`` with a ``<source>`` per entry of ``formats`` and an ``<img>`` fallback."""
        return self._guard(lambda spec: self._picture(spec, formats), "markup", source, width, height, kwargs)

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

    def _picture(self, spec: _Spec, formats: Any) -> str:
        attrs = self._img_attrs(spec)
        parts = ["<picture>"]
        for fmt in parse_list(formats, "formats"):
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
        extra = dict(spec.attrs)
        if spec.thumbhash is not None:
            attrs.update(_placeholder_attrs(spec.thumbhash, spec.thumbhash_image, extra.pop("style", None)))
        attrs.update(extra)
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
        if kind != "markup" and ("thumbhash" in kwargs or "thumbhash_image" in kwargs):
            raise TypeError("only img and picture take thumbhash")
        thumbhash = kwargs.pop("thumbhash", None)
        thumbhash_image = kwargs.pop("thumbhash_image", self.thumbhash_image)
        source = resolve_source(value, prefix=self.source_prefix)
        if source is None:
            thumbhash = None  # the hash describes the missing image, not the placeholder source
            source = resolve_source(placeholder)
            if source is None:
                return None
        if source_w not in (None, "") and source_h not in (None, ""):
            source = Source(source.ref, (parse_int(source_w, "source_width"), parse_int(source_h, "source_height")))

        merged: dict[str, Any] = dict(self.defaults)
        if preset_name is not None:
            if preset_name not in self.presets:
                raise ValueError(f"unknown thumbnail preset {preset_name!r}")
            merged.update(self.presets[preset_name])
        if isinstance(width, str) and "x" in width and height is None:
            width, height = parse_size(width)
        for name, value_ in (("width", width), ("height", height)):
            if value_ is not None and value_ != "":
                merged[name] = value_
        if "dpr" in kwargs:
            if kind != "url":
                raise TypeError("srcset, img and picture take densities, not dpr")
            merged["dpr"] = kwargs.pop("dpr")
        if "formats" in kwargs:
            raise TypeError("only picture takes formats")
        attrs = {}
        for name, value_ in kwargs.items():
            if name in OPTION_NAMES or name in SRCSET_NAMES:
                merged[name] = value_
            elif kind == "markup":
                attrs[name] = value_
            else:
                raise TypeError(f"unknown thumbnail option {name!r}")
        if focal is not None and focal != "":
            merged["gravity"] = parse_numbers(focal, "focal", float)
        options = normalise_options(merged)
        expires_in = options.pop("expires_in", None)
        if expires_in is not None:
            options["expires"] = self.expiry(expires_in)
        spec = _Spec(source=source, options=options, attrs=attrs)
        if thumbhash is not None and thumbhash != "":
            spec.thumbhash = parse_thumbhash(thumbhash)
            spec.thumbhash_image = bool(thumbhash_image)
        if merged.get("widths") is not None:
            spec.widths = parse_numbers(merged["widths"], "widths", int)
        if merged.get("densities") is not None:
            spec.densities = parse_numbers(merged["densities"], "densities", float)
        spec.sizes = merged.get("sizes")
        return spec

    def expiry(self, expires_in: int) -> int:
        """Unix seconds at least ``expires_in`` from now, rounded up to a multiple of ``expires_round``."""
        if expires_in < 1:
            raise ValueError(f"expires_in must be a whole number of seconds >= 1, not {expires_in!r}")
        window = self.expires_round
        return math.ceil((self.clock() + expires_in) / window) * window


def _placeholder_attrs(thumbhash: bytes, image: bool, style: Any) -> dict[str, Any]:
    """The ``style`` and ``data-thumbhash`` that paint a ThumbHash under an ``<img>``; ``style`` is the caller's own."""
    average = thumbhash_average(thumbhash)
    declarations = []
    if not image or average[3] == 1:  # a decoded image with alpha carries its own; a colour under it would tint
        declarations.append(f"background-color:{hex_colour(average, alpha=True)}")
    if image:
        declarations.append(f"background-image:url({thumbhash_data_uri(thumbhash)})")
        declarations.append("background-size:cover;background-position:center")
    if style is not None and style is not False and str(style).strip():
        declarations.append(str(style).strip())
    return {"style": ";".join(declarations), "data_thumbhash": base64.b64encode(thumbhash).decode("ascii")}


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
