"""Load benchmark: cache-hit throughput, and cold renders at 1x, 2x and 4x capacity.

Starts ``thumbsvc serve`` on a loopback port with the settings of the environment (plus a
key and a media root), then measures:

(a) cache hits: one warm URL, closed loop (wrk if installed, else an httpx driver);
(b) capacity: cold renders (every URL distinct), closed loop with as many clients as slots;
(c) cold renders offered open-loop at 1x, 2x and 4x that capacity: completed renders/s,
    the share of 503s, p50/p99 of the admitted (200) requests and of the refusals.

Usage::

    python -m bench.load                      # corpus photo if present, else a bundled sample
    python -m bench.load --duration 20 --json bench/results/load.json
    THUMBSVC_RENDER_SLOTS=2 THUMBSVC_QUEUE_SIZE=8 python -m bench.load --source cat.jpg --media-root thumbsvc/samples

Traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx

from bench.stats import quantile
from thumbsvc.client import URLSigner

REPO = Path(__file__).resolve().parent.parent
KEY = "bench-load-key"
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


def summarise(phase: Phase, results: list[tuple[int, float]], elapsed_s: float) -> Phase:
    ok = [latency for status, latency in results if status == 200]
    refused = [latency for status, latency in results if status == 503]
    phase.sent = len(results)
    phase.ok, phase.rejected = len(ok), len(refused)
    phase.other = len(results) - len(ok) - len(refused)
    phase.ok_rps = round(len(ok) / elapsed_s, 2)
    phase.share_503 = round(len(refused) / len(results), 3) if results else math.nan
    phase.p50_ok_ms, phase.p99_ok_ms = (round(quantile(ok, q) * 1000, 1) for q in (0.5, 0.99))
    phase.p50_503_ms, phase.p99_503_ms = (round(quantile(refused, q) * 1000, 1) for q in (0.5, 0.99))
    return phase


# --- the server -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    def __init__(self, media_root: str, workers: int, tree: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ)
        env.update({"THUMBSVC_KEY": KEY, "THUMBSVC_MEDIA_ROOT": media_root})
        argv = [sys.executable, "-m", "thumbsvc.cli", "serve", "--port", str(self.port), "--workers", str(workers)]
        self.process = subprocess.Popen(argv, cwd=tree, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{self.base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.stop()
                raise SystemExit("thumbsvc serve did not start")
            time.sleep(0.1)

    def metrics(self) -> dict[str, float]:
        """The counters this benchmark reads, from /metrics."""
        text = httpx.get(f"{self.base}/metrics", timeout=30).text
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

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def delta(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {name: after[name] - before.get(name, 0.0) for name in after}


# --- drivers --------------------------------------------------------------------------------------


async def closed_loop(base: str, paths: Iterator[str], clients: int, duration_s: float) -> list[tuple[int, float]]:
    """``clients`` clients, each sending its next request as soon as the previous one is answered."""
    results: list[tuple[int, float]] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:
        stop_at = time.monotonic() + duration_s

        async def worker() -> None:
            while time.monotonic() < stop_at:
                started = time.monotonic()
                response = await client.get(next(paths))
                results.append((response.status_code, time.monotonic() - started))

        async with anyio.create_task_group() as tg:
            for _ in range(clients):
                tg.start_soon(worker)
    return results


async def open_loop(base: str, paths: Iterator[str], rate: float, duration_s: float) -> list[tuple[int, float]]:
    """Send requests at ``rate`` per second, evenly spaced, whether or not earlier ones were answered."""
    results: list[tuple[int, float]] = []
    limits = httpx.Limits(max_connections=2000, max_keepalive_connections=200)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:

        async def one(path: str) -> None:
            started = time.monotonic()
            try:
                response = await client.get(path)
                results.append((response.status_code, time.monotonic() - started))
            except httpx.HTTPError:
                results.append((0, time.monotonic() - started))

        count = int(rate * duration_s)
        start = time.monotonic()
        async with anyio.create_task_group() as tg:
            for index in range(count):
                delay = start + index / rate - time.monotonic()
                if delay > 0:
                    await anyio.sleep(delay)
                tg.start_soon(one, next(paths))
    return results


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
    all of them) and the order is shuffled, so every phase gets the same mix of work.
    """
    combos = list(itertools.product(range(widths[0], widths[1] + 1), range(40, 96)))
    random.Random(5).shuffle(combos)
    for width, quality in combos:
        yield signer.path(source, width=width, quality=quality)
    raise SystemExit("ran out of distinct URLs")


def run(args: argparse.Namespace) -> dict[str, Any]:
    signer = URLSigner(key=KEY)
    server = Server(args.media_root, args.workers, Path(args.tree))
    report: dict[str, Any] = {"source": args.source, "settings": settings_in_env(), "workers": args.workers}
    report["widths"] = [args.min_width, args.max_width]
    report["tree"] = args.tree
    report["cpus"] = len(os.sched_getaffinity(0))
    report["loadavg_before"] = round(os.getloadavg()[0], 2)
    try:
        paths = cold_paths(signer, args.source, (args.min_width, args.max_width))
        for _ in range(4):  # warm up: imports, first decode, allocator
            httpx.get(server.base + next(paths), timeout=60).raise_for_status()

        # (a) cache hits
        hit_path = signer.path(args.source, width=300, height=200, fit="cover")
        httpx.get(server.base + hit_path, timeout=60).raise_for_status()
        if args.hits_driver == "wrk" and shutil.which("wrk"):
            rps, p50, p99 = wrk(server.base + hit_path, args.hit_connections, args.duration)
            report["cache_hits"] = {"driver": "wrk", "connections": args.hit_connections, "rps": rps}
            report["cache_hits"].update(p50_ms=p50, p99_ms=p99)
        else:
            results = anyio.run(
                closed_loop, server.base, itertools.repeat(hit_path), args.hit_connections, args.duration
            )
            hits = summarise(Phase("cache hits", None, args.duration), results, args.duration)
            report["cache_hits"] = {"driver": "httpx", "connections": args.hit_connections, "rps": hits.ok_rps}
            report["cache_hits"].update(p50_ms=hits.p50_ok_ms, p99_ms=hits.p99_ok_ms)
        print(f"cache hits: {report['cache_hits']}", flush=True)

        # (b) capacity: closed loop with three times as many clients as render slots, so no slot idles.
        slots = int(os.environ.get("THUMBSVC_RENDER_SLOTS") or len(os.sched_getaffinity(0))) * args.workers
        before = server.metrics()
        started = time.monotonic()
        results = anyio.run(closed_loop, server.base, paths, 3 * slots, args.duration)
        capacity = summarise(Phase("capacity", None, args.duration), results, time.monotonic() - started)
        capacity.server = delta(server.metrics(), before)
        print(f"capacity: {asdict(capacity)}", flush=True)
        phases = [capacity]

        # (c) open loop at multiples of the capacity.
        for factor in args.factors:
            time.sleep(args.pause)  # let the queue empty
            rate = capacity.ok_rps * factor
            before = server.metrics()
            started = time.monotonic()
            results = anyio.run(open_loop, server.base, paths, rate, args.duration)
            phase = summarise(Phase(f"cold {factor}x", round(rate, 2), args.duration), results, args.duration)
            phase.server = delta(server.metrics(), before)
            print(f"{phase.name}: {asdict(phase)}", flush=True)
            phases.append(phase)
        report["phases"] = [asdict(phase) for phase in phases]
        report["loadavg_after"] = round(os.getloadavg()[0], 2)
    finally:
        server.stop()
    return report


def settings_in_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.startswith("THUMBSVC_") and k != "THUMBSVC_KEY"}


def print_table(report: dict[str, Any]) -> None:
    hits = report["cache_hits"]
    print()
    print(f"source: {report['source']}  settings: {report['settings'] or 'defaults'}  workers: {report['workers']}")
    print(f"cpus: {report['cpus']}  load average before/after: {report['loadavg_before']}/{report['loadavg_after']}")
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


def main(argv: list[str] | None = None) -> None:
    corpus = Path(os.environ.get("THUMBSVC_CORPUS") or REPO.parent / "shared" / "corpus") / "photos"
    default_root = str(corpus) if (corpus / CORPUS_PHOTO).is_file() else str(REPO / "thumbsvc" / "samples")
    default_source = CORPUS_PHOTO if (corpus / CORPUS_PHOTO).is_file() else "craft-beer.jpg"
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
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
    parser.add_argument("--tree", default=str(REPO), help="run the server from this checkout (A/B runs)")
    parser.add_argument("--json", help="also write the report to this file")
    args = parser.parse_args(argv)
    report = run(args)
    print_table(report)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
