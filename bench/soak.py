"""Hostile-traffic soak: healthy thumbnails while attackers send what issue 14 lists, against a run without them.

Each phase starts a fresh ``thumbsvc serve`` on 127.0.0.1 (so no cache carries over) with
a local media root and one allowed origin on loopback (``tests/origin.py``), runs the same
closed loop of healthy requests for ``--seconds``, and in the hostile phases runs the
attackers beside it:

  bombs       the crafted files of tests/hostile.py (PNG text and chunk bombs, JPEG marker,
              metadata, fill and scan bombs, 1.6 M GIF frames, GIF comment blocks, WebP and
              AVIF frame tables) from the media root: each must be a 413 or 422
  signatures  padded, re-spelled and flipped signatures of valid URLs (403) and dot or empty
              segments in media-root sources (400)
  desync      an origin answering with an extra response in the same write, or junk past a
              short Content-Length, then a fetch of another source from it: the answer must be
              that source's own image (a wrong image is counted)
  slowloris   sockets that send a request head one byte every few seconds, never finishing
  stall       sources on a second allowed origin (127.0.0.2, the attacker's) that send headers
              and one chunk, then nothing (one new every --stall-interval seconds): phase
              ``hostile`` only, so ``hostile-no-stall`` shows what the stalls add (they hold
              that host's fetch places, never render places nor other hosts' fetches)

Healthy traffic: ``--clients`` threads in a process of their own (the attackers have another,
the origin runs in the parent), each asking for local thumbnails (JPEG, PNG, WebP photos) and
remote ones from the same origin, every URL new (no result-cache hit). Reported
per phase: healthy throughput, p50/p99 latency and the statuses seen; per attacker the
statuses; the server's peak RSS (VmHWM); and for each hostile phase the ratios to the
baseline. Results go where every workload's go (``--out``, else ``$THUMBSVC_BENCH_OUT``, else the
cache folder), never into the repository.

    python -m bench soak                           # three phases of 60 s: about 3.5 minutes
    python -m bench soak --seconds 20 --phases baseline,hostile
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import multiprocessing
import os
import socket
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from multiprocessing.queues import Queue
from pathlib import Path

import httpx
from PIL import Image

from bench.lib import cli
from bench.lib import results as result_files
from bench.lib.stats import quantile
from tests import hostile
from tests.helpers import make_photo
from tests.live import serve_in_process
from tests.origin import OriginHandler, OriginServer, body, short_then_junk, with_extra_response
from thumbsvc.client import URLSigner
from thumbsvc.signing import PathSigner

KEY = "soak-key-not-secret"
PHASES = ("baseline", "hostile-no-stall", "hostile")
GREEN, BLUE, RED = (20, 200, 40), (20, 40, 220), (220, 30, 30)
# The crafted files (tests/hostile.py) and the arguments that make them costly, all under the 25 MB cap.
BOMBS = {
    "ztxt.png": (hostile.png_ztxt_bomb, ()),
    "chunks.png": (hostile.png_empty_chunks, (1_000_000,)),
    "iccp.png": (hostile.png_iccp_bomb, (2000,)),
    "app0.jpg": (hostile.jpeg_empty_app0, (20_000_000,)),
    "exif.jpg": (hostile.jpeg_exif_segments, (300_000,)),
    "fill.jpg": (hostile.jpeg_fill_bytes, (20_000_000,)),
    "scans.jpg": (hostile.jpeg_scans, (1000,)),
    "frames.gif": (hostile.gif_frames, (1_600_000,)),
    "comment.gif": (hostile.gif_comment_blocks, (10_000_000,)),
    "frames.webp": (hostile.webp_animation, (400_000,)),
    "frames.avif": (hostile.avif_frames, (2_000_000,)),
}


@dataclass
class Tally:
    """What one kind of traffic saw: statuses and, for healthy traffic, latencies."""

    statuses: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, status: str, latency_s: float | None = None) -> None:
        with self.lock:
            self.statuses[status] += 1
            if latency_s is not None:
                self.latencies.append(latency_s)


def solid(colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (320, 240), colour).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def stall(handler: OriginHandler) -> None:
    """Headers and one chunk of a 2 MB body, then nothing for a minute."""
    handler.send_response(200)
    handler.send_header("Content-Length", str(2_000_000))
    handler.end_headers()
    handler.wfile.write(b"\xff\xd8\xff\xe0" + bytes(1000))
    handler.wfile.flush()
    time.sleep(60)


def build_media(root: Path) -> list[str]:
    """Write the healthy photos and the bombs; return the healthy sources."""
    (root / "photos").mkdir(parents=True)
    photos = {"photos/a.jpg": ((1600, 1200), "JPEG"), "photos/b.png": ((800, 600), "PNG")}
    photos["photos/c.webp"] = ((1200, 900), "WEBP")
    for name, (size, fmt) in photos.items():
        (root / name).write_bytes(make_photo(size, fmt=fmt))
    for name, (build, args) in BOMBS.items():
        (root / name).write_bytes(build(*args))
    return list(photos)


def green(data: bytes) -> bool:
    pixel = Image.open(io.BytesIO(data)).convert("RGB").getpixel((8, 8))
    return isinstance(pixel, tuple) and pixel[1] > 150 and pixel[0] < 90 and pixel[2] < 110


class Traffic:
    """Threads sending one kind of request in a loop until stopped, and what they saw."""

    def __init__(self, base: str, origin: str, photos: list[str]) -> None:
        self.base = base
        self.origin = origin  # the allowed origin's base URL
        self.photos = photos
        self.signer = URLSigner(key=KEY)
        self.stop = threading.Event()
        self.counter = itertools.count()
        self.tallies: dict[str, Tally] = {}
        self.threads: list[threading.Thread] = []

    def tally(self, name: str) -> Tally:
        return self.tallies.setdefault(name, Tally())

    def unique(self) -> int:
        return next(self.counter)

    def loop(self, name: str, step: Callable[[httpx.Client], None]) -> None:
        def run() -> None:
            with httpx.Client(base_url=self.base, timeout=60) as client:
                while not self.stop.is_set():
                    try:
                        step(client)
                    except httpx.HTTPError as exc:
                        self.tally(name).add(type(exc).__name__)

        thread = threading.Thread(target=run, name=name, daemon=True)
        thread.start()
        self.threads.append(thread)

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=70)


class Healthy(Traffic):
    """Local thumbnails (JPEG, PNG, WebP) and remote ones from the allowed origin, every URL new."""

    def step(self, client: httpx.Client) -> None:
        number = self.unique()
        # Every URL new (no result-cache hit): 600 widths times 400 heights.
        width, height = 120 + number % 600, 90 + (number // 600) % 400
        remote = number % 4 == 3
        source = f"{self.origin}/green.jpg?n={number}" if remote else self.photos[number % len(self.photos)]
        started = time.perf_counter()
        response = client.get(self.signer.path(source, width=width, height=height, fit="cover"))
        elapsed = time.perf_counter() - started
        status = str(response.status_code)
        if response.status_code == 200 and remote and not green(response.content):
            status = "200-wrong-image"
        # Latencies of served thumbnails only: a quick 503 is no service.
        self.tally("healthy").add(status, elapsed if status == "200" else None)


def run_healthy(base: str, origin: str, photos: list[str], clients: int, seconds: float, out: Queue[object]) -> None:
    """Run the healthy clients for ``seconds`` (in a process of their own: the attackers' threads would share
    its interpreter lock) and put their statuses and latencies on ``out``."""
    traffic = Healthy(base, origin, photos)
    for _ in range(clients):
        traffic.loop("healthy", traffic.step)
    started = time.perf_counter()
    time.sleep(seconds)
    traffic.finish()
    tally = traffic.tally("healthy")
    out.put({"seconds": time.perf_counter() - started, "statuses": dict(tally.statuses), "latencies": tally.latencies})


class Hostile(Traffic):
    """The attackers; each method is one loop step (``slowloris`` runs a thread of its own)."""

    def __init__(self, base: str, origin: str, photos: list[str], args: argparse.Namespace, stall_origin: str) -> None:
        super().__init__(base, origin, photos)
        self.args = args
        self.stall_origin = stall_origin  # another host: the per-host fetch bound keeps it from the healthy origin
        self.paths = PathSigner([KEY])

    def bombs(self, client: httpx.Client) -> None:
        for name in BOMBS:
            if self.stop.is_set():
                return
            response = client.get(self.signer.path(name, width=300, height=200, fit="cover"))
            self.tally("bombs").add(str(response.status_code))

    def signatures(self, client: httpx.Client) -> None:
        path = self.signer.path(self.photos[0], width=200 + self.unique() % 300)
        signature, payload = path[1:].split("/", 1)
        for bad in (signature + "=", signature + "=" * 200, signature[:-1] + chr(ord(signature[-1]) ^ 1)):
            self.tally("signatures").add(str(client.get(f"/{bad}/{payload}").status_code))
        alias = payload.replace("photos/", "photos/%2F", 1)  # correctly signed, but a second path to the file
        self.tally("signatures").add(str(client.get(f"/{self.paths.sign(alias)}/{alias}").status_code))
        time.sleep(0.05)

    def desync(self, client: httpx.Client) -> None:
        number = self.unique()
        for attack in ("/smuggle.jpg", "/short-junk.jpg"):
            client.get(self.signer.path(f"{self.origin}{attack}?n={number}", width=64))
            response = client.get(self.signer.path(f"{self.origin}/green.jpg?d={number}{attack}", width=64))
            if response.status_code != 200:
                self.tally("desync").add(f"next-source-{response.status_code}")
            else:
                self.tally("desync").add("next-source-right" if green(response.content) else "next-source-WRONG-IMAGE")
        time.sleep(0.1)

    def stalls(self, client: httpx.Client) -> None:
        # Each in its own thread, so one is started every interval however long the last one hangs.
        number = self.unique()

        def one() -> None:
            started = time.perf_counter()
            try:
                with httpx.Client(base_url=self.base, timeout=60) as own:
                    response = own.get(self.signer.path(f"{self.stall_origin}/stall.jpg?n={number}", width=64))
                status = str(response.status_code)
            except httpx.HTTPError as exc:  # the phase ended and the server with it
                status = type(exc).__name__
            self.tally("stall").add(f"{status} after {time.perf_counter() - started:.0f} s")

        threading.Thread(target=one, daemon=True).start()
        time.sleep(self.args.stall_interval)

    def slowloris(self) -> None:
        """Keep ``--slowloris`` sockets each sending a request head one byte every 5 s."""
        host, port = self.base.removeprefix("http://").split(":")
        head = b"GET /healthz HTTP/1.1\r\nHost: soak\r\nX-Padding: " + b"a" * 10_000

        def run() -> None:
            socks: list[tuple[socket.socket, int]] = []
            while not self.stop.is_set():
                while len(socks) < self.args.slowloris:
                    try:
                        socks.append((socket.create_connection((host, int(port)), timeout=5), 0))
                        self.tally("slowloris").add("opened")
                    except OSError as exc:
                        self.tally("slowloris").add(f"refused {type(exc).__name__}")
                        break
                kept = []
                for sock, sent in socks:
                    try:
                        sock.send(head[sent : sent + 1])
                        kept.append((sock, sent + 1))
                    except OSError:
                        self.tally("slowloris").add("closed by server")
                        sock.close()
                socks = kept
                self.stop.wait(5)
            for sock, _ in socks:
                sock.close()

        thread = threading.Thread(target=run, name="slowloris", daemon=True)
        thread.start()
        self.threads.append(thread)

    def start(self, kinds: list[str]) -> None:
        for kind in kinds:
            if kind == "slowloris":
                self.slowloris()
            else:
                self.loop(kind, getattr(self, kind))


def run_hostile(
    base: str,
    origins: tuple[str, str],
    photos: list[str],
    kinds: list[str],
    args: argparse.Namespace,
    out: Queue[object],
) -> None:
    """Run the attackers of ``kinds`` for ``args.seconds`` and put what each saw on ``out``."""
    attackers = Hostile(base, origins[0], photos, args, stall_origin=origins[1])
    attackers.start(kinds)
    time.sleep(args.seconds)
    attackers.finish()
    out.put({name: dict(tally.statuses) for name, tally in attackers.tallies.items()})


def run_traffic(
    base: str, origins: tuple[str, str], photos: list[str], kinds: list[str], args: argparse.Namespace
) -> dict[str, object]:
    """Run the healthy clients and the attackers of ``kinds`` for one phase, each in a process of its own.

    Apart from each other and from the origin (which runs in this process), so neither waits on the
    other's interpreter lock: what the healthy clients see is the server's doing.
    """
    context = multiprocessing.get_context("spawn")
    healthy_out: Queue[object] = context.Queue()
    hostile_out: Queue[object] = context.Queue()
    processes = [
        context.Process(target=run_healthy, args=(base, origins[0], photos, args.clients, args.seconds, healthy_out))
    ]
    if kinds:
        processes.append(context.Process(target=run_hostile, args=(base, origins, photos, kinds, args, hostile_out)))
    for process in processes:
        process.start()
    result = healthy_out.get(timeout=args.seconds + 120)
    attackers = hostile_out.get(timeout=120) if kinds else {}
    for process in processes:
        process.join(timeout=30)
    assert isinstance(result, dict)
    elapsed, statuses, latencies = result["seconds"], result["statuses"], result["latencies"]
    return {
        "seconds": round(elapsed, 1),
        "healthy": {
            "requests": sum(statuses.values()),
            "served_200_per_s": round(statuses.get("200", 0) / elapsed, 2),
            "p50_ms": round(quantile(latencies, 0.5) * 1000, 1),
            "p99_ms": round(quantile(latencies, 0.99) * 1000, 1),
            "max_ms": round(max(latencies, default=0.0) * 1000, 1),
            "statuses": statuses,
        },
        "attackers": attackers,
    }


def peak_rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


@contextmanager
def origin_servers() -> Iterator[tuple[OriginServer, OriginServer]]:
    """The healthy origin (also the desynchronising one: that attack is on the next source of its own host)
    and the attacker's stalling origin, on another loopback address."""
    with OriginServer("127.0.0.1") as origin, OriginServer("127.0.0.2") as stalling:
        origin.route("/green.jpg", body(solid(GREEN)))
        origin.route("/smuggle.jpg", with_extra_response(solid(RED), solid(BLUE)))
        origin.route("/short-junk.jpg", short_then_junk(solid(RED), b"HTTP/1.1 999 junk\r\n" * 40, missing=0))
        stalling.route("/stall.jpg", stall)
        yield origin, stalling


def run_phase(name: str, root: Path, photos: list[str], args: argparse.Namespace) -> dict[str, object]:
    kinds = {"baseline": [], "hostile-no-stall": ["bombs", "signatures", "desync", "slowloris"]}
    kinds["hostile"] = [*kinds["hostile-no-stall"], "stalls"]
    if args.only:
        kinds = {phase: [kind for kind in chosen if kind in args.only.split(",")] for phase, chosen in kinds.items()}
    with ExitStack() as stack:
        origin, stalling = stack.enter_context(origin_servers())
        env = {
            "THUMBSVC_KEY": KEY,
            "THUMBSVC_MEDIA_ROOT": str(root),
            "THUMBSVC_ALLOWED_SOURCES": f"{origin.url('/')},{stalling.url('/')}",
            "THUMBSVC_ALLOW_PRIVATE_NETWORKS": "127.0.0.1/32,127.0.0.2/32",
            "THUMBSVC_RENDER_SLOTS": str(args.slots),
        }
        env.update(item.split("=", 1) for item in args.env)
        base, pid = stack.enter_context(serve_in_process(env, "--log-level", "warning"))
        cpu_before = cpu_seconds(pid)
        result = run_traffic(base, (origin.url(""), stalling.url("")), photos, kinds[name], args)
        result["server_cpu_cores"] = round((cpu_seconds(pid) - cpu_before) / float(str(result["seconds"])), 2)
        result["server_peak_rss_mib"] = round(peak_rss_bytes(pid) / (1 << 20), 1)
        result["hostile_kinds"] = kinds[name]
    return result


def main(argv: list[str] | None = None) -> int:
    parser = cli.parser("soak", __doc__)
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each phase (default 60)")
    parser.add_argument("--phases", default=",".join(PHASES), help=f"comma-separated, of {', '.join(PHASES)}")
    parser.add_argument("--clients", type=int, default=4, help="healthy requests in flight (default 4)")
    parser.add_argument("--slots", type=int, default=2, help="THUMBSVC_RENDER_SLOTS (default 2)")
    parser.add_argument("--slowloris", type=int, default=100, help="slow sockets kept open (default 100)")
    parser.add_argument("--stall-interval", type=float, default=1.0, help="seconds between new stalled fetches")
    parser.add_argument("--only", help="run only these attackers (bombs, signatures, desync, slowloris, stalls)")
    parser.add_argument("--env", action="append", default=[], metavar="VAR=VALUE", help="a server setting, repeatable")
    args = parser.parse_args(argv)
    if args.smoke:  # every phase and attacker once, briefly: the figures mean nothing
        args.seconds, args.clients, args.slowloris = 2.0, 1, 5
    phases = [phase.strip() for phase in args.phases.split(",") if phase.strip()]
    if unknown := set(phases) - set(PHASES):
        parser.error(f"unknown phases: {', '.join(sorted(unknown))}")
    report: dict[str, object] = {"benchmark": "soak", "args": {k: str(v) for k, v in vars(args).items()}}
    results: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory(prefix="thumbsvc-soak-") as tmp:
        root = Path(tmp) / "media"
        photos = build_media(root)
        for phase in phases:
            print(f"soak: phase {phase} ({args.seconds:.0f} s)", flush=True)
            results[phase] = run_phase(phase, root, photos, args)
            print(json.dumps(results[phase]), flush=True)
    report["phases"] = results
    baseline = results.get("baseline")
    if baseline is not None:
        base_healthy = baseline["healthy"]
        assert isinstance(base_healthy, dict)
        for phase, result in results.items():
            healthy = result["healthy"]
            assert isinstance(healthy, dict)
            if phase != "baseline" and base_healthy["served_200_per_s"]:
                result["vs_baseline"] = {
                    "served_200_per_s": round(healthy["served_200_per_s"] / base_healthy["served_200_per_s"], 2),
                    "p99": round(healthy["p99_ms"] / base_healthy["p99_ms"], 2) if base_healthy["p99_ms"] else None,
                }
    written = result_files.Result("soak", sys.argv[1:] if argv is None else list(argv), smoke=args.smoke)
    for phase, outcome in results.items():
        healthy = outcome["healthy"]
        assert isinstance(healthy, dict)
        peak = outcome.get("server_peak_rss_mib")
        written.add(f"{phase}.healthy_200_per_s", [healthy["served_200_per_s"]], "requests/s", "higher")
        written.add(f"{phase}.healthy_p99_ms", [healthy["p99_ms"]], "ms", "lower")
        written.add(f"{phase}.peak_rss_mib", [peak if isinstance(peak, float | int) else None], "MiB", "lower")
    written.details = report
    out = result_files.write(written, args.out)
    print(f"{'phase':<18} {'200/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'non-200':>8} {'cores':>6} {'peak MiB':>9}")
    for phase, result in results.items():
        healthy = result["healthy"]
        assert isinstance(healthy, dict)
        failed = sum(count for status, count in healthy["statuses"].items() if status != "200")
        print(
            f"{phase:<18} {healthy['served_200_per_s']:>7} {healthy['p50_ms']:>7} {healthy['p99_ms']:>7} "
            f"{failed:>8} {result['server_cpu_cores']:>6} {result['server_peak_rss_mib']:>9}"
        )
    print(f"soak: results in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
