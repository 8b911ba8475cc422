"""The HTTP harness of ``bench http`` and ``bench gallery``: servers side by side, keep-alive clients, verified answers.

For each number of concurrent keep-alive clients and each round, every server gets a warm-up and
then a fixed window of load from fresh connections, servers alternating in order from round to
round. A response counts only once verified: status 200, ``image/jpeg``, body length equal to
Content-Length, and the body decodes (Pillow, full decode) to the expected size (exact for
thumbsvc; 1 px of slack on the free axis of thumbor's ``fit-in``). Per round: thumbnails/s, the
CPU the server's processes used in the window (cores, per process: it shows a worker left idle),
thumbnails per core-second and its inverse (the server's CPU ms per thumbnail), p50/p99 latency
of verified answers, the count of each non-200 status (503s above all), peak RSS, and from
thumbsvc's /metrics: renders, decodes, single-flight joins, and the fetch cost (``thumbsvc_fetch_seconds``
sum / count: wall ms per fetch, by source kind); the CPU per fetch of a variant's own origin
process where it has one; and the ratios to thumbor in the same round, per second and per core-second.

A variant is a ``Variant``: which server settings, which sources, which URLs in which order. To
add one, subclass ``Variant`` and override ``settings`` and ``source`` (and ``start``/``stop`` for
an origin of its own, ``plan`` for other URLs); a workload module lists its variants (see
``bench/http.py``). Several variants in one run are interleaved round by round, every server up at
once, so a variant's figures sit beside another's from the same minutes (``compared_with``).
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
from collections.abc import Iterator, Mapping, Sequence
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


@dataclass(frozen=True)
class Planned:
    """One thumbnail of a variant's URL plan: the source reference, the photo behind it, the box, the ``bg:``."""

    source: str
    photo: Path
    width: int
    height: int
    fit: str
    background: str | None = None


def first_index(client: int, clients: int, total: int) -> int:
    """Where client ``client`` of ``clients`` starts walking a plan of ``total`` URLs (each walks on from there)."""
    return client * total // clients


class Variant:
    """Cold renders of the photo set from a local media root: the base every variant changes a part of."""

    name = "cold"
    # Gallery-like: one queue of URLs that all clients take from in turn (a page's sizes arrive close
    # together). Otherwise each client walks a range of fresh URLs of its own, so no two requests in
    # flight are ever identical and single flight has nothing to merge.
    shared_queue = False
    # Whether thumbor can serve this variant (from the same media root).
    thumbor = True
    # The variant this one's server CPU per thumbnail is set against, round by round, when both run.
    compared_with: str | None = None

    def missing(self, tree: Path) -> str | None:
        """Return why this variant cannot run here (a library not installed), or None."""
        return None

    def start(self, photos: list[Path], clients: int, logs: Path) -> Path:
        """Make the sources of ``plan(photos, n)`` for every n up to ``clients`` ready; return the media root."""
        return self.media(photos)

    def stop(self) -> None:
        """Stop what ``start`` started (whatever part of it did start)."""

    def helper_pids(self) -> list[int]:
        """Processes that serve this variant's sources (an origin, a store): their CPU is reported per fetch."""
        return []

    def facts(self) -> dict[str, Any]:
        """What a reader of the result needs to know about the sources (never a secret)."""
        return {"sources": "media root", "fresh_by": f"{FOLDERS} directory links"}

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

    def plan(self, photos: list[Path], clients: int) -> list[Planned]:
        """Return every thumbnail ``clients`` clients ask for, in the order they walk it.

        Client i starts at ``first_index(i, clients, len(plan))`` and walks on; clients go at about
        one pace, so any two stay about ``len(plan) / clients`` apart. Here the plan goes folder by
        folder through FOLDERS directory names, so two clients never ask for the same source file
        at once: no single flight (of a render or a fetch) has anything to merge.
        """
        return [
            Planned(self.source(f"g{folder:04d}", photo), photo, w, h, fit)
            for folder in range(FOLDERS)
            for photo in photos
            for (w, h, fit) in SIZES
        ]


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
        own = itertools.count(first_index(index, clients, len(targets)))
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


def helper_cpu_s(pids: Sequence[int]) -> float:
    return sum(sum(cpu_seconds(pid).values()) for pid in pids)


def fetch_cost(work: Mapping[str, float]) -> dict[str, Any]:
    """From the /metrics deltas of a round: fetches, wall ms per fetch (all kinds, and by kind), fetches per render."""
    fetches = sum(v for k, v in work.items() if k.startswith("fetches."))
    seconds = sum(v for k, v in work.items() if k.startswith("fetch_s."))
    kinds = [name.removeprefix("fetches.") for name, count in work.items() if name.startswith("fetches.") and count]
    by_kind = {kind: round(work.get(f"fetch_s.{kind}", 0.0) / work[f"fetches.{kind}"] * 1000, 2) for kind in kinds}
    renders = work.get("renders")
    return {
        "fetches": fetches,
        "fetch_ms": round(seconds / fetches * 1000, 2) if fetches else None,
        "fetch_ms_by_kind": by_kind,
        "fetches_per_render": round(fetches / renders, 3) if renders else None,
    }


def run_round(
    server: Server,
    targets: list[Target],
    clients: int,
    args: argparse.Namespace,
    cursor: Iterator[int] | None,
    verified: dict[tuple[int, str], bool],
    helpers: Sequence[int] = (),
) -> dict[str, Any]:
    before = server.counters()
    helper_before = helper_cpu_s(helpers)
    with RSSSampler(server.pid) as rss:
        window = asyncio.run(drive(server, targets, clients, args.warmup, args.duration, cursor))
    helper_s = helper_cpu_s(helpers) - helper_before
    after = server.counters()
    work = {name: after[name] - before.get(name, 0.0) for name in after}  # warm-up included: per render is what counts
    verify(window, targets, verified)
    good = [s for s in window.samples if s.ok]
    latencies = [(s.end - s.start) * 1000 for s in good]
    cores = sum(window.process_cores)
    fetched = fetch_cost(work)
    return {
        "thumbs_per_s": round(len(good) / args.duration, 2),
        "thumbs_per_core_s": round(len(good) / args.duration / cores, 2) if cores else None,
        "cpu_ms_per_thumb": round(cores * args.duration * 1000 / len(good), 2) if good and cores else None,
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
        "joins": work.get("joins"),
        **fetched,
        # The origin's own CPU (the HTTP origin's, moto's) over the same span as the fetch counts.
        "origin_cpu_ms_per_fetch": round(helper_s * 1000 / fetched["fetches"], 2)
        if helpers and fetched["fetches"]
        else None,
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
    if args.thumbor_processes and not variant.thumbor:
        print(f"thumbor: skipped for {variant.name} (its file loader reads only the local media root)")
    elif args.thumbor_processes:
        rival = thumbor(args.thumbor_processes, media)
        if rival is not None:
            servers.append(rival)
    return servers


def targets_for(server: Server, variant: Variant, photos: list[Path], clients: int) -> list[Target]:
    sizes = {photo: upright_size(photo) for photo in photos}
    slack = 1 if isinstance(server, ThumborServer) else 0
    return [
        Target(
            server.path(p.source, p.width, p.height, p.fit, p.background),
            expected_size(*sizes[p.photo], p.width, p.height, p.fit),
            slack if p.fit == "contain" else 0,
        )
        for p in variant.plan(photos, clients)
    ]


@dataclass
class Lane:
    """One server of one variant: its URLs and the bodies it has verified (per number of clients), its queue."""

    variant: Variant
    server: Server
    photos: list[Path]
    cursor: Iterator[int] = field(default_factory=itertools.count)
    plans: dict[int, list[Target]] = field(default_factory=dict)
    verified: dict[int, dict[tuple[int, str], bool]] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str]:
        return (self.variant.name, self.server.name)

    def targets(self, clients: int) -> list[Target]:
        if clients not in self.plans:
            self.plans[clients] = targets_for(self.server, self.variant, self.photos, clients)
            self.verified[clients] = {}
        return self.plans[clients]


def run_variants(
    variants: Sequence[Variant], photos: list[Path], args: argparse.Namespace, logs: Path, result: results.Result
) -> None:
    """Run ``variants`` side by side: every server of every variant up at once, each round going through
    all of them (in reverse order every other round), so variants are compared in the same minutes."""
    lanes: list[Lane] = []
    opened: list[Variant] = []
    started: list[Server] = []
    most = max(args.clients)
    try:
        for variant in variants:
            reason = variant.missing(args.tree)
            if reason:
                print(f"{variant.name}: skipped, {reason}")
                result.details.setdefault("skipped", {})[variant.name] = reason
                continue
            opened.append(variant)
            media = variant.start(photos, most, logs)
            result.settings.setdefault("sources", {})[variant.name] = variant.facts()
            servers = make_servers(variant, media, args)
            print(f"[{variant.name}] starting {', '.join(s.name for s in servers)} on 127.0.0.1 ...")
            for server in servers:
                server.start(logs / f"{variant.name}-{server.name}.log")
                started.append(server)
                lanes.append(Lane(variant, server, photos))
        for clients in args.clients:
            rounds: dict[tuple[str, str], list[dict[str, Any]]] = {lane.key: [] for lane in lanes}
            for rnd in range(args.rounds):
                for lane in lanes if rnd % 2 == 0 else lanes[::-1]:
                    cursor = lane.cursor if lane.variant.shared_queue else None
                    helpers = lane.variant.helper_pids()
                    targets = lane.targets(clients)
                    r = run_round(lane.server, targets, clients, args, cursor, lane.verified[clients], helpers)
                    rounds[lane.key].append(r)
                    print(f"  {lane.variant.name} c={clients} round {rnd + 1}: {lane.server.name:16} " + round_line(r))
            for variant in opened:
                own = [lane for lane in lanes if lane.variant is variant]
                series = {lane.server.name: rounds[lane.key] for lane in own}
                record(result, variant.name, clients, [lane.server for lane in own], series)
            record_against(result, clients, lanes, rounds)
            print("\n".join(fetch_table(clients, lanes, rounds)))
    finally:
        for server in started:
            server.stop()
        for variant in opened:
            variant.stop()


def round_line(r: Mapping[str, Any]) -> str:
    per_render = f" decodes/render {r['decodes'] / r['renders']:.2f}" if r["decodes"] and r["renders"] else ""
    origin = f" origin {r['origin_cpu_ms_per_fetch']} cpu-ms/fetch" if r["origin_cpu_ms_per_fetch"] is not None else ""
    return (
        f"{r['thumbs_per_s']:6.1f}/s {r['thumbs_per_core_s']}/core-s ({r['cpu_ms_per_thumb']} cpu-ms)"
        f" cores {r['process_cores']} p50 {r['p50_ms']} p99 {r['p99_ms']} ms"
        f" fetch {r['fetch_ms']} ms{origin} rss {r['peak_rss_mib']} MiB"
        f" 503s {r['status_503']} failed {r['failed']} joins {r['joins'] or 0:.0f}{per_render}"
        + (f" {r['problems'][:2]}" if r["problems"] else "")
    )


def _median(values: Sequence[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return statistics.median(kept) if kept else None


def _against(lane: Lane, names: set[str], rounds: Mapping[tuple[str, str], list[dict[str, Any]]]) -> str | None:
    base = lane.variant.compared_with
    return base if base is not None and base in names and (base, lane.server.name) in rounds else None


def cpu_deltas(mine: Sequence[Mapping[str, Any]], theirs: Sequence[Mapping[str, Any]]) -> list[float | None]:
    """The server's CPU ms per thumbnail in ``mine`` less that in ``theirs``, round by round (same minutes)."""
    return [
        a["cpu_ms_per_thumb"] - b["cpu_ms_per_thumb"]
        if a["cpu_ms_per_thumb"] is not None and b["cpu_ms_per_thumb"] is not None
        else None
        for a, b in zip(mine, theirs, strict=True)
    ]


def record_against(
    result: results.Result, clients: int, lanes: Sequence[Lane], rounds: Mapping[tuple[str, str], list[dict[str, Any]]]
) -> None:
    """For a variant run beside the one it is ``compared_with``: its server's extra CPU ms per thumbnail, per round."""
    names = {lane.variant.name for lane in lanes}
    for lane in lanes:
        base = _against(lane, names, rounds)
        if base is None:
            continue
        deltas = cpu_deltas(rounds[lane.key], rounds[(base, lane.server.name)])
        result.add(
            f"{lane.variant.name}.c{clients}.{lane.server.name}/{base}.cpu_ms_delta", deltas, "cpu-ms/thumb", "lower"
        )


def fetch_table(
    clients: int, lanes: Sequence[Lane], rounds: Mapping[tuple[str, str], list[dict[str, Any]]]
) -> list[str]:
    """The fetch cost of every thumbsvc lane at ``clients`` clients: medians over the rounds."""
    names = {lane.variant.name for lane in lanes}

    def cell(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}"

    lines = [
        f"\nfetch cost per request, {clients} clients (medians of rounds)",
        f"{'variant':12} {'server':16} {'thumbs/core-s':>13} {'cpu-ms/thumb':>12} {'vs':>6} {'extra cpu-ms':>12}"
        f" {'fetch ms':>9} {'fetches/render':>14} {'origin cpu-ms/fetch':>19} {'joins':>5}",
    ]
    for lane in lanes:
        if not isinstance(lane.server, ThumbsvcServer):
            continue
        series = rounds[lane.key]

        def med(name: str, series: list[dict[str, Any]] = series) -> str:
            return cell(_median([r[name] for r in series]))

        base = _against(lane, names, rounds)
        delta = _median(cpu_deltas(series, rounds[(base, lane.server.name)])) if base else None
        joins = sum(r["joins"] or 0 for r in series)
        lines.append(
            f"{lane.variant.name:12} {lane.server.name:16} {med('thumbs_per_core_s'):>13} {med('cpu_ms_per_thumb'):>12}"
            f" {base or '':>6} {cell(delta):>12} {med('fetch_ms'):>9} {med('fetches_per_render'):>14}"
            f" {med('origin_cpu_ms_per_fetch'):>19} {joins:>5.0f}"
        )
    return lines


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
        if isinstance(server, ThumbsvcServer):
            result.add(f"{key}.cpu_ms_per_thumb", [r["cpu_ms_per_thumb"] for r in series], "cpu-ms/thumb", "lower")
            result.add(f"{key}.fetch_ms", [r["fetch_ms"] for r in series], "ms/fetch", "lower")
            result.add(f"{key}.flight_joins", [r["joins"] for r in series], "count", "lower")
            if any(r["origin_cpu_ms_per_fetch"] is not None for r in series):
                result.add(
                    f"{key}.origin_cpu_ms_per_fetch",
                    [r["origin_cpu_ms_per_fetch"] for r in series],
                    "cpu-ms/fetch",
                    "lower",
                )
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
    parser.add_argument(
        "--variant",
        help=f"comma-separated, run side by side round by round: {', '.join(variants)}"
        f" (default {next(iter(variants))}; with --smoke, all)",
    )
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
    if args.variant is None:
        args.variant = ",".join(variants) if args.smoke else next(iter(variants))
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
    per_variant = len(args.thumbsvc_workers) * (1 + len(args.alt))
    servers = sum(per_variant + (1 if args.thumbor_processes and variants[v].thumbor else 0) for v in chosen)
    minutes = len(args.clients) * args.rounds * servers * (args.duration + args.warmup + 1) / 60
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
        run_variants([variants[name] for name in chosen], photos, args, Path(logs), result)
    return cli.finish(result, args)
