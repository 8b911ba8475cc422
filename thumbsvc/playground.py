"""The development playground: try options on the media root's images, copy the result.

Only in development mode (no key configured) does ``create_app`` mount these routes:

- ``/``: the playground (a GET form that works without script; ``playground.js`` updates it in place),
- ``/_dev/grid``: every fit and gravity for one image,
- ``/_dev/sign``: signs one spec for the script (POST, JSON),
- ``/_dev/static/{name}``: the script, its stylesheet and an icon.

With a key these paths do not exist. The pages send their own Content-Security-Policy: the
service's policy plus the script, the signing endpoint and the ``blob:`` thumbnails the script
measures. Every spec goes through ``URLSigner``'s own argument checks, and the snippets the page
shows are checked by the tests to give the URL it shows.
"""

from __future__ import annotations

import html
import ipaddress
import json
import os
from collections.abc import Mapping
from pathlib import Path
from string import Template
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from thumbsvc.config import Settings
from thumbsvc.errors import Forbidden, ThumbError
from thumbsvc.options import FITS, FORMATS, GRAVITIES, make_options
from thumbsvc.playground_spec import FOCAL, Spec, django_tag, fmt, grid_query, parse_spec, python_call, spec_query
from thumbsvc.service import Thumbnailer

HERE = Path(__file__).parent
CSP = (
    "default-src 'none'; script-src 'self'; connect-src 'self'; img-src 'self' blob:; style-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".avif", ".heic", ".heif")
MAX_LISTED_SOURCES = 500
MAX_SAMPLE_STRIP = 12
MAX_SIGN_BODY_BYTES = 16_384
TIMES = "\N{MULTIPLICATION SIGN}"
CURRENT = ' aria-current="true"'
DEFAULT_QUERY = {"w": "480", "h": "320", "fit": "cover", "g": "center", "dpr": "1"}
GRID_DEFAULT_QUERY = {"w": "160", "h": "160"}
DPRS = ("1", "1.5", "2", "3", "4")
PREVIEW = {"width": 960, "height": 960}  # the original is shown through the service, at most this big
STRIP = {"width": 96, "height": 96, "fit": "cover"}
STATIC_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}


def routes(thumbnailer: Thumbnailer, settings: Settings) -> list[BaseRoute]:
    """Given the service's thumbnailer and settings, return the playground's routes (none with a key)."""
    if not settings.dev_mode:
        return []
    playground = Playground(thumbnailer, settings)
    return [
        Route("/", playground.page, methods=["GET", "HEAD"], name="playground"),
        Route("/_dev/grid", playground.grid, methods=["GET", "HEAD"], name="playground_grid"),
        Route("/_dev/sign", playground.sign, methods=["POST"], name="playground_sign"),
        Route("/_dev/static/{name}", playground.static, methods=["GET", "HEAD"], name="playground_static"),
    ]


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


class Playground:
    """The playground's handlers, over one ``Thumbnailer``."""

    def __init__(self, thumbnailer: Thumbnailer, settings: Settings) -> None:
        self.thumbnailer = thumbnailer
        self.settings = settings
        self.root = settings.effective_media_root or ""
        self.templates = {
            name: Template((HERE / "templates" / name).read_text("utf-8")) for name in ("base.html", "playground.html")
        }
        self.files = {
            path.name: (path.read_bytes(), STATIC_TYPES[path.suffix])
            for path in (HERE / "static").iterdir()
            if path.suffix in STATIC_TYPES
        }

    async def page(self, request: Request) -> Response:
        check_host(request)
        sources = list_sources(self.root)
        error = ""
        try:
            spec = self.parse(request.query_params or DEFAULT_QUERY, sources)
        except ValueError as exc:
            if not sources:  # nothing to fall back to
                return Response(f"{exc}\n", status_code=404, media_type="text/plain", headers=page_headers())
            error, spec = str(exc), self.parse(DEFAULT_QUERY, sources)
        prefix = request.scope.get("root_path", "")
        origin = f"{request.url.scheme}://{request.url.netloc}"
        thumb = self.url(spec.source, spec.options, prefix)
        strip = [
            f'<li><a href="{_esc(prefix + "/?" + urlencode({**spec_query(spec), "source": name}))}" '
            f'data-source="{_esc(name)}"{CURRENT if name == spec.source else ""}>'
            f'<img src="{_esc(self.url(name, STRIP, prefix))}" alt="{_esc(name)}" width="96" height="96"></a></li>'
            for name in sources[:MAX_SAMPLE_STRIP]
        ]
        main = self.templates["playground.html"].substitute(
            prefix=_esc(prefix),
            strip="\n".join(strip),
            **self.controls(spec, sources),
            error=_esc(error),
            error_hidden="" if error else " hidden",
            source_info=_esc(await self.describe(spec.source)),
            original=_esc(self.url(spec.source, PREVIEW, prefix)),
            source_alt=_esc(f"Original: {spec.source}"),
            thumb=_esc(thumb),
            thumb_alt=_esc(f"Thumbnail of {spec.source}"),
            url=_esc(origin + thumb),
            django=_esc(django_tag(spec)),
            python=_esc(python_call(spec, origin + prefix)),
        )
        return self.html("thumbsvc playground", main, spec, prefix, current="page")

    async def grid(self, request: Request) -> Response:
        check_host(request)
        sources = list_sources(self.root)
        prefix = request.scope.get("root_path", "")
        try:
            spec = self.parse({**GRID_DEFAULT_QUERY, **request.query_params}, sources)
        except ValueError as exc:
            return Response(f"{exc}\n", status_code=400, media_type="text/plain", headers=page_headers())
        fixed = {k: v for k, v in spec.options.items() if k not in ("fit", "gravity")}
        rows: list[tuple[str, str, Any]] = [(g, g, g) for g in GRAVITIES]
        if isinstance(spec.options.get("gravity"), tuple):
            fx, fy = spec.options["gravity"]
            rows.append((f"focal point {fmt(fx)}, {fmt(fy)}", FOCAL, (fx, fy)))
        body = []
        for label, control, gravity in rows:
            cells = []
            for fit in FITS:
                cell = Spec(spec.source, _drop_defaults({**fixed, "fit": fit, "gravity": gravity}), control)
                link = f"{prefix}/?{urlencode(spec_query(cell))}"
                src = self.url(cell.source, cell.options, prefix)
                cells.append(
                    f'<td><a href="{_esc(link)}"><img src="{_esc(src)}" alt="{_esc(f"{fit}, {label}")}"></a></td>'
                )
            body.append(f'<tr><th scope="row">{_esc(label)}</th>{"".join(cells)}</tr>')
        head = "".join(f'<th scope="col">{fit}</th>' for fit in FITS)
        main = (
            self.grid_form(spec, sources, prefix)
            + f'<table class="grid"><caption>{_esc(spec.source)} at {_esc(_size_text(spec))}: '
            f"fits across, gravities down; each links to the playground</caption>"
            f"<thead><tr><td></td>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
        )
        return self.html(f"thumbsvc fit {TIMES} gravity grid", main, spec, prefix, current="grid")

    async def sign(self, request: Request) -> Response:
        check_host(request)
        if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
            return self.json({"error": "send the form as application/json"}, 415)
        raw = await request.body()
        if len(raw) > MAX_SIGN_BODY_BYTES:
            return self.json({"error": "request too large"}, 413)
        try:
            fields = json.loads(raw)
            if not isinstance(fields, dict):
                raise ValueError("send a JSON object of form fields")
            spec = self.parse(fields, [])
        except ValueError as exc:  # json.JSONDecodeError is a ValueError
            return self.json({"error": str(exc)}, 400)
        prefix = request.scope.get("root_path", "")
        origin = f"{request.url.scheme}://{request.url.netloc}"
        path = self.url(spec.source, spec.options, prefix)
        return self.json(
            {
                "path": path,
                "url": origin + path,
                "original": self.url(spec.source, PREVIEW, prefix),
                "source_info": await self.describe(spec.source),
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

    def parse(self, params: Mapping[str, Any], sources: list[str]) -> Spec:
        return parse_spec(
            params, default_source=sources[0] if sources else "", max_output_px=self.settings.max_output_px
        )

    def url(self, source: str, options: Mapping[str, Any], prefix: str) -> str:
        return prefix + self.thumbnailer.sign(source, make_options(**options))

    async def describe(self, source: str) -> str:
        try:
            facts = await self.thumbnailer.describe(source)
        except ThumbError as exc:
            return f"cannot read this source: {exc.public_message}"
        return f"{facts.width} {TIMES} {facts.height} px · {facts.format} · {_kilobytes(facts.nbytes)}"

    def html(self, title: str, main: str, spec: Spec, prefix: str, *, current: str) -> Response:
        script = f'<script src="{_esc(prefix)}/_dev/static/playground.js" defer></script>' if current == "page" else ""
        body = self.templates["base.html"].substitute(
            title=_esc(title),
            heading=_esc(title),
            prefix=_esc(prefix),
            script=script,
            nav=self.nav(prefix, spec, current=current),
            main_class="layout" if current == "page" else "grid-view",
            main=main,
        )
        return HTMLResponse(body, headers=page_headers())

    def json(self, content: dict[str, Any], status_code: int = 200) -> Response:
        return JSONResponse(content, status_code=status_code, headers=page_headers())

    def nav(self, prefix: str, spec: Spec, *, current: str) -> str:
        links = (
            ("page", "/", urlencode(spec_query(spec)), "Playground"),
            ("grid", "/_dev/grid", urlencode(grid_query(spec)), f"Fit {TIMES} gravity grid"),
        )
        return "".join(
            f'<a id="nav-{key}" href="{_esc(f"{prefix}{path}?{query}")}"'
            f"{' aria-current=page' if key == current else ''}>{label}</a>"
            for key, path, query, label in links
        )

    def controls(self, spec: Spec, sources: list[str]) -> dict[str, str]:
        query = spec_query(spec)
        gravities = [(g, g) for g in GRAVITIES] + [(FOCAL, "focal point")]
        formats = [("", "as the source")] + [(f, "auto (by Accept)" if f == "auto" else f) for f in FORMATS]
        dprs = [(d, d) for d in (*DPRS, *([query["dpr"]] if query["dpr"] not in DPRS else []))]
        return {
            "source_options": _options(_with(sources, spec.source), spec.source),
            "w": _esc(query["w"]),
            "h": _esc(query["h"]),
            "max_px": str(self.settings.max_output_px),
            "fit_options": _options([(f, f) for f in FITS], query["fit"]),
            "g_options": _options(gravities, query["g"]),
            "fx": _esc(query.get("fx", "0.5")),
            "fy": _esc(query.get("fy", "0.5")),
            "focal_disabled": "" if spec.gravity == FOCAL else " disabled",
            "f_options": _options(formats, query.get("f", "")),
            "q": _esc(query.get("q", "")),
            "dpr_options": _options(dprs, query["dpr"]),
            "bg": _esc(query.get("bg", "")),
            "up_checked": " checked" if spec.options.get("upscale") else "",
        }

    def grid_form(self, spec: Spec, sources: list[str], prefix: str) -> str:
        query = spec_query(spec)
        hidden = "".join(
            f'<input type="hidden" name="{key}" value="{_esc(query[key])}">'
            for key in ("fx", "fy", "f", "q", "dpr", "bg", "up")
            if key in query
        )
        return (
            f'<form class="grid-form" method="get" action="{_esc(prefix)}/_dev/grid">'
            f'<div><label for="grid-source">Image</label><select id="grid-source" name="source">'
            f"{_options(_with(sources, spec.source), spec.source)}</select></div>"
            f'<div><label for="grid-w">Width</label><input id="grid-w" name="w" type="number" min="1" '
            f'max="{self.settings.max_output_px}" inputmode="numeric" value="{_esc(query["w"])}"></div>'
            f'<div><label for="grid-h">Height</label><input id="grid-h" name="h" type="number" min="1" '
            f'max="{self.settings.max_output_px}" inputmode="numeric" value="{_esc(query["h"])}"></div>'
            f'{hidden}<button type="submit">Show</button></form>'
        )


def check_host(request: Request) -> None:
    """Raise ``Forbidden`` unless the request names this machine: the dev key signs anything asked."""
    if not is_loopback_host(request.url.hostname):
        raise Forbidden(f"playground asked for host {request.url.hostname!r}", public_message="Use a loopback address")


def page_headers() -> dict[str, str]:
    return {"Cache-Control": "no-store", "Content-Security-Policy": CSP}


def _with(sources: list[str], current: str) -> list[tuple[str, str]]:
    names = sources if current in sources else [current, *sources]
    return [(name, name) for name in names]


def _options(choices: list[tuple[str, str]], selected: str) -> str:
    return "".join(
        f'<option value="{_esc(value)}"{" selected" if value == selected else ""}>{_esc(label)}</option>'
        for value, label in choices
    )


def _drop_defaults(options: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in options.items() if (k, v) not in (("fit", "contain"), ("gravity", "center"))}


def _size_text(spec: Spec) -> str:
    width, height = spec.options.get("width", ""), spec.options.get("height", "")
    dpr = spec.options.get("dpr")
    return f"{width}{TIMES}{height}" + (f" @{fmt(dpr)}x" if dpr else "")


def _kilobytes(size: int) -> str:
    return f"{size} B" if size < 1024 else f"{size / 1024:.1f} KB"


def _esc(value: str) -> str:
    return html.escape(value, quote=True)
