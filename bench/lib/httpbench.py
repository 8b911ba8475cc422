"""The HTTP harness of ``bench http`` and ``bench gallery``: servers side by side, keep-alive clients, verified answers.

For each number of concurrent keep-alive clients and each round, every server gets a warm-up and
then a fixed window of load from fresh connections, servers alternating in order from round to
round. A response counts only once verified: status 200, ``image/jpeg``, body length equal to
Content-Length, and the body decodes (Pillow, full decode) to the expected size (exact for
thumbsvc; 1 px of slack on the free axis of thumbor's ``fit-in``). Per round: thumbnails/s, the
CPU the server's processes used in the window (cores, per process: it shows a worker left idle),
thumbnails per core-second, p50/p99 latency of verified answers, the count of each non-200
status (503s above all), peak RSS, renders and decodes (from thumbsvc's /metrics); and the
ratios to thumbor in the same round, per second and per core-second.

A variant is a ``Variant``: which server settings, which sources, how clients share the URL list.
To add one (an S3 source, say), subclass ``Variant`` and override ``media``, ``settings`` and
``source``; a workload module lists its variants (see ``bench/http.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import hashlib
import io
import itertools
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.lib import cli, results
from bench.lib.photos import SIZES, cache_dir, expected_size, photo_set, source_tag
from bench.lib.procs import RSSSampler, cpu_seconds, machine_info, tree_commit
from bench.lib.servers import Server, ThumborServer, ThumbsvcServer, thumbor
from bench.lib.stats import quantile

FOLDERS = 400  # directory names (links to one folder of photos) that make every URL fresh
CACHES_OFF = {
    "THUMBSVC_CACHE_BYTES": "0",
    "THUMBSVC_SOURCE_CACHE_BYTES": "0",
    "THUMBSVC_DECODED_CACHE_BYTES": "0",
}


class Variant:
    """Cold renders of the photo set from a local media root: the base every variant changes a part of."""

    name = "cold"
    # Gallery-like: one queue of URLs that all clients take from in turn (a page's sizes arrive close
    # together). Otherwise each client walks a range of fresh URLs of its own, so no two requests in
    # flight are ever identical and single flight has nothing to merge.
    shared_queue = False
    # Whether thumbor can serve this variant (from the same media root).
    thumbor = True

    def settings(self, media: Path) -> dict[str, str]:
        """Return thumbsvc's settings for this variant (its key is added by the server)."""
        return {"THUMBSVC_MEDIA_ROOT": str(media), **CACHES_OFF}

    def media(self, photos: list[Path]) -> Path:
        """Return a media root holding ``photos/<name>`` and FOLDERS directory links to it (built once)."""
        root = cache_dir() / (
            "media-" + hashlib.blake2b("".join(source_tag(p) for p in photos).encode(), digest_size=4).hexdigest()
        )
        (root / "photos").mkdir(parents=True, exist_ok=True)
        for src in photos:
            dest = root / "photos" / src.name
            if not dest.exists() or dest.stat().st_size != src.stat().st_size:
                shutil.copyfile(src, dest)
        for index in range(FOLDERS):
            link = root / f"g{index:04d}"
            if not link.is_symlink():
                link.symlink_to("photos", target_is_directory=True)
        return root

    def source(self, folder: str, photo: Path) -> str:
        """Return the source reference of ``photo`` under directory name ``folder``, as a URL carries it."""
        return f"{folder}/{photo.name}"


class Gallery(Variant):
    """Gallery pages: a page's three sizes one after another from a shared queue; result cache off only."""

    name = "gallery"
    shared_queue = True

    def settings(self, media: Path) -> dict[str, str]:
        return {"THUMBSVC_MEDIA_ROOT": str(media), "THUMBSVC_CACHE_BYTES": "0"}


@dataclass(frozen=True)
class Target:
    """One thumbnail URL and what its answer must look like."""

    path: str
    size: tuple[int, int]
    tolerance: int  # pixels of rounding slack per axis


@dataclass
class Sample:
    start: float
    end: float
    target: int
    ok: bool
    digest: str = ""


@dataclass
class Window:
    samples: list[Sample] = field(default_factory=list)
    bodies: dict[tuple[int, str], bytes] = field(default_factory=dict)
    statuses: collections.Counter[str] = field(default_factory=collections.Counter)
    problems: list[str] = field(default_factory=list)
    process_cores: list[float] = field(default_factory=list)
    driver_cores: float = 0.0


def upright_size(path: Path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as image:
        orientation = image.getexif().get(0x0112, 1)
        return image.size if orientation < 5 else image.size[::-1]


async def drive(
    server: Server,
    targets: list[Target],
    clients: int,
    warmup_s: float,
    duration_s: float,
    cursor: Iterator[int] | None,
) -> Window:
    """Run ``clients`` keep-alive clients against ``server``: warm-up, then a measured window.

    With ``cursor``, clients take the next URL from it in turn; without, client i walks its own range.
    """
    window = Window()
    loop = asyncio.get_running_loop()
    t_start = loop.time() + warmup_s
    t_end = t_start + duration_s

    async def client(index: int) -> None:
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        own = itertools.count(index * len(targets) // clients)
        async with httpx.AsyncClient(base_url=server.base, limits=limits, timeout=30.0) as http:
            while loop.time() < t_end:
                target_index = next(cursor if cursor is not None else own) % len(targets)
                target = targets[target_index]
                began = loop.time()
                try:
                    response = await http.get(target.path)
                except httpx.HTTPError as exc:
                    if began >= t_start:
                        window.statuses[type(exc).__name__] += 1
                    window.problems.append(f"{target.path}: {type(exc).__name__}")
                    window.samples.append(Sample(began, loop.time(), target_index, False))
                    continue
                ended = loop.time()
                body = response.content
                if t_start <= began and ended <= t_end:
                    window.statuses[str(response.status_code)] += 1
                ok = (
                    response.status_code == 200
                    and response.headers.get("content-type") == "image/jpeg"
                    and int(response.headers.get("content-length", -1)) == len(body)
                )
                if not ok:
                    window.problems.append(
                        f"{target.path}: {response.status_code} {response.headers.get('content-type')}"
                    )
                digest = hashlib.blake2b(body, digest_size=16).hexdigest()
                if ok and (target_index, digest) not in window.bodies:
                    window.bodies[(target_index, digest)] = body
                window.samples.append(Sample(began, ended, target_index, ok, digest))

    cpu_before: dict[int, float] = {}

    async def mark() -> None:
        nonlocal cpu_before
        await asyncio.sleep(max(0.0, t_start - loop.time()))
        cpu_before = cpu_seconds(server.pid)

    driver_before = time.process_time()
    marker = asyncio.ensure_future(mark())
    await asyncio.gather(*(client(i) for i in range(clients)))
    await marker
    cpu_after = cpu_seconds(server.pid)
    window.driver_cores = (time.process_time() - driver_before) / (duration_s + warmup_s)
    window.samples = [s for s in window.samples if s.start >= t_start and s.end <= t_end]
    window.process_cores = sorted(
        ((cpu_after[pid] - cpu_before.get(pid, 0.0)) / duration_s for pid in cpu_after), reverse=True
    )
    return window


def verify(window: Window, targets: list[Target], verified: dict[tuple[int, str], bool]) -> None:
    """Decode every distinct body once; mark each sample ok only if its body checks out."""
    from PIL import Image

    for key, body in window.bodies.items():
        if key in verified:
            continue
        target = targets[key[0]]
        try:
            with Image.open(io.BytesIO(body)) as image:
                image.load()
                fmt, size = image.format, image.size
        except Exception as exc:
            window.problems.append(f"{target.path}: does not decode ({exc})")
            verified[key] = False
            continue
        good = (
            fmt == "JPEG"
            and abs(size[0] - target.size[0]) <= target.tolerance
            and abs(size[1] - target.size[1]) <= target.tolerance
        )
        if not good:
            window.problems.append(f"{target.path}: {fmt} {size}, expected {target.size}")
        verified[key] = good
    for sample in window.samples:
        sample.ok = sample.ok and verified.get((sample.target, sample.digest), False)


def run_round(
    server: Server,
    targets: list[Target],
    clients: int,
    args: argparse.Namespace,
    cursor: Iterator[int] | None,
    verified: dict[tuple[int, str], bool],
) -> dict[str, Any]:
    before = server.counters()
    with RSSSampler(server.pid) as rss:
        window = asyncio.run(drive(server, targets, clients, args.warmup, args.duration, cursor))
    after = server.counters()
    work = {name: after[name] - before.get(name, 0.0) for name in after}  # warm-up included: per render is what counts
    verify(window, targets, verified)
    good = [s for s in window.samples if s.ok]
    latencies = [(s.end - s.start) * 1000 for s in good]
    cores = sum(window.process_cores)
    return {
        "thumbs_per_s": round(len(good) / args.duration, 2),
        "thumbs_per_core_s": round(len(good) / args.duration / cores, 2) if cores else None,
        "server_cores": round(cores, 2),
        "process_cores": [round(c, 2) for c in window.process_cores],
        "verified": len(good),
        "failed": len(window.samples) - len(good),
        "statuses": dict(window.statuses),
        "status_503": window.statuses.get("503", 0),
        "p50_ms": round(statistics.median(latencies), 1) if latencies else None,
        "p99_ms": round(quantile(latencies, 0.99), 1) if latencies else None,
        "driver_cores": round(window.driver_cores, 2),
        "peak_rss_mib": round(rss.peak_total_kib / 1024, 1),
        "peak_process_rss_mib": round(rss.peak_process_kib / 1024, 1),
        "renders": work.get("renders"),
        "decodes": work.get("decodes"),
        "problems": sorted(set(window.problems))[:10],
    }


def make_servers(variant: Variant, media: Path, args: argparse.Namespace) -> list[Server]:
    servers: list[Server] = []
    for workers in args.thumbsvc_workers:
        suffix = f"-w{workers}" if workers != 1 else ""
        servers.append(ThumbsvcServer(f"thumbsvc{suffix}", args.tree, variant.settings(media), workers))
        for name, tree, settings in args.alt:
            merged = {**variant.settings(media), **settings}
            servers.append(ThumbsvcServer(f"thumbsvc:{name}{suffix}", tree or args.tree, merged, workers))
    if args.thumbor_processes and variant.thumbor:
        rival = thumbor(args.thumbor_processes, media)
        if rival is not None:
            servers.append(rival)
    return servers


def targets_for(server: Server, variant: Variant, photos: list[Path]) -> list[Target]:
    sizes = {photo: upright_size(photo) for photo in photos}
    slack = 1 if isinstance(server, ThumborServer) else 0
    return [
        Target(
            server.path(variant.source(f"g{folder:04d}", photo), w, h, fit),
            expected_size(*sizes[photo], w, h, fit),
            slack if fit == "contain" else 0,
        )
        for folder in range(FOLDERS)
        for photo in photos
        for (w, h, fit) in SIZES
    ]


def run_variant(
    variant: Variant, photos: list[Path], args: argparse.Namespace, logs: Path, result: results.Result
) -> None:
    media = variant.media(photos)
    servers = make_servers(variant, media, args)
    print(f"[{variant.name}] starting {', '.join(s.name for s in servers)} on 127.0.0.1 ...")
    started: list[Server] = []
    try:
        for server in servers:
            server.start(logs / f"{variant.name}-{server.name}.log")
            started.append(server)
        plans = {server.name: targets_for(server, variant, photos) for server in servers}
        cursors = {server.name: itertools.count() for server in servers}
        verified: dict[str, dict[tuple[int, str], bool]] = {server.name: {} for server in servers}
        for clients in args.clients:
            rounds: dict[str, list[dict[str, Any]]] = {server.name: [] for server in servers}
            for rnd in range(args.rounds):
                for server in servers if rnd % 2 == 0 else servers[::-1]:
                    cursor = cursors[server.name] if variant.shared_queue else None
                    r = run_round(server, plans[server.name], clients, args, cursor, verified[server.name])
                    rounds[server.name].append(r)
                    per_render = (
                        f" decodes/render {r['decodes'] / r['renders']:.2f}" if r["decodes"] and r["renders"] else ""
                    )
                    print(
                        f"  {variant.name} c={clients} round {rnd + 1}: {server.name:16} {r['thumbs_per_s']:6.1f}/s"
                        f" {r['thumbs_per_core_s']}/core-s cores {r['process_cores']}"
                        f" p50 {r['p50_ms']} p99 {r['p99_ms']} ms"
                        f" rss {r['peak_rss_mib']} MiB 503s {r['status_503']} failed {r['failed']}{per_render}"
                        + (f" {r['problems'][:2]}" if r["problems"] else "")
                    )
            record(result, variant.name, clients, servers, rounds)
    finally:
        for server in started:
            server.stop()


def record(
    result: results.Result,
    variant: str,
    clients: int,
    servers: list[Server],
    rounds: Mapping[str, list[dict[str, Any]]],
) -> None:
    prefix = f"{variant}.c{clients}"
    rival = next((s.name for s in servers if isinstance(s, ThumborServer)), None)
    for server in servers:
        series = rounds[server.name]
        key = f"{prefix}.{server.name}"
        result.add(f"{key}.thumbs_per_s", [r["thumbs_per_s"] for r in series], "thumbs/s", "higher")
        result.add(f"{key}.thumbs_per_core_s", [r["thumbs_per_core_s"] for r in series], "thumbs/core-s", "higher")
        result.add(f"{key}.server_cores", [r["server_cores"] for r in series], "cores", "higher")
        result.add(f"{key}.p99_ms", [r["p99_ms"] for r in series], "ms", "lower")
        result.add(f"{key}.status_503", [r["status_503"] for r in series], "count", "lower")
        result.add(f"{key}.failed", [r["failed"] for r in series], "count", "lower")
        result.add(f"{key}.peak_rss_mib", [r["peak_rss_mib"] for r in series], "MiB", "lower")
        if all(r["renders"] for r in series) and all(r["decodes"] is not None for r in series):
            result.add(f"{key}.decodes_per_render", [r["decodes"] / r["renders"] for r in series], "decodes", "lower")
        if rival and server.name != rival:
            pairs = list(zip(series, rounds[rival], strict=True))
            result.add(
                f"{key}/{rival}.thumbs_ratio",
                [a["thumbs_per_s"] / b["thumbs_per_s"] if b["thumbs_per_s"] else None for a, b in pairs],
                "x",
                "higher",
            )
            result.add(
                f"{key}/{rival}.per_core_ratio",
                [
                    a["thumbs_per_core_s"] / b["thumbs_per_core_s"]
                    if a["thumbs_per_core_s"] and b["thumbs_per_core_s"]
                    else None
                    for a, b in pairs
                ],
                "x",
                "higher",
            )
        result.details.setdefault(variant, {}).setdefault(f"c{clients}", {})[server.name] = series


def main(workload: str, doc: str | None, variants: Mapping[str, Variant], argv: list[str] | None) -> int:
    """The command line of an HTTP workload whose variants are ``variants`` (the first is the default)."""
    parser = cli.parser(workload, doc)
    parser.add_argument("--variant", default=next(iter(variants)), help=f"comma-separated: {', '.join(variants)}")
    parser.add_argument("--set", default="w1", help="photo set (bench.lib.photos; default w1)")
    parser.add_argument("--photos", help="folder of photos to use instead of W1's six corpus photos")
    parser.add_argument("--clients", default="4,8", help="concurrent keep-alive clients, comma-separated (default 4,8)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per server and round")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds before each window")
    parser.add_argument("--thumbsvc-workers", default="1", help="uvicorn worker counts to run, comma-separated")
    parser.add_argument("--thumbor-processes", type=int, default=2, help="thumbor's processes (0: no thumbor)")
    cli.add_tree(parser, "served")
    parser.add_argument(
        "--alt",
        action="append",
        default=[],
        metavar="NAME=[TREE][:VAR=VALUE,...]",
        help="one more thumbsvc server: another checkout and/or other settings"
        " (e.g. nobudget=:THUMBSVC_RENDER_MEMORY_BUDGET=0)",
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.set, args.clients, args.rounds, args.duration, args.warmup = "samples", "1", 1, 1.0, 0.3
    args.tree = args.tree.resolve()
    args.alt = [cli.parse_alt(spec) for spec in args.alt]
    args.clients = [int(c) for c in args.clients.split(",")]
    args.thumbsvc_workers = [int(w) for w in args.thumbsvc_workers.split(",")]
    chosen = [v.strip() for v in args.variant.split(",") if v.strip()]
    unknown = [v for v in chosen if v not in variants]
    if unknown:
        raise SystemExit(f"unknown variant {', '.join(unknown)}: one of {', '.join(variants)}")
    # Stop the servers (finally blocks) on SIGTERM too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    photos = photo_set(args.set, args.photos)
    servers = len(args.thumbsvc_workers) * (1 + len(args.alt)) + (1 if args.thumbor_processes else 0)
    minutes = len(chosen) * len(args.clients) * args.rounds * servers * (args.duration + args.warmup + 1) / 60
    print(f"about {minutes:.1f} minutes of load")

    result = results.Result(workload, sys.argv[1:] if argv is None else list(argv), smoke=args.smoke)
    result.machine = machine_info(args.tree)
    result.settings = {
        "variants": chosen,
        "set": args.set,
        "photos": [p.name for p in photos],
        "clients": args.clients,
        "rounds": args.rounds,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "thumbsvc_workers": args.thumbsvc_workers,
        "thumbor_processes": args.thumbor_processes,
        "alt": {
            name: {"tree": str(tree or args.tree), "commit": tree_commit(tree or args.tree), "settings": s}
            for name, tree, s in args.alt
        },
    }
    with tempfile.TemporaryDirectory(prefix="thumbsvc-bench-http-") as logs:
        for name in chosen:
            run_variant(variants[name], photos, args, Path(logs), result)
    return cli.finish(result, args)
