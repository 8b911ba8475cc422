"""The development playground: try options on the media root's images, copy the result.

Only in development mode (no key configured) does ``create_app`` mount these routes:

- ``/``: the playground (a GET form that works without script; ``playground.js`` updates it in place),
- ``/_dev/grid``: every fit and gravity for one image,
- ``/_dev/sign``: signs one spec for the script (POST, JSON),
- ``/_dev/static/{name}``: the script, its stylesheet and an icon.

With a key these paths do not exist. The pages are Jinja2 templates (``templates/``, autoescaped),
Jinja2 being the ``playground`` extra: without it ``/`` says how to install it and the thumbnails
work as ever. The pages send their own Content-Security-Policy: the service's policy plus the
script, the signing endpoint and the ``blob:`` thumbnails the script measures. Of the service the
playground uses only ``Thumbnailer.sign`` and ``Thumbnailer.describe``. Every spec goes through
``URLSigner``'s own argument checks, and the snippets the page shows are checked by the tests to
give the URL it shows.
"""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import anyio
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from thumbsvc.config import Settings
from thumbsvc.decode import allowed_formats
from thumbsvc.errors import Forbidden, ThumbError, UnsupportedFormat
from thumbsvc.options import FITS, FORMATS, GRAVITIES, make_options
from thumbsvc.playground_spec import (
    FILTER_FIELDS,
    FOCAL,
    Form,
    Spec,
    django_tag,
    fmt,
    grid_query,
    python_call,
    read_form,
    spec_query,
)
from thumbsvc.service import Thumbnailer

if TYPE_CHECKING:
    import jinja2

HERE = Path(__file__).parent
CSP = (
    "default-src 'none'; script-src 'self'; connect-src 'self'; img-src 'self' blob:; style-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".avif", ".heic", ".heif")
HEIF_SUFFIXES = (".heic", ".heif")
MAX_LISTED_SOURCES = 500
MAX_SAMPLE_STRIP = 12
MAX_SIGN_BODY_BYTES = 16_384
TIMES = "\N{MULTIPLICATION SIGN}"
DEFAULT_QUERY = {"w": "480", "h": "320", "fit": "cover", "g": "center", "dpr": "1"}
GRID_DEFAULT_QUERY = {"w": "160", "h": "160"}
DPRS = ("1", "1.5", "2", "3", "4")
PREVIEW = {"width": 960, "height": 960}  # the original is shown through the service, at most this big
STRIP = {"width": 96, "height": 96, "fit": "cover"}
STATIC_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
FIELD_NAMES = {
    "source": "Image",
    "w": "Width",
    "h": "Height",
    "dpr": "Pixel ratio",
    "fit": "Fit",
    "g": "Gravity",
    "fx": "Focal x",
    "fy": "Focal y",
    "f": "Format",
    "q": "Quality",
    "bg": "Background colour",
    "trim": "Trim threshold",
    "trimc": "Trim colour",
    "rot": "Rotate",
    "flip": "Flip",
    "blur": "Blur",
    "sharp": "Sharpen",
    "wm": "Watermark",
}
ROTATIONS = (("", "none"), ("90", "90° clockwise"), ("180", "180°"), ("270", "270° clockwise"))
FLIPS = (("", "none"), ("h", "horizontal (mirror)"), ("v", "vertical"), ("hv", "both"))
NEEDS_JINJA2 = (
    "thumbsvc is running in development mode: the thumbnails work, but the playground page needs Jinja2.\n"
    'Install it with: pip install "thumbsvc[playground]"\n'
)


@dataclass(frozen=True, slots=True)
class PlaygroundConfig:
    """What the playground needs of the settings."""

    media_root: str
    max_output_px: int
    watermarks: tuple[str, ...] = ()  # the names THUMBSVC_WATERMARKS defines, for the watermark control


@dataclass(frozen=True, slots=True)
class Described:
    """A source as the page shows it: its facts in words, and why the service cannot render it ("" if it can)."""

    info: str
    problem: str = ""


def routes(thumbnailer: Thumbnailer, settings: Settings) -> list[BaseRoute]:
    """Given the service's thumbnailer and settings, return the playground's routes (none with a key).

    Without Jinja2 (the ``playground`` extra) the pages answer how to install it, in plain text.
    """
    if not settings.dev_mode:
        return []
    try:
        templates = load_templates()
    except ModuleNotFoundError as exc:
        if exc.name not in ("jinja2", "markupsafe"):
            raise
        return [
            Route("/", needs_jinja2, methods=["GET", "HEAD"], name="playground"),
            Route("/_dev/grid", needs_jinja2, methods=["GET", "HEAD"], name="playground_grid"),
        ]
    config = PlaygroundConfig(
        settings.effective_media_root or "",
        settings.max_output_px,
        tuple(watermark.name for watermark in settings.watermarks),
    )
    playground = Playground(thumbnailer, config, templates)
    return [
        Route("/", playground.page, methods=["GET", "HEAD"], name="playground"),
        Route("/_dev/grid", playground.grid, methods=["GET", "HEAD"], name="playground_grid"),
        Route("/_dev/sign", playground.sign, methods=["POST"], name="playground_sign"),
        Route("/_dev/static/{name}", playground.static, methods=["GET", "HEAD"], name="playground_static"),
    ]


def load_templates() -> jinja2.Environment:
    """Return the pages' template environment: autoescaped, strict about undefined names.

    Raise ``ModuleNotFoundError`` when Jinja2 is not installed.
    """
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )


async def needs_jinja2(request: Request) -> Response:
    return PlainTextResponse(NEEDS_JINJA2, headers={"Cache-Control": "no-store"})


def list_sources(root: str, limit: int = MAX_LISTED_SOURCES) -> list[str]:
    """Return up to ``limit`` image paths under ``root``, relative and sorted, skipping hidden entries."""
    found: list[str] = []
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith(".") and name.lower().endswith(IMAGE_SUFFIXES):
                found.append(os.path.relpath(os.path.join(directory, name), root).replace(os.sep, "/"))
                if len(found) >= limit:
                    return sorted(found)
    return sorted(found)


def is_loopback_host(hostname: str | None) -> bool:
    """Return whether a Host header names this machine (so a rebound DNS name cannot use the dev key)."""
    if not hostname:
        return False
    name = hostname.lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def problem_of(source: str, exc: ThumbError) -> str:
    """Given a source and the service's refusal of it, return the reason in a few words for a tile."""
    heif = source.lower().endswith(HEIF_SUFFIXES)
    if heif and isinstance(exc, UnsupportedFormat) and "HEIF" not in allowed_formats():
        return "HEIC needs thumbsvc[heif]"  # said by name: the service answers only "Unsupported image format"
    return exc.public_message


class Playground:
    """The playground's handlers, over one ``Thumbnailer`` (its ``sign`` and ``describe``)."""

    def __init__(self, thumbnailer: Thumbnailer, config: PlaygroundConfig, templates: jinja2.Environment) -> None:
        self.thumbnailer = thumbnailer
        self.config = config
        self.templates = templates
        self.files = {
            path.name: (path.read_bytes(), STATIC_TYPES[path.suffix])
            for path in (HERE / "static").iterdir()
            if path.suffix in STATIC_TYPES
        }

    async def page(self, request: Request) -> Response:
        check_host(request)
        sources = list_sources(self.config.media_root)
        if not sources:
            return no_sources()
        prefix = request.scope.get("root_path", "")
        origin = f"{request.url.scheme}://{request.url.netloc}"
        shown = sources[:MAX_SAMPLE_STRIP]
        described = await self.describe_all(shown)
        # The first image the service can read is the default, so a first visit shows a thumbnail.
        default = next((name for name in shown if not described[name].problem), sources[0])
        form = self.read(request.query_params or DEFAULT_QUERY, default)
        spec = form.spec
        if spec.source not in described:
            described[spec.source] = await self.describe(spec.source)
        query = spec_query(spec)
        thumb = self.url(spec.source, spec.options, prefix)
        strip = [
            {
                "source": name,
                "href": prefix + "/?" + urlencode({**query, "source": name}),
                "src": self.url(name, STRIP, prefix),
                "current": name == spec.source,
                "problem": described[name].problem,
            }
            for name in shown
        ]
        return self.render(
            "playground.html",
            title="thumbsvc playground",
            prefix=prefix,
            nav=self.nav(prefix, spec, current="page"),
            error=_summary(form.errors),
            spec=spec,
            source_info=described[spec.source].info,
            source_problem=described[spec.source].problem,
            original=self.url(spec.source, PREVIEW, prefix),
            thumb=thumb,
            dpr=fmt(spec.options.get("dpr", 1)),
            url=origin + thumb,
            django=django_tag(spec),
            python=python_call(spec, origin + prefix),
            strip=strip,
            **self.controls(form, sources),
        )

    async def grid(self, request: Request) -> Response:
        check_host(request)
        sources = list_sources(self.config.media_root)
        if not sources:
            return no_sources()
        prefix = request.scope.get("root_path", "")
        params = {**GRID_DEFAULT_QUERY, **request.query_params}
        form = self.read(params, sources[0])
        spec = form.spec
        refused = {key: value for key, value in GRID_DEFAULT_QUERY.items() if key in form.errors}
        if refused:  # a refused size falls back to the grid's own (160), not the source's: 44 cells stay small
            spec = self.read({**params, **refused}, sources[0]).spec
        fixed = {k: v for k, v in spec.options.items() if k not in ("fit", "gravity")}
        rows: list[tuple[str, str, Any]] = [(g, g, g) for g in GRAVITIES]
        if isinstance(spec.options.get("gravity"), tuple):
            fx, fy = spec.options["gravity"]
            rows.append((f"focal point {fmt(fx)}, {fmt(fy)}", FOCAL, (fx, fy)))
        table = []
        for label, control, gravity in rows:
            cells = []
            for fit in FITS:
                cell = Spec(spec.source, _drop_defaults({**fixed, "fit": fit, "gravity": gravity}), control)
                cells.append(
                    {
                        "href": f"{prefix}/?{urlencode(spec_query(cell))}",
                        "src": self.url(cell.source, cell.options, prefix),
                        "alt": f"{fit}, {label}",
                    }
                )
            table.append({"label": label, "cells": cells})
        query = spec_query(spec)
        shown_here = ("source", "w", "h")
        return self.render(
            "grid.html",
            title=f"thumbsvc fit {TIMES} gravity grid",
            prefix=prefix,
            nav=self.nav(prefix, spec, current="grid"),
            spec=spec,
            query=query,
            errors={k: v for k, v in form.errors.items() if k in shown_here},
            other_errors=[(FIELD_NAMES[k], v) for k, v in form.errors.items() if k not in shown_here],
            sources=_with(sources, spec.source),
            max_px=self.config.max_output_px,
            hidden=[
                (key, query[key]) for key in ("fx", "fy", "f", "q", "dpr", "bg", "up", *FILTER_FIELDS) if key in query
            ],
            size=_size_text(spec),
            fits=FITS,
            rows=table,
        )

    async def sign(self, request: Request) -> Response:
        check_host(request)
        if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
            return self.json({"error": "send the form as application/json"}, 415)
        raw = await request.body()
        if len(raw) > MAX_SIGN_BODY_BYTES:
            return self.json({"error": "request too large"}, 413)
        try:
            fields = json.loads(raw)
        except ValueError:  # json.JSONDecodeError (and a UnicodeDecodeError) is a ValueError
            fields = None
        if not isinstance(fields, dict):
            return self.json({"error": "send a JSON object of form fields"}, 400)
        form = self.read(fields, "")
        if form.errors:
            return self.json({"error": next(iter(form.errors.values())), "errors": form.errors}, 400)
        spec = form.spec
        prefix = request.scope.get("root_path", "")
        origin = f"{request.url.scheme}://{request.url.netloc}"
        path = self.url(spec.source, spec.options, prefix)
        described = await self.describe(spec.source)
        return self.json(
            {
                "path": path,
                "url": origin + path,
                "original": self.url(spec.source, PREVIEW, prefix),
                "source_info": described.info,
                "source_problem": described.problem,
                "query": urlencode(spec_query(spec)),
                "grid_query": urlencode(grid_query(spec)),
                "django": django_tag(spec),
                "python": python_call(spec, origin + prefix),
                "dpr": spec.options.get("dpr", 1),
            }
        )

    async def static(self, request: Request) -> Response:
        check_host(request)
        name = request.path_params["name"]
        if name not in self.files:
            return Response("Not found\n", status_code=404, media_type="text/plain", headers=page_headers())
        data, media_type = self.files[name]
        return Response(data, media_type=media_type, headers=page_headers())

    # helpers

    def read(self, params: Mapping[str, Any], default_source: str) -> Form:
        config = self.config
        return read_form(
            params, default_source=default_source, max_output_px=config.max_output_px, watermarks=config.watermarks
        )

    def url(self, source: str, options: Mapping[str, Any], prefix: str) -> str:
        return prefix + self.thumbnailer.sign(source, make_options(**options))

    async def describe(self, source: str) -> Described:
        """Return what the source's header says (nothing decoded), or why the service refuses it."""
        try:
            facts = await self.thumbnailer.describe(source)
        except ThumbError as exc:
            problem = problem_of(source, exc)
            return Described(f"cannot read this source: {problem}", problem)
        return Described(f"{facts.width} {TIMES} {facts.height} px · {facts.format} · {_kilobytes(facts.nbytes)}")

    async def describe_all(self, sources: list[str]) -> dict[str, Described]:
        """Describe the sources at once (the service bounds its own fetches and header threads)."""
        described: dict[str, Described] = {}

        async def one(name: str) -> None:
            described[name] = await self.describe(name)

        async with anyio.create_task_group() as group:
            for name in sources:
                group.start_soon(one, name)
        return described

    def render(self, template: str, **context: Any) -> Response:
        body = self.templates.get_template(template).render(**context)
        return HTMLResponse(body, headers=page_headers())

    def json(self, content: dict[str, Any], status_code: int = 200) -> Response:
        return JSONResponse(content, status_code=status_code, headers=page_headers())

    def nav(self, prefix: str, spec: Spec, *, current: str) -> list[dict[str, Any]]:
        links = (
            ("page", "/", urlencode(spec_query(spec)), "Playground"),
            ("grid", "/_dev/grid", urlencode(grid_query(spec)), f"Fit {TIMES} gravity grid"),
        )
        return [
            {"key": key, "href": f"{prefix}{path}?{query}", "label": label, "current": key == current}
            for key, path, query, label in links
        ]

    def controls(self, form: Form, sources: list[str]) -> dict[str, Any]:
        """The form's values (what the thumbnail shows: a refused value is left at its default) and choices."""
        blank = dict.fromkeys(("f", "q", "bg", "up", *FILTER_FIELDS), "")
        query = {"fx": "0.5", "fy": "0.5", **blank, **spec_query(form.spec)}
        return {
            "query": query,
            "errors": form.errors,
            "max_px": self.config.max_output_px,
            "sources": _with(sources, form.spec.source),
            "dprs": [(d, d) for d in (*DPRS, *([query["dpr"]] if query["dpr"] not in DPRS else []))],
            "fits": [(f, f) for f in FITS],
            "gravities": [(g, g) for g in GRAVITIES] + [(FOCAL, "focal point")],
            # f:json answers facts, not an image: nothing the preview could show.
            "formats": [("", "as the source")]
            + [(f, "auto (by Accept)" if f == "auto" else f) for f in FORMATS if f != "json"],
            "rotations": ROTATIONS,
            "flips": FLIPS,
            "watermarks": [("", "none")] + [(name, name) for name in self.config.watermarks],
        }


def check_host(request: Request) -> None:
    """Raise ``Forbidden`` unless the request names this machine: the dev key signs anything asked."""
    if not is_loopback_host(request.url.hostname):
        raise Forbidden(f"playground asked for host {request.url.hostname!r}", public_message="Use a loopback address")


def page_headers() -> dict[str, str]:
    return {"Cache-Control": "no-store", "Content-Security-Policy": CSP}


def no_sources() -> Response:
    text = "choose a source image (the media root has none)\n"
    return Response(text, status_code=404, media_type="text/plain", headers=page_headers())


def _summary(errors: Mapping[str, str]) -> str:
    if not errors:
        return ""
    names = ", ".join(FIELD_NAMES[name] for name in errors)
    return f"Some values in this address could not be used ({names}: see each field); the thumbnail shows the rest."


def _with(sources: list[str], current: str) -> list[tuple[str, str]]:
    names = sources if current in sources else [current, *sources]
    return [(name, name) for name in names]


def _drop_defaults(options: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in options.items() if (k, v) not in (("fit", "contain"), ("gravity", "center"))}


def _size_text(spec: Spec) -> str:
    width, height = spec.options.get("width", ""), spec.options.get("height", "")
    dpr = spec.options.get("dpr")
    return f"{width}{TIMES}{height}" + (f" @{fmt(dpr)}x" if dpr else "")


def _kilobytes(size: int) -> str:
    return f"{size} B" if size < 1024 else f"{size / 1024:.1f} KB"
