"""``thumbsvc serve | url | check-config``: argparse over the library, no logic of its own."""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import math
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from typing import Any

from thumbsvc.client import URLSigner
from thumbsvc.config import ConfigError, Settings
from thumbsvc.options import FITS, FORMATS, GRAVITIES


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = {"serve": serve, "url": url, "check-config": check_config, "placeholders": placeholders}[args.command]
    try:
        return handler(args)
    except ConfigError as exc:
        print(f"thumbsvc: {exc}", file=sys.stderr)
        return 2


def build_parser() -> argparse.ArgumentParser:
    env = os.environ
    parser = argparse.ArgumentParser(prog="thumbsvc", description="On-demand image thumbnails behind signed URLs.")
    commands = parser.add_subparsers(dest="command", required=True)

    serve_cmd = commands.add_parser("serve", help="run the HTTP service (uvicorn)")
    serve_cmd.add_argument("--host", default=env.get("THUMBSVC_HOST", "127.0.0.1"))
    serve_cmd.add_argument("--port", type=int, default=int(env.get("THUMBSVC_PORT", "8000")))
    serve_cmd.add_argument("--workers", type=int, default=int(env.get("THUMBSVC_WORKERS", "1")))
    serve_cmd.add_argument(
        "--limit-max-requests",
        type=int,
        default=int(env.get("THUMBSVC_LIMIT_MAX_REQUESTS", "0")) or None,
        help="recycle a worker after this many requests (0: never)",
    )
    serve_cmd.add_argument("--log-level", default="info")

    url_cmd = commands.add_parser("url", help="print a signed thumbnail URL (key from THUMBSVC_KEY)")
    url_cmd.add_argument("source")
    url_cmd.add_argument("--base-url", default=env.get("THUMBSVC_BASE_URL", "http://127.0.0.1:8000"))
    url_cmd.add_argument("--width", type=int)
    url_cmd.add_argument("--height", type=int)
    url_cmd.add_argument("--fit", choices=FITS, default="contain")
    url_cmd.add_argument("--gravity", default="center", help=f"{', '.join(GRAVITIES)} or X,Y (0-1)")
    url_cmd.add_argument("--crop", help="LEFT,TOP,WIDTH,HEIGHT in source pixels")
    url_cmd.add_argument("--format", choices=FORMATS)
    url_cmd.add_argument("--quality", type=int)
    url_cmd.add_argument("--dpr", type=float, default=1.0)
    url_cmd.add_argument("--background", help="#rrggbb or #rrggbbaa")
    url_cmd.add_argument("--upscale", action="store_true")

    commands.add_parser("check-config", help="validate THUMBSVC_* settings and print them")

    placeholders_cmd = commands.add_parser("placeholders", help="print the ThumbHash and average colour of each image")
    placeholders_cmd.add_argument("folder", help="folder searched for images, recursively")
    return parser


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from thumbsvc.accesslog import logging_config

    settings = Settings.from_env(os.environ)
    if settings.dev_mode:
        if not _is_loopback(args.host):
            raise ConfigError(f"Development mode (no THUMBSVC_KEY) listens on loopback only, not {args.host!r}.")
        if args.workers != 1:
            raise ConfigError("Development mode (no THUMBSVC_KEY) runs one worker: its key is per process.")
        print(f"thumbsvc: development mode on http://{args.host}:{args.port}/ (set THUMBSVC_KEY for production)")
    options: dict[str, Any] = dict(
        app="thumbsvc.app:app_from_env",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        limit_max_requests=args.limit_max_requests,
        log_level=args.log_level,
        log_config=logging_config(settings.log_json),
        access_log=False,  # thumbsvc.access logs every request, with cache status and render time
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=math.ceil(settings.shutdown_timeout_s),
    )
    with _metrics_dir(args.workers):
        if args.workers > 1:
            _run_workers(uvicorn.Config(**options))
        else:
            uvicorn.run(**options)
    return 0


def _run_workers(config: Any) -> None:
    """What ``uvicorn.run`` does for several workers, with TCP_NODELAY on the shared socket.

    uvicorn binds that socket without naming the protocol, so asyncio does not recognise the
    accepted connections as TCP and leaves Nagle's algorithm on: a response written as headers
    then body then waits for the client's delayed ACK (40 ms per request on Linux). Accepted
    connections inherit TCP_NODELAY from the listening socket.
    """
    import socket

    from uvicorn.supervisors import Multiprocess

    sock = config.bind_socket()
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    Multiprocess(config, sockets=[sock]).run()


@contextlib.contextmanager
def _metrics_dir(workers: int) -> Iterator[None]:
    """Set up prometheus-client's multi-process mode for several workers, before any worker starts.

    An operator's ``PROMETHEUS_MULTIPROC_DIR`` is emptied of an earlier run's files (they would be
    added in); without one, a private temporary directory is made and removed at exit.
    """
    from thumbsvc.metrics import prepare_multiprocess_dir

    configured = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if configured:
        prepare_multiprocess_dir(configured)
        yield
        return
    if workers <= 1:
        yield
        return
    path = tempfile.mkdtemp(prefix="thumbsvc-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path  # inherited by the workers
    try:
        yield
    finally:
        del os.environ["PROMETHEUS_MULTIPROC_DIR"]
        shutil.rmtree(path, ignore_errors=True)


def url(args: argparse.Namespace) -> int:
    key = os.environ.get("THUMBSVC_KEY")
    if not key:
        raise ConfigError("Config 'THUMBSVC_KEY' is not set: 'thumbsvc url' needs the key to sign with.")
    gravity: object = args.gravity
    if "," in args.gravity:
        gravity = tuple(float(v) for v in args.gravity.split(","))
    crop = tuple(int(v) for v in args.crop.split(",")) if args.crop else None
    signer = URLSigner(key=key, base_url=args.base_url)
    try:
        print(
            signer.url(
                args.source,
                width=args.width,
                height=args.height,
                fit=args.fit,
                gravity=gravity,
                crop=crop,
                format=args.format,
                quality=args.quality,
                dpr=args.dpr,
                background=args.background,
                upscale=args.upscale,
            )
        )
    except ValueError as exc:
        print(f"thumbsvc: {exc}", file=sys.stderr)
        return 2
    return 0


def check_config(args: argparse.Namespace) -> int:
    settings = Settings.from_env(os.environ)
    mode = "development" if settings.dev_mode else "production"
    print(f"thumbsvc: configuration OK ({mode} mode)")
    print(settings)
    return 0


def placeholders(args: argparse.Namespace) -> int:
    from thumbsvc.placeholders import backfill

    return backfill(args.folder)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
