"""load: cache-hit throughput, and cold renders offered at 1x, 2x and 4x capacity (how load is shed).

Starts one ``thumbsvc serve`` on a loopback port (its defaults, plus ``--set`` settings; nothing
of the runner's own environment), then measures:

(a) cache hits: one warm URL, closed loop (wrk when installed, else an httpx driver, with a line);
(b) capacity: cold renders (every URL distinct, every one decoding the photo: the decoded-source
    cache is off unless ``--set`` turns it on, as with it every width here shares one decode and
    the Python client, not the server, saturates first), closed loop with three clients per slot;
(c) cold renders offered open-loop at 1x, 2x and 4x that capacity: completed renders/s, the share
    of 503s, p50/p99 of the admitted (200) requests and of the refusals, and the server's counters.

    python -m bench load                                  # a 24 MP corpus photo, else a bundled sample
    python -m bench load --set THUMBSVC_QUEUE_SIZE=4 --set THUMBSVC_RENDER_SLOTS=1 --workers 2
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import random
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import anyio
import httpx

from bench.lib import cli, results
from bench.lib.photos import REPO, corpus_photos
from bench.lib.procs import machine_info
from bench.lib.servers import KEY, ThumbsvcServer
from bench.lib.stats import quantile
from thumbsvc.client import URLSigner

CORPUS_PHOTO = "immich__craft-beer.jpg"  # 6000x4000


@dataclass
class Phase:
    name: str
    offered_rps: float | None
    duration_s: float
    sent: int = 0
    ok: int = 0
    rejected: int = 0
    other: int = 0
    ok_rps: float = 0.0
    share_503: float = 0.0
    p50_ok_ms: float = math.nan
    p99_ok_ms: float = math.nan
    p50_503_ms: float = math.nan
    p99_503_ms: float = math.nan
    server: dict[str, float] = field(default_factory=dict)
    client_cores: float = 0.0  # this process's CPU over the phase: near 1, the client is the bottleneck


def summarise(phase: Phase, answers: list[tuple[int, float]], elapsed_s: float) -> Phase:
    ok = [latency for status, latency in answers if status == 200]
    refused = [latency for status, latency in answers if status == 503]
    phase.sent = len(answers)
    phase.ok, phase.rejected = len(ok), len(refused)
    phase.other = len(answers) - len(ok) - len(refused)
    phase.ok_rps = round(len(ok) / elapsed_s, 2)
    phase.share_503 = round(len(refused) / len(answers), 3) if answers else math.nan
    phase.p50_ok_ms, phase.p99_ok_ms = (round(quantile(ok, q) * 1000, 1) for q in (0.5, 0.99))
    phase.p50_503_ms, phase.p99_503_ms = (round(quantile(refused, q) * 1000, 1) for q in (0.5, 0.99))
    return phase


def delta(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {name: after[name] - before.get(name, 0.0) for name in after}


# --- drivers --------------------------------------------------------------------------------------


async def closed_loop(base: str, paths: Iterator[str], clients: int, duration_s: float) -> list[tuple[int, float]]:
    """``clients`` clients, each sending its next request as soon as the previous one is answered."""
    answers: list[tuple[int, float]] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:
        stop_at = time.monotonic() + duration_s

        async def worker() -> None:
            while time.monotonic() < stop_at:
                started = time.monotonic()
                response = await client.get(next(paths))
                answers.append((response.status_code, time.monotonic() - started))

        async with anyio.create_task_group() as tg:
            for _ in range(clients):
                tg.start_soon(worker)
    return answers


async def open_loop(base: str, paths: Iterator[str], rate: float, duration_s: float) -> list[tuple[int, float]]:
    """Send requests at ``rate`` per second, evenly spaced, whether or not earlier ones were answered."""
    answers: list[tuple[int, float]] = []
    limits = httpx.Limits(max_connections=2000, max_keepalive_connections=200)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:

        async def one(path: str) -> None:
            started = time.monotonic()
            try:
                response = await client.get(path)
                answers.append((response.status_code, time.monotonic() - started))
            except httpx.HTTPError:
                answers.append((0, time.monotonic() - started))

        count = int(rate * duration_s)
        start = time.monotonic()
        async with anyio.create_task_group() as tg:
            for index in range(count):
                delay = start + index / rate - time.monotonic()
                if delay > 0:
                    await anyio.sleep(delay)
                tg.start_soon(one, next(paths))
    return answers


def wrk(url: str, connections: int, duration_s: float) -> tuple[float, float, float]:
    """Run wrk against one URL; return requests/s, p50 ms, p99 ms."""
    threads = str(min(2, connections))
    argv = ["wrk", "-t", threads, "-c", str(connections), "-d", f"{int(duration_s)}s", "--latency", url]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def percentile(label: str) -> float:
        value, unit = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    if re.search(r"Non-2xx or 3xx responses", out):
        raise SystemExit(f"wrk saw errors:\n{out}")
    return rps, percentile("50"), percentile("99")


# --- the benchmark --------------------------------------------------------------------------------


def cold_paths(signer: URLSigner, source: str, widths: tuple[int, int]) -> Iterator[str]:
    """An endless supply of distinct thumbnails of one source (every one a cold render).

    Widths stay in one narrow band (by default 300-370 px: a 6000 px photo decodes at 1/8 for
    all of them) and the order is shuffled, so every phase gets the same mix of work. Heights are
    all far taller than any width's box needs (the default fit, contain, is bound by the width),
    so they only make URLs distinct: about 400 000 of them, for capacities of thousands a minute.
    """
    combos = list(itertools.product(range(widths[0], widths[1] + 1), range(40, 96), range(3000, 3100)))
    random.Random(5).shuffle(combos)
    for width, quality, height in combos:
        yield signer.path(source, width=width, height=height, quality=quality)
    raise SystemExit("ran out of distinct URLs")


def metrics(server: ThumbsvcServer) -> dict[str, float]:
    """The counters this workload reads, from /metrics."""
    text = httpx.get(f"{server.base}/metrics", timeout=30).text
    wanted = {
        "thumbsvc_renders_total": "renders",
        'thumbsvc_rejected_total{reason="queue_full"}': "rejected_queue_full",
        'thumbsvc_rejected_total{reason="queue_wait"}': "rejected_queue_wait",
        'thumbsvc_rejected_total{reason="queue_timeout"}': "rejected_queue_timeout",
        'thumbsvc_cache_hits_total{cache="result"}': "result_hits",
        "thumbsvc_render_seconds_sum": "render_seconds_sum",
        "thumbsvc_render_seconds_count": "render_seconds_count",
    }
    values: dict[str, float] = {}
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        if name in wanted:
            values[wanted[name]] = float(value)
    return values


def run(args: argparse.Namespace) -> dict[str, Any]:
    signer = URLSigner(key=KEY)
    settings = {"THUMBSVC_MEDIA_ROOT": args.media_root, "THUMBSVC_DECODED_CACHE_BYTES": "0", **args.settings}
    server = ThumbsvcServer("thumbsvc", args.tree, settings, args.workers)
    server.start()
    server_settings = {k: v for k, v in settings.items() if k != "THUMBSVC_MEDIA_ROOT"}
    report: dict[str, Any] = {"source": args.source, "settings": server_settings, "workers": args.workers}
    report["widths"] = [args.min_width, args.max_width]
    report["cpus"] = len(os.sched_getaffinity(0))
    try:
        paths = cold_paths(signer, args.source, (args.min_width, args.max_width))
        for _ in range(4):  # warm up: imports, first decode, allocator
            httpx.get(server.base + next(paths), timeout=60).raise_for_status()

        # (a) cache hits
        hit_path = signer.path(args.source, width=300, height=200, fit="cover")
        httpx.get(server.base + hit_path, timeout=60).raise_for_status()
        driver = args.hits_driver
        if driver == "wrk" and not shutil.which("wrk"):
            print("cache hits: wrk is not installed (apt-get install wrk); driving them with httpx instead")
            driver = "httpx"
        if driver == "wrk":
            rps, p50, p99 = wrk(server.base + hit_path, args.hit_connections, args.duration)
            report["cache_hits"] = {"driver": "wrk", "connections": args.hit_connections, "rps": rps}
            report["cache_hits"].update(p50_ms=p50, p99_ms=p99)
        else:
            answers = anyio.run(
                closed_loop, server.base, itertools.repeat(hit_path), args.hit_connections, args.duration
            )
            hits = summarise(Phase("cache hits", None, args.duration), answers, args.duration)
            report["cache_hits"] = {"driver": "httpx", "connections": args.hit_connections, "rps": hits.ok_rps}
            report["cache_hits"].update(p50_ms=hits.p50_ok_ms, p99_ms=hits.p99_ok_ms)
        print(f"cache hits: {report['cache_hits']}", flush=True)

        # (b) capacity: closed loop with three times as many clients as render slots, so no slot idles.
        slots = int(args.settings.get("THUMBSVC_RENDER_SLOTS") or len(os.sched_getaffinity(0))) * args.workers
        before = metrics(server)
        started = time.monotonic()
        answers = anyio.run(closed_loop, server.base, paths, 3 * slots, args.duration)
        capacity = summarise(Phase("capacity", None, args.duration), answers, time.monotonic() - started)
        capacity.server = delta(metrics(server), before)
        print(f"capacity: {asdict(capacity)}", flush=True)
        phases = [capacity]

        # (c) open loop at multiples of the capacity.
        for factor in args.factors:
            time.sleep(args.pause)  # let the queue empty
            rate = max(capacity.ok_rps, 0.5) * factor
            before = metrics(server)
            client_cpu = time.process_time()
            answers = anyio.run(open_loop, server.base, paths, rate, args.duration)
            phase = summarise(Phase(f"cold {factor:g}x", round(rate, 2), args.duration), answers, args.duration)
            phase.server = delta(metrics(server), before)
            phase.client_cores = round((time.process_time() - client_cpu) / args.duration, 2)
            if phase.client_cores > 0.9:
                print(f"{phase.name}: the client used {phase.client_cores} cores: its latencies are its own queue")
            print(f"{phase.name}: {asdict(phase)}", flush=True)
            phases.append(phase)
        report["phases"] = [asdict(phase) for phase in phases]
    finally:
        server.stop()
    return report


def print_table(report: dict[str, Any]) -> None:
    hits = report["cache_hits"]
    print()
    print(f"source: {report['source']}  settings: {report['settings'] or 'defaults'}  workers: {report['workers']}")
    print(f"cpus: {report['cpus']}")
    print(
        f"cache hits ({hits['driver']}, {hits['connections']} connections): "
        f"{hits['rps']:.0f} req/s, p50 {hits['p50_ms']:.2f} ms, p99 {hits['p99_ms']:.2f} ms"
    )
    print()
    print(
        "| phase | offered req/s | 200/s | 503 share | p50 200 ms | p99 200 ms | p50 503 ms | p99 503 ms "
        "| renders | mean render ms |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for phase in report["phases"]:
        offered = "closed loop" if phase["offered_rps"] is None else f"{phase['offered_rps']:.1f}"
        server = phase["server"]
        count = server.get("render_seconds_count", 0)
        mean_render_ms = f"{server['render_seconds_sum'] / count * 1000:.0f}" if count else "-"
        print(
            f"| {phase['name']} | {offered} | {phase['ok_rps']:.2f} | {phase['share_503']:.1%} "
            f"| {phase['p50_ok_ms']} | {phase['p99_ok_ms']} | {phase['p50_503_ms']} | {phase['p99_503_ms']} "
            f"| {server.get('renders', 0):.0f} | {mean_render_ms} |"
        )


def main(argv: list[str] | None = None) -> int:
    corpus = corpus_photos()
    default_root = str(corpus) if (corpus / CORPUS_PHOTO).is_file() else str(REPO / "thumbsvc" / "samples")
    default_source = CORPUS_PHOTO if (corpus / CORPUS_PHOTO).is_file() else "craft-beer.jpg"
    parser = cli.parser("load", __doc__)
    parser.add_argument("--media-root", default=default_root)
    parser.add_argument("--source", default=default_source)
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per phase")
    parser.add_argument("--pause", type=float, default=3.0, help="seconds between phases")
    parser.add_argument("--factors", type=float, nargs="+", default=[1.0, 2.0, 4.0])
    parser.add_argument("--hit-connections", type=int, default=32)
    parser.add_argument("--hits-driver", choices=["wrk", "httpx"], default="wrk")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--min-width", type=int, default=300, help="narrowest cold thumbnail")
    parser.add_argument("--max-width", type=int, default=370, help="widest cold thumbnail")
    parser.add_argument(
        "--set", action="append", default=[], metavar="THUMBSVC_VAR=VALUE", help="a setting of the server (repeatable)"
    )
    cli.add_tree(parser, "served")
    args = parser.parse_args(argv)
    if args.smoke:
        args.media_root, args.source = str(REPO / "thumbsvc" / "samples"), "craft-beer.jpg"
        args.duration, args.pause, args.factors, args.hit_connections = 1.0, 0.2, [2.0], 4
    args.tree = args.tree.resolve()
    args.settings = dict(item.split("=", 1) for item in args.set)
    if any("=" not in item for item in args.set):
        raise SystemExit("--set takes THUMBSVC_VAR=VALUE")
    result = results.Result("load", sys.argv[1:] if argv is None else list(argv), smoke=args.smoke)
    result.machine = machine_info(args.tree)
    report = run(args)
    print_table(report)
    result.settings = {k: v for k, v in report.items() if k not in ("cache_hits", "phases")}
    hits = report["cache_hits"]
    result.add("cache_hits.rps", [hits["rps"]], "req/s", "higher")
    result.add("cache_hits.p99_ms", [hits["p99_ms"]], "ms", "lower")
    for phase in report["phases"]:
        key = phase["name"].replace(" ", "_")
        result.add(f"{key}.ok_per_s", [phase["ok_rps"]], "thumbs/s", "higher")
        result.add(f"{key}.share_503", [phase["share_503"]], "share", "lower")
        result.add(f"{key}.p99_ok_ms", [phase["p99_ok_ms"]], "ms", "lower")
    result.details = {"cache_hits": hits, "phases": report["phases"]}
    return cli.finish(result, args)
