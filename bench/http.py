"""HTTP benchmark: thumbsvc against thumbor 7.8 over loopback, in the same run.

Both servers run on 127.0.0.1 from the same media root (W1 photos). For each number of
concurrent keep-alive clients (default 1, 4, 8) and each round, every server gets a warm-up
and then a fixed window of load from fresh connections, servers alternating in order from
round to round. A response counts only once verified: status 200, ``image/jpeg``, body length
equal to Content-Length, and the body decodes (Pillow, full decode) to the expected size.
Reported per round: thumbnails/s, p50/p99 latency, CPU cores the server used (per process,
which shows a worker left idle), peak RSS; and the ratio to thumbor in the same round.

Variants:
  cold     each client cycles through the 18 W1 URLs, each cycle under a fresh directory name
           and every client in a range of directories of its own, so no two requests in flight
           are ever identical (thumbsvc's single flight has nothing to collapse: every response
           is a render); thumbsvc with THUMBSVC_CACHE_BYTES=0, THUMBSVC_SOURCE_CACHE_BYTES=0 and
           THUMBSVC_DECODED_CACHE_BYTES=0 (where the checkout has it), thumbor with no storage
           and no result storage.
  gallery  "gallery pages": the three sizes of each source are asked for one after the other
           from a shared queue (so close together, in parallel when clients > 1); every page
           uses a fresh directory name for the photos so no page repeats within minutes;
           thumbsvc's source and decoded-source caches on (their default sizes), result cache off.

``--alt NAME=TREE[:VAR=VALUE,...]`` adds a thumbsvc server from another checkout (and/or with other
settings) to the same run, e.g. ``--alt base=/tmp/wt-base`` for a before/after, or
``--alt dc32=$PWD:THUMBSVC_DECODED_CACHE_BYTES=32000000``. Where a checkout has the counters, each
round also records the renders and decodes its server did (``thumbsvc_decodes_total``).

    python -m bench.http                                   # both variants, 1/4/8 clients, 3 rounds
    python -m bench.http --variant cold --clients 4,8 --duration 15 --rounds 5
    python -m bench.http --thumbsvc-workers 1,2 --thumbor-processes 2
    python -m bench.http --variant gallery --tree /tmp/wt-new --alt base=/tmp/wt-base
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import io
import itertools
import json
import os
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

if not __package__:  # pragma: no cover - guard against `python bench/<script>.py`
    raise SystemExit(
        "bench/http.py was imported as the top-level module 'http' because bench/ is on sys.path; "
        "run bench scripts as modules from the repository root, e.g. python -m bench.http"
    )

import httpx
from PIL import Image

from bench.procs import RSSSampler, children, machine_info, popen, venv_python
from bench.stats import quantile, summary
from bench.workloads import REPO, SIZES, cache_dir, expected_size, w1_photos

RESULTS = REPO / "bench" / "results"
BENCH_KEY = "bench-key-not-secret"
GALLERY_DIRS = 400
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Target:
    """One thumbnail URL and what its answer must look like."""

    path: str
    size: tuple[int, int]
    tolerance: int  # pixels of rounding slack per axis on the non-exact side (contain)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def media_root(photos: list[Path]) -> Path:
    """Return a media root holding ``photos/<name>`` plus GALLERY_DIRS directory links to it."""
    root = cache_dir() / "media"
    (root / "photos").mkdir(parents=True, exist_ok=True)
    for src in photos:
        dest = root / "photos" / src.name
        if not dest.exists() or dest.stat().st_size != src.stat().st_size:
            shutil.copyfile(src, dest)
    for index in range(GALLERY_DIRS):
        link = root / f"g{index:04d}"
        if not link.is_symlink():
            link.symlink_to("photos", target_is_directory=True)
    return root


def upright_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        orientation = image.getexif().get(0x0112, 1)
        return image.size if orientation < 5 else image.size[::-1]


class Server:
    name: str
    proc: object

    def start(self, root: Path, log: Path) -> None:
        raise NotImplementedError

    def target(self, folder: str, photo: Path, width: int, height: int, fit: str) -> Target:
        raise NotImplementedError

    def wait_ready(self, path: str, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:  # type: ignore[attr-defined]
                raise SystemExit(f"{self.name} exited at start-up (exit {self.proc.returncode}); see its log")  # type: ignore[attr-defined]
            try:
                if httpx.get(f"{self.base}{path}", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise SystemExit(f"{self.name} not ready after {timeout_s} s")

    def stop(self) -> None:
        proc = self.proc
        if proc.poll() is None:  # type: ignore[attr-defined]
            # The server was started in its own session: its group is exactly it and its workers.
            os.killpg(proc.pid, signal.SIGTERM)  # type: ignore[attr-defined]
            try:
                proc.wait(timeout=15)  # type: ignore[attr-defined]
            except Exception:
                os.killpg(proc.pid, signal.SIGKILL)  # type: ignore[attr-defined]
                proc.wait()  # type: ignore[attr-defined]

    @property
    def pid(self) -> int:
        return int(self.proc.pid)  # type: ignore[attr-defined]


class ThumbsvcServer(Server):
    def __init__(
        self, workers: int, source_cache: bool, tree: Path, label: str = "", env: dict[str, str] | None = None
    ) -> None:
        self.workers = workers
        self.tree = tree
        self.source_cache = source_cache
        self.extra_env = env or {}
        self.name = f"thumbsvc{'-' + label if label else ''}-w{workers}"
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        from thumbsvc.client import URLSigner

        self.signer = URLSigner(key=BENCH_KEY)

    def start(self, root: Path, log: Path) -> None:
        env = {"THUMBSVC_KEY": BENCH_KEY, "THUMBSVC_MEDIA_ROOT": str(root), "THUMBSVC_CACHE_BYTES": "0"}
        env.update(self.extra_env)
        if not self.source_cache:
            env["THUMBSVC_SOURCE_CACHE_BYTES"] = "0"
            # Cold means every cache off; a checkout from before the decoded-source cache refuses the variable.
            if "decoded_cache_bytes" in (self.tree / "thumbsvc" / "config.py").read_text():
                env["THUMBSVC_DECODED_CACHE_BYTES"] = "0"
        argv = [
            sys.executable,
            "-m",
            "thumbsvc.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
            "--log-level",
            "warning",
        ]
        self.proc = popen(argv, env=env, cwd=self.tree, stdout=log.open("wb"), stderr=-2, start_new_session=True)
        self.wait_ready("/healthz")

    def counters(self) -> dict[str, float]:
        """Renders and decodes so far, from /metrics (what the checkout exports of them)."""
        from prometheus_client.parser import text_string_to_metric_families

        found: dict[str, float] = {}
        try:
            text = httpx.get(f"{self.base}/metrics", timeout=10).text
        except httpx.HTTPError:
            return found
        for family in text_string_to_metric_families(text):
            for item in family.samples:
                if item.name in ("thumbsvc_renders_total", "thumbsvc_decodes_total"):
                    found[item.name.removeprefix("thumbsvc_").removesuffix("_total")] = item.value
        return found

    def target(self, folder: str, photo: Path, width: int, height: int, fit: str) -> Target:
        path = self.signer.path(
            f"{folder}/{photo.name}", width=width, height=height, fit=fit, format="jpeg", quality=85
        )
        return Target(path, expected_size(*upright_size(photo), width, height, fit), 0)


class ThumborServer(Server):
    def __init__(self, processes: int) -> None:
        self.processes = processes
        self.name = f"thumbor-p{processes}"
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"

    def start(self, root: Path, log: Path) -> None:
        conf = log.with_suffix(".conf.py")
        conf.write_text(
            "\n".join(
                [
                    "LOADER = 'thumbor.loaders.file_loader'",
                    f"FILE_LOADER_ROOT_PATH = {str(root)!r}",
                    "STORAGE = 'thumbor.storages.no_storage'",
                    "RESULT_STORAGE = 'thumbor.result_storages.no_storage'",
                    "RESPECT_ORIENTATION = True",
                    "ALLOW_UNSAFE_URL = True",
                    "QUALITY = 85",
                    "AUTO_WEBP = False",
                    "SECURITY_KEY = 'bench-key-not-secret'",
                    "",
                ]
            )
        )
        thumbor = str(Path(venv_python("thumbor")).parent / "thumbor")
        argv = [
            thumbor,
            "--ip",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--conf",
            str(conf),
            "--processes",
            str(self.processes),
            "-l",
            "warning",
        ]
        self.proc = popen(argv, stdout=log.open("wb"), stderr=-2, start_new_session=True)
        self.wait_ready("/healthcheck")

    def target(self, folder: str, photo: Path, width: int, height: int, fit: str) -> Target:
        prefix = "fit-in/" if fit == "contain" else ""
        path = f"/unsafe/{prefix}{width}x{height}/{folder}/{photo.name}"
        return Target(path, expected_size(*upright_size(photo), width, height, fit), 1 if fit == "contain" else 0)


# --- load ---------------------------------------------------------------------------------------


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
    problems: list[str] = field(default_factory=list)


def cpu_ticks(pid: int) -> dict[int, int]:
    """Return utime + stime (clock ticks) of every process in the tree of ``pid``."""
    ticks = {}
    for child in children(pid):
        try:
            with open(f"/proc/{child}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            ticks[child] = int(fields[11]) + int(fields[12])
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
    return ticks


async def drive(
    base: str,
    targets: list[Target],
    order: list[int],
    clients: int,
    warmup_s: float,
    duration_s: float,
    shared: bool,
    cursor: itertools.count,
) -> tuple[Window, float, float]:  # type: ignore[type-arg]
    """Run ``clients`` keep-alive clients against ``base``: warm-up, then a measured window."""
    window = Window()
    loop = asyncio.get_running_loop()
    t_start = loop.time() + warmup_s
    t_end = t_start + duration_s

    async def client(index: int) -> None:
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30.0) as http:
            own = itertools.count(index * len(order) // clients)
            while loop.time() < t_end:
                position = next(cursor) if shared else next(own)
                target_index = order[position % len(order)]
                target = targets[target_index]
                began = loop.time()
                try:
                    response = await http.get(target.path)
                except httpx.HTTPError as exc:
                    window.problems.append(f"{target.path}: {type(exc).__name__}")
                    window.samples.append(Sample(began, loop.time(), target_index, False))
                    continue
                ended = loop.time()
                body = response.content
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

    cpu_before: dict[int, int] = {}

    async def mark() -> None:
        nonlocal cpu_before
        await asyncio.sleep(max(0.0, t_start - loop.time()))
        cpu_before = cpu_ticks(server_pid)

    server_pid = drive.server_pid  # type: ignore[attr-defined]
    process_before = time.process_time()
    marker = asyncio.ensure_future(mark())
    await asyncio.gather(*(client(i) for i in range(clients)))
    await marker
    driver_cpu = time.process_time() - process_before
    cpu_after = cpu_ticks(server_pid)
    window.samples = [s for s in window.samples if s.start >= t_start and s.end <= t_end]
    per_process = sorted(
        ((cpu_after.get(pid, 0) - cpu_before.get(pid, 0)) / CLK_TCK / duration_s for pid in cpu_after), reverse=True
    )
    drive.per_process = per_process  # type: ignore[attr-defined]
    return window, driver_cpu / (duration_s + warmup_s), sum(per_process)


def verify(window: Window, targets: list[Target], verified: dict[tuple[int, str], bool]) -> None:
    """Decode every distinct body once; mark each sample ok only if its body checks out."""
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
        dw, dh = abs(size[0] - target.size[0]), abs(size[1] - target.size[1])
        good = fmt == "JPEG" and dw <= target.tolerance and dh <= target.tolerance
        if not good:
            window.problems.append(f"{target.path}: {fmt} {size}, expected {target.size}")
        verified[key] = good
    for sample in window.samples:
        sample.ok = sample.ok and verified.get((sample.target, sample.digest), False)


def run_round(
    server: Server,
    targets: list[Target],
    order: list[int],
    clients: int,
    args: argparse.Namespace,
    shared: bool,
    cursor: itertools.count,
    verified: dict[tuple[int, str], bool],
) -> dict[str, object]:  # type: ignore[type-arg]
    drive.server_pid = server.pid  # type: ignore[attr-defined]
    before = server.counters() if isinstance(server, ThumbsvcServer) else {}
    with RSSSampler(server.pid) as rss:
        window, driver_cores, server_cores = asyncio.run(
            drive(server.base, targets, order, clients, args.warmup, args.duration, shared, cursor)
        )
    after = server.counters() if isinstance(server, ThumbsvcServer) else {}
    # Over warm-up and window alike: what matters is decodes per render.
    work = {name: after[name] - before.get(name, 0.0) for name in after}
    verify(window, targets, verified)
    good = [s for s in window.samples if s.ok]
    latencies = [(s.end - s.start) * 1000 for s in good]
    return {
        "thumbs_per_s": round(len(good) / args.duration, 2),
        "verified": len(good),
        "failed": len(window.samples) - len(good),
        "p50_ms": round(statistics.median(latencies), 1) if latencies else None,
        "p99_ms": round(quantile(latencies, 0.99), 1) if latencies else None,
        "server_cores": round(server_cores, 2),
        # What a core of this machine does: the comparison that holds when servers got unequal cores.
        "thumbs_per_core_s": round(len(good) / args.duration / server_cores, 2) if server_cores else None,
        "process_cores": [round(c, 2) for c in drive.per_process],  # type: ignore[attr-defined]
        "driver_cores": round(driver_cores, 2),
        "peak_rss_mib": round(rss.peak_total_kib / 1024, 1),
        "peak_process_rss_mib": round(rss.peak_process_kib / 1024, 1),
        "renders": work.get("renders"),
        "decodes": work.get("decodes"),
        "problems": sorted(set(window.problems))[:10],
    }


def run_variant(
    variant: str, photos: list[Path], root: Path, args: argparse.Namespace, logs: Path
) -> dict[str, object]:
    gallery = variant == "gallery"
    servers: list[Server] = [ThumbsvcServer(w, source_cache=gallery, tree=args.tree) for w in args.thumbsvc_workers]
    for label, tree, env in args.alt:
        servers += [ThumbsvcServer(w, gallery, tree, label, env) for w in args.thumbsvc_workers]
    servers += [ThumborServer(p) for p in args.thumbor_processes]
    print(f"[{variant}] starting {', '.join(s.name for s in servers)} ...")
    for server in servers:
        server.start(root, logs / f"{variant}-{server.name}.log")
    try:
        folders = [f"g{i:04d}" for i in range(GALLERY_DIRS)]
        plans: dict[str, tuple[list[Target], list[int]]] = {}
        for server in servers:
            targets = [
                server.target(folder, photo, w, h, fit)
                for folder in folders
                for photo in photos
                for (w, h, fit) in SIZES
            ]
            plans[server.name] = (targets, list(range(len(targets))))
        cursors = {server.name: itertools.count() for server in servers}
        verified: dict[str, dict[tuple[int, str], bool]] = {server.name: {} for server in servers}
        levels: list[dict[str, object]] = []
        for clients in args.clients:
            rounds: dict[str, list[dict[str, object]]] = {server.name: [] for server in servers}
            for rnd in range(args.rounds):
                ordered = servers if rnd % 2 == 0 else servers[::-1]
                for server in ordered:
                    targets, order = plans[server.name]
                    result = run_round(
                        server, targets, order, clients, args, gallery, cursors[server.name], verified[server.name]
                    )
                    rounds[server.name].append(result)
                    print(
                        f"  {variant} c={clients} round {rnd + 1}: {server.name:12} {result['thumbs_per_s']:7.1f}/s "
                        f"p50 {result['p50_ms']} ms p99 {result['p99_ms']} ms cores {result['process_cores']} "
                        f"rss {result['peak_rss_mib']} MiB failed {result['failed']}"
                        + (f" decodes/render {result['decodes'] / result['renders']:.2f}" if result["decodes"] else "")  # type: ignore[operator]
                        + (f" {result['problems'][:2]}" if result["problems"] else "")
                    )
            level: dict[str, object] = {"clients": clients, "servers": {}}
            thumbor = next((s.name for s in servers if isinstance(s, ThumborServer)), None)
            for server in servers:
                series = rounds[server.name]
                entry: dict[str, object] = {
                    "thumbs_per_s": summary([r["thumbs_per_s"] for r in series]),  # type: ignore[misc]
                    "p50_ms": summary([r["p50_ms"] for r in series if r["p50_ms"] is not None]),  # type: ignore[misc]
                    "p99_ms": summary([r["p99_ms"] for r in series if r["p99_ms"] is not None]),  # type: ignore[misc]
                    "peak_rss_mib": max(r["peak_rss_mib"] for r in series),  # type: ignore[type-var]
                    "failed": sum(r["failed"] for r in series),  # type: ignore[misc]
                    "rounds": series,
                }
                renders = sum(r["renders"] or 0 for r in series)  # type: ignore[misc]
                if renders and all(r["decodes"] is not None for r in series):
                    entry["decodes_per_render"] = round(sum(r["decodes"] for r in series) / renders, 3)  # type: ignore[misc]
                if thumbor is not None and server.name != thumbor:
                    ratios = [
                        a["thumbs_per_s"] / b["thumbs_per_s"] if b["thumbs_per_s"] else float("inf")  # type: ignore[operator]
                        for a, b in zip(series, rounds[thumbor], strict=True)
                    ]
                    per_core = [
                        a["thumbs_per_core_s"] / b["thumbs_per_core_s"]  # type: ignore[operator]
                        for a, b in zip(series, rounds[thumbor], strict=True)
                        if a["thumbs_per_core_s"] and b["thumbs_per_core_s"]
                    ]
                    entry["ratio_to_thumbor"] = {
                        "per_round": [round(r, 2) for r in ratios],
                        "min": round(min(ratios), 2),
                        "median": round(statistics.median(ratios), 2),
                        "per_core_per_round": [round(r, 2) for r in per_core],
                    }
                level["servers"][server.name] = entry  # type: ignore[index]
            levels.append(level)
    finally:
        for server in servers:
            server.stop()
    return {"variant": variant, "levels": levels}


def print_report(result: dict[str, object]) -> None:
    print(f"\n== {result['variant']}: thumbnails/s (median of rounds [min..max]), latency, ratio to thumbor ==")
    for level in result["levels"]:  # type: ignore[attr-defined]
        for name, e in level["servers"].items():
            t = e["thumbs_per_s"]
            ratio = e.get("ratio_to_thumbor")
            r_text = (
                f"x{ratio['median']:.2f} (min x{ratio['min']:.2f}; per core {ratio['per_core_per_round']})"
                if ratio
                else ""
            )
            per_round = [r["thumbs_per_s"] for r in e["rounds"]]
            print(
                f"c={level['clients']:<2} {name:12} {t['median']:7.1f}/s [{min(per_round):.1f}"
                f"..{max(per_round):.1f}]  per core-s {[r['thumbs_per_core_s'] for r in e['rounds']]}"
                f"  p50 {e['p50_ms']['median']} ms  "
                f"p99 {e['p99_ms']['median']} ms  rss {e['peak_rss_mib']} MiB  failed {e['failed']}  {r_text}"
                + (f"  decodes/render {e['decodes_per_render']}" if "decodes_per_render" in e else "")
            )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", default="cold,gallery", help="comma-separated: cold, gallery")
    parser.add_argument("--photos", help="folder of photos to use instead of the six corpus photos")
    parser.add_argument("--clients", default="1,4,8", help="concurrent keep-alive clients, comma-separated")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per server and round")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds before each window")
    parser.add_argument("--thumbsvc-workers", default="1", help="uvicorn worker counts to run, comma-separated")
    parser.add_argument("--thumbor-processes", default="2", help="thumbor process count (0: leave thumbor out)")
    parser.add_argument(
        "--tree", type=Path, default=REPO, help="checkout whose thumbsvc/ is served (e.g. a git worktree of a commit)"
    )
    parser.add_argument(
        "--alt",
        action="append",
        default=[],
        help="NAME=TREE[:VAR=VALUE,...]: one more thumbsvc server, from another checkout and/or with settings",
    )
    parser.add_argument("--out", help="JSON file (default bench/results/http-<time>.json)")
    args = parser.parse_args(argv)
    alts = []
    for spec in args.alt:
        label, _, rest = spec.partition("=")
        tree, _, settings = rest.partition(":")
        env = dict(item.split("=", 1) for item in settings.split(",") if item)
        alts.append((label, Path(tree).resolve(), env))
    args.alt = alts
    # Stop the servers (finally blocks) on SIGTERM too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    args.tree = args.tree.resolve()
    args.clients = [int(c) for c in args.clients.split(",")]
    args.thumbsvc_workers = [int(w) for w in args.thumbsvc_workers.split(",")]
    # 0: no thumbor (thumbsvc against itself, e.g. one process against several workers).
    args.thumbor_processes = [int(p) for p in args.thumbor_processes.split(",") if int(p) > 0][:1]
    variants = [v.strip() for v in args.variant.split(",") if v.strip()]
    servers = len(args.thumbsvc_workers) * (1 + len(alts)) + len(args.thumbor_processes)
    budget = len(variants) * len(args.clients) * args.rounds * servers
    print(f"about {budget * (args.duration + args.warmup + 1) / 60:.1f} minutes of load")

    photos = w1_photos(args.photos)
    root = media_root(photos)
    report: dict[str, object] = {
        "benchmark": "http",
        "machine": machine_info(args.tree.resolve()),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "settings": {
            "clients": args.clients,
            "rounds": args.rounds,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "thumbsvc_workers": args.thumbsvc_workers,
            "thumbor_processes": args.thumbor_processes,
            "alt": [f"{label}={tree}:{env}" for label, tree, env in alts],
            "photos": [p.name for p in photos],
        },
        "variants": [],
    }
    with tempfile.TemporaryDirectory(prefix="thumbsvc-bench-http-") as tmp:
        for variant in variants:
            result = run_variant(variant, photos, root, args, Path(tmp))
            print_report(result)
            report["variants"].append(result)  # type: ignore[attr-defined]
    out = Path(args.out) if args.out else RESULTS / f"http-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    report["loadavg_end"] = os.getloadavg()
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
