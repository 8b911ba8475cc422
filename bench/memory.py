"""Peak memory of one ``thumbsvc serve`` process rendering large sources at full concurrency.

Starts the service (one process, ``THUMBSVC_RENDER_SLOTS`` render threads, result, source and
decoded-source caches off) once per variant, has ``--clients`` threads request every source at every size in
every pass (each pass at a width one pixel wider, so every request is a render), samples the
process's resident set every 10 ms and reports the peak (VmHWM), the resting set afterwards,
throughput and the statuses. Every response must be a 200 that decodes to the asked width.

    python -m bench.memory --media DIR                       # the 24 MP JPEG set (see --make-jpegs)
    python -m bench.memory --media DIR --variant mmap=MALLOC_MMAP_THRESHOLD_=131072
    python -m bench.memory --make-jpegs DIR --make-others DIR2   # build the source sets once

A variant is NAME=VAR=VALUE[,VAR=VALUE...]; ``default`` (no extra variables) always runs first.
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.procs import machine_info
from bench.workloads import REPO, corpus_photos

RESULTS = REPO / "bench" / "results"
KEY = "bench-memory-key-not-secret"
SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def status_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def make_jpegs(folder: Path) -> None:
    """24 MP JPEGs: the corpus's progressive craft-beer as it is and re-encoded baseline, and a
    16 MP landscape scaled to 6000x4000, baseline and progressive (q90)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    craft = corpus_photos() / "immich__craft-beer.jpg"
    (folder / "craft-beer-progressive.jpg").write_bytes(craft.read_bytes())
    with Image.open(craft) as opened:
        icc = opened.info.get("icc_profile")
        opened.convert("RGB").save(folder / "craft-beer-baseline.jpg", quality=90, icc_profile=icc)
    with Image.open(corpus_photos() / "lepton__slrhills.jpg") as opened:
        hills = opened.convert("RGB").resize((6000, 4500), Image.Resampling.BICUBIC).crop((0, 250, 6000, 4250))
    hills.save(folder / "slrhills-baseline.jpg", quality=90)
    hills.save(folder / "slrhills-progressive.jpg", quality=90, progressive=True)


def make_others(folder: Path) -> None:
    """24 MP PNG and WebP sources, opaque and with alpha (a smooth picture, so the PNGs stay under
    the 25 MB source limit; memory depends on the pixels, not the content)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    with Image.open(corpus_photos() / "immich__craft-beer.jpg") as opened:
        opened.draft("RGB", (750, 500))
        rgb = opened.convert("RGB").resize((6000, 4000), Image.Resampling.BICUBIC)
    alpha = Image.linear_gradient("L").resize((6000, 4000))
    rgba = rgb.copy()
    rgba.putalpha(alpha)
    rgb.save(folder / "smooth-24mp-rgb.png", compress_level=9)
    rgba.save(folder / "smooth-24mp-rgba.png", compress_level=9)
    rgb.save(folder / "smooth-24mp-rgb.webp", quality=80)
    rgba.save(folder / "smooth-24mp-rgba.webp", quality=80)


class Server:
    def __init__(self, media: Path, env: dict[str, str], slots: int, tree: Path) -> None:
        self.port = free_port()
        full_env = {k: v for k, v in os.environ.items() if not k.startswith(("THUMBSVC_", "MALLOC_", "PILLOW_"))}
        full_env.update(
            {
                "THUMBSVC_KEY": KEY,
                "THUMBSVC_MEDIA_ROOT": str(media.resolve()),
                "THUMBSVC_CACHE_BYTES": "0",
                "THUMBSVC_SOURCE_CACHE_BYTES": "0",
                "THUMBSVC_RENDER_SLOTS": str(slots),
                "THUMBSVC_QUEUE_TIMEOUT": "120",
            }
        )
        if "decoded_cache_bytes" in (tree / "thumbsvc" / "config.py").read_text():
            full_env["THUMBSVC_DECODED_CACHE_BYTES"] = "0"  # the decoded-source cache, where the checkout has one
        full_env.update(env)
        argv = [sys.executable, "-m", "thumbsvc.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        self.proc = subprocess.Popen(
            [*argv, "--workers", "1", "--log-level", "warning"],
            cwd=tree,
            env=full_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.base = f"http://127.0.0.1:{self.port}"

    def wait_ready(self) -> None:
        import httpx

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.base + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise SystemExit("thumbsvc serve did not start")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=30)


def run_variant(name: str, env: dict[str, str], args: argparse.Namespace) -> dict[str, object]:
    import httpx
    from PIL import Image

    from thumbsvc.client import URLSigner

    sources = sorted(p.name for p in args.media.iterdir() if p.suffix.lower() in SUFFIXES)
    sizes = [(int(w), int(h), fit) for w, h, fit in (s.replace(":", "x").split("x") for s in args.sizes.split(","))]
    signer = URLSigner(KEY)
    server = Server(args.media, env, args.slots, args.tree)
    try:
        server.wait_ready()
        pid = server.proc.pid
        idle_kib = status_kib(pid, "VmRSS")
        samples: list[int] = []
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.01):
                samples.append(status_kib(pid, "VmRSS"))

        jobs = [
            (signer.path(src, width=w + p, height=h, fit=fit, format=args.format), w + p)
            for p, src, (w, h, fit) in itertools.product(range(args.passes), sources, sizes)
        ]
        statuses: dict[str, int] = {}

        def fetch(client: httpx.Client, job: tuple[str, int]) -> None:
            path, width = job
            response = client.get(server.base + path)
            ok = response.status_code == 200
            if ok:
                with Image.open(io.BytesIO(response.content)) as image:
                    ok = image.width <= width and image.format is not None
            key = str(response.status_code) if ok or response.status_code != 200 else "200-bad"
            statuses[key] = statuses.get(key, 0) + 1

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        started = time.monotonic()
        clients = [httpx.Client(timeout=300) for _ in range(args.clients)]
        local = threading.local()
        pool_clients = iter(clients)
        lock = threading.Lock()

        def work(job: tuple[str, int]) -> None:
            if not hasattr(local, "client"):
                with lock:
                    local.client = next(pool_clients)
            fetch(local.client, job)

        with ThreadPoolExecutor(args.clients) as pool:
            list(pool.map(work, jobs))
        elapsed = time.monotonic() - started
        time.sleep(0.5)
        done.set()
        sampler.join()
        for client in clients:
            client.close()
        result: dict[str, object] = {
            "variant": name,
            "env": env,
            "sources": sources,
            "requests": len(jobs),
            "statuses": statuses,
            "seconds": round(elapsed, 1),
            "renders_per_s": round(len(jobs) / elapsed, 2),
            "idle_rss_mib": round(idle_kib / 1024, 1),
            "peak_rss_mib": round(status_kib(pid, "VmHWM") / 1024, 1),
            "median_rss_mib": round(sorted(samples)[len(samples) // 2] / 1024, 1) if samples else None,
            "end_rss_mib": round(status_kib(pid, "VmRSS") / 1024, 1),
        }
    finally:
        server.stop()
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--media", type=Path, help="folder of sources (every .jpg/.png/.webp in it)")
    parser.add_argument("--sizes", default="150x150:cover,400x300:contain,1200x900:contain")
    parser.add_argument("--format", default="jpeg")
    parser.add_argument("--clients", type=int, default=4, help="requests in flight at once (default 4)")
    parser.add_argument("--slots", type=int, default=2, help="THUMBSVC_RENDER_SLOTS (default 2)")
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--tree", type=Path, default=REPO, help="checkout whose thumbsvc serves (default: this one)")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME=VAR=VALUE[,VAR=VALUE]")
    parser.add_argument("--make-jpegs", type=Path, metavar="DIR", help="build the 24 MP JPEG set into DIR")
    parser.add_argument("--make-others", type=Path, metavar="DIR", help="build the 24 MP PNG/WebP set into DIR")
    parser.add_argument("--out", help="JSON file (default bench/results/memory-<time>.json)")
    args = parser.parse_args(argv)
    if args.make_jpegs:
        make_jpegs(args.make_jpegs)
    if args.make_others:
        make_others(args.make_others)
    if args.media is None:
        return
    variants: list[tuple[str, dict[str, str]]] = [("default", {})]
    for text in args.variant:
        name, _, assignments = text.partition("=")
        variants.append((name, dict(item.split("=", 1) for item in assignments.split(","))))
    report: dict[str, object] = {
        "benchmark": "memory",
        "machine": machine_info(args.tree.resolve()),
        "media": str(args.media),
        "sizes": args.sizes,
        "format": args.format,
        "clients": args.clients,
        "slots": args.slots,
        "passes": args.passes,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "variants": [],
    }
    for name, env in variants:
        result = run_variant(name, env, args)
        report["variants"].append(result)  # type: ignore[attr-defined]
        print(
            f"{name:14} peak {result['peak_rss_mib']:6.1f} MiB  median {result['median_rss_mib']} MiB  "
            f"idle {result['idle_rss_mib']} → end {result['end_rss_mib']} MiB  {result['renders_per_s']} renders/s  "
            f"{result['statuses']}",
            flush=True,
        )
    out = Path(args.out) if args.out else RESULTS / f"memory-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
