"""``thumbsvc serve | url | check-config``: argparse over the library, no logic of its own.

Every mistake ends the same way: one line on stderr naming the flag or variable to fix, exit status 2.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import Field
from datetime import timedelta
from typing import Any, NoReturn

from thumbsvc.client import DEFAULT_MAX_SIZE, URLSigner
from thumbsvc.config import (
    DEFAULT_BASE_URL,
    PREFIX,
    ClientSettings,
    ConfigError,
    ServerSettings,
    Settings,
    check_unknown,
    describe_keys,
    env_name,
    flag_name,
    parse_field,
    setting_fields,
)
from thumbsvc.options import FITS, FORMATS, GRAVITIES

# The flags of `thumbsvc serve`: each is a ServerSettings field, so it has a variable and a default.
SERVE_FLAGS = {
    "host": "address to listen on (development mode: loopback only)",
    "port": "TCP port to listen on",
    "workers": "worker processes, each with its own caches (docs/deploy.md: one per machine is the default)",
    "limit_max_requests": "recycle a worker after this many requests (0: never)",
    "log_level": "uvicorn's log level: critical, error, warning, info, debug or trace",
}
FORMAT_ALIASES = {"jpg": "jpeg"}


class Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line naming the flag (no usage block above it)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = {"serve": serve, "url": url, "check-config": check_config, "placeholders": placeholders}[args.command]
    try:
        return handler(args)
    except ConfigError as exc:
        print(f"thumbsvc: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (`thumbsvc check-config | head`): not a mistake worth a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def build_parser() -> Parser:
    parser = Parser(prog="thumbsvc", description="On-demand image thumbnails behind signed URLs.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{serve,url,check-config,placeholders}")

    serve_cmd = commands.add_parser("serve", help="run the HTTP service (uvicorn)", description=SERVE_DESCRIPTION)
    fields_by_name = {f.name: f for f in setting_fields(ServerSettings)}
    for name, text in SERVE_FLAGS.items():
        serve_cmd.add_argument(
            flag_name(name), dest=name, metavar=env_name(name), help=_help(text, fields_by_name[name].default, name)
        )

    url_cmd = commands.add_parser(
        "url", help="print a signed thumbnail URL", description="Print a signed thumbnail URL (key from THUMBSVC_KEY)."
    )
    url_cmd.add_argument("source", help="a path under the service's media root, or an http(s):// URL")
    url_cmd.add_argument(
        "--base-url", help=_help("where the service is; a path prefix is allowed", DEFAULT_BASE_URL, "base_url")
    )
    url_cmd.add_argument("--width", type=int, help="box width in CSS pixels (default: none, from the aspect ratio)")
    url_cmd.add_argument("--height", type=int, help="box height in CSS pixels (default: none, from the aspect ratio)")
    url_cmd.add_argument(
        "--fit", choices=FITS, default="contain", help="how the image fills the box (default: contain)"
    )
    url_cmd.add_argument(
        "--gravity", type=_gravity, default="center", help=f"{', '.join(GRAVITIES)} or X,Y in 0-1 (default: center)"
    )
    url_cmd.add_argument(
        "--crop", type=_crop, help="LEFT,TOP,WIDTH,HEIGHT in upright source pixels, before resizing (default: none)"
    )
    url_cmd.add_argument(
        "--format",
        type=str.lower,
        choices=(*FORMATS, *FORMAT_ALIASES),
        help="output format; jpg means jpeg (default: the source's kind)",
    )
    url_cmd.add_argument("--quality", type=int, help="1-100 (default: the format's own)")
    url_cmd.add_argument("--dpr", type=float, default=1.0, help="device pixel ratio, 1-4 (default: 1)")
    url_cmd.add_argument("--background", help="#rrggbb or #rrggbbaa (default: transparent, or white for JPEG)")
    url_cmd.add_argument("--upscale", action="store_true", help="enlarge sources smaller than the box (default: never)")
    url_cmd.add_argument(
        "--trim", type=_trim, help="THRESHOLD or THRESHOLD,#rrggbb: cut uniform borders (default: none)"
    )
    url_cmd.add_argument("--rotate", type=int, choices=(90, 180, 270), help="clockwise, before fitting (default: none)")
    url_cmd.add_argument("--flip", choices=("h", "v", "hv"), help="after the rotation (default: none)")
    url_cmd.add_argument("--grayscale", action="store_true", help="luminance only (default: colour)")
    url_cmd.add_argument("--blur", type=float, help="Gaussian sigma 0.3-50, one decimal (default: none)")
    url_cmd.add_argument("--sharpen", type=float, help="unsharp-mask sigma 0.3-10, one decimal (default: none)")
    url_cmd.add_argument("--watermark", help="a name from the service's THUMBSVC_WATERMARKS (default: none)")
    url_cmd.add_argument(
        "--expires-in", type=int, metavar="SECONDS", help="the URL answers 410 after this many seconds (default: never)"
    )
    url_cmd.add_argument(
        "--max-size",
        metavar="PX",
        help=f"the service's largest output side, after dpr (default: {DEFAULT_MAX_SIZE}; env: THUMBSVC_MAX_OUTPUT_PX)",
    )

    commands.add_parser(
        "check-config",
        help="validate every THUMBSVC_* variable and list the effective settings",
        description="Validate every THUMBSVC_* variable; list each setting with its value and where it came from.",
    )
    placeholders_cmd = commands.add_parser(
        "placeholders",
        help="print the ThumbHash and average colour of each image in a folder",
        description="Print path, ThumbHash, average colour and upright size of each image, for backfilling.",
    )
    placeholders_cmd.add_argument("folder", help="folder searched for images, recursively")
    return parser


SERVE_DESCRIPTION = (
    "Run the service. Every other setting is an environment variable (README.md, 'Settings'); "
    "`thumbsvc check-config` lists them."
)


def _help(text: str, default: object, name: str) -> str:
    return f"{text} (default: {default}; env: {PREFIX}{env_name(name)})".replace("%", "%%")


def serve(args: argparse.Namespace) -> int:
    settings = Settings.from_env(os.environ)
    listen = ServerSettings.from_env(os.environ, {name: getattr(args, name) for name in SERVE_FLAGS})
    from thumbsvc import server  # uvicorn: only once the settings are known to be good

    return server.serve(settings, listen)


def url(args: argparse.Namespace) -> int:
    key = os.environ.get(f"{PREFIX}KEY")
    if key is None:
        raise ConfigError(f"{PREFIX}KEY is not set: 'thumbsvc url' needs the key to sign with.")
    keys = parse_field(_field(Settings, "keys"), key, f"Config '{PREFIX}KEY'")
    client = ClientSettings.from_env(os.environ, {"base_url": args.base_url})
    max_size = DEFAULT_MAX_SIZE
    if args.max_size is not None:
        max_size = parse_field(_field(Settings, "max_output_px"), args.max_size, "Option '--max-size'")
    elif f"{PREFIX}MAX_OUTPUT_PX" in os.environ:
        raw = os.environ[f"{PREFIX}MAX_OUTPUT_PX"]
        max_size = parse_field(_field(Settings, "max_output_px"), raw, f"Config '{PREFIX}MAX_OUTPUT_PX'")
    signer = URLSigner(key=keys, base_url=client.base_url, max_size=max_size)
    if args.expires_in is not None and args.expires_in < 1:
        print(
            f"thumbsvc url: --expires-in must be a whole number of seconds >= 1, not {args.expires_in}", file=sys.stderr
        )
        return 2
    try:
        signed = signer.url(
            args.source,
            width=args.width,
            height=args.height,
            fit=args.fit,
            gravity=args.gravity,
            crop=args.crop,
            format=FORMAT_ALIASES.get(args.format, args.format),
            quality=args.quality,
            dpr=args.dpr,
            background=args.background,
            upscale=args.upscale,
            trim=args.trim,
            rotate=args.rotate or 0,
            flip=args.flip,
            grayscale=args.grayscale,
            blur=args.blur,
            sharpen=args.sharpen,
            watermark=args.watermark,
            expires=timedelta(seconds=args.expires_in) if args.expires_in is not None else None,
        )
    except ValueError as exc:
        print(f"thumbsvc url: {exc}", file=sys.stderr)
        return 2
    print(signed)
    return 0


def placeholders(args: argparse.Namespace) -> int:
    from thumbsvc.placeholders import backfill

    return backfill(args.folder)


def check_config(args: argparse.Namespace) -> int:
    from thumbsvc.server import check_mode

    check_unknown(os.environ)
    settings = Settings.from_env(os.environ)
    server = ServerSettings.from_env(os.environ)
    client = ClientSettings.from_env(os.environ)
    check_mode(settings, server)
    from thumbsvc.service import load_watermarks

    load_watermarks(settings)
    if settings.dev_mode:
        mode = (
            "development mode (no THUMBSVC_KEY): a random key per process, the bundled samples as media root"
            f" ({settings.effective_media_root}), loopback only, no remote sources"
        )
    else:
        mode = f"production mode, {describe_keys(settings.keys)}"
    print(f"thumbsvc: configuration OK: {mode}")
    rows = [
        (
            PREFIX + env_name(f.name),
            describe(obj, f),
            "environment" if PREFIX + env_name(f.name) in os.environ else "default",
        )
        for obj in (settings, server, client)
        for f in setting_fields(type(obj))
    ]
    width = max(len(name) for name, _, _ in rows)
    for name, value, origin in rows:
        print(f"{name:<{width}}  {origin:<11}  {value}")
    return 0


def describe(settings: Any, f: Field[Any]) -> str:
    """Given a settings object and one of its fields, return the effective value in words (never a key)."""
    value = getattr(settings, f.name)
    if f.name == "keys":
        return describe_keys(value) if value else "none: development mode"
    if f.name == "thumbor_key":
        return describe_keys(value) if value else "none: thumbor URLs are not recognised"
    if f.name == "media_root" and value is None:
        root = settings.effective_media_root
        return f"{root} (the bundled samples, development mode)" if root else "none: local sources are off"
    if f.name == "allowed_sources" and value and settings.dev_mode:
        return f"{', '.join(value)} (ignored in development mode)"
    if isinstance(value, tuple):
        return ", ".join(value) or "none"
    if isinstance(value, bool):
        return str(value).lower()
    text = f"{value:g}" if isinstance(value, float) and math.isfinite(value) else str(value)
    shown = f.metadata.get("shown")
    if f.name in ("render_memory_budget", "max_render_memory") and isinstance(settings, Settings):
        return f"{value} ({settings.render_memory_source})"
    if shown and PREFIX + env_name(f.name) not in os.environ:
        text += f" ({shown})"
    return text


def _field(cls: type[Any], name: str) -> Field[Any]:
    return next(f for f in setting_fields(cls) if f.name == name)


def _gravity(text: str) -> str | tuple[float, float]:
    """argparse type of ``--gravity``: a name (the client checks it) or a focal point ``X,Y``."""
    if "," not in text:
        return text
    try:
        x, y = (float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a gravity name or X,Y (two numbers from 0 to 1), not {text!r}"
        ) from None
    if not (0 <= x <= 1 and 0 <= y <= 1):
        raise argparse.ArgumentTypeError(f"a focal point X,Y has both numbers from 0 to 1, not {text!r}")
    return (x, y)


def _trim(text: str) -> int | tuple[int, str]:
    """argparse type of ``--trim``: ``THRESHOLD`` or ``THRESHOLD,#rrggbb`` (the client checks the values)."""
    threshold, _, colour = text.partition(",")
    try:
        value = int(threshold)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected THRESHOLD or THRESHOLD,#rrggbb, not {text!r}") from None
    return (value, colour.strip()) if colour else value


def _crop(text: str) -> tuple[int, int, int, int]:
    """argparse type of ``--crop``: four integers ``LEFT,TOP,WIDTH,HEIGHT``."""
    try:
        left, top, width, height = (int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LEFT,TOP,WIDTH,HEIGHT (four integers), not {text!r}") from None
    return (left, top, width, height)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
