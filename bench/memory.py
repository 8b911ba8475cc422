"""memory: peak resident memory of one ``thumbsvc serve`` process rendering a photo set at full concurrency.

For each photo set and each server (this checkout, and every ``--alt``), a fresh one-process
server (``--slots`` render threads, on 127.0.0.1) gets ``--clients`` client threads asking for
every photo at every size, ``--passes`` times (each pass one pixel wider, so every request
renders); the process's resident set is sampled every 10 ms. Reported per run: peak (VmHWM),
median, the resident set right after the last response and after 2 s idle, the idle size
before, renders/s and every status (each 200 must decode to the asked width). ``--repeat`` runs
every server several times, interleaved, because the peak moves with what glibc keeps.

``--caches off`` (the default) turns the result, source and decoded-source caches off, so what is
measured is the renders; ``--caches default`` leaves every setting at its default (what issue 16's
"at defaults" goal means). Sets (``bench.lib.photos``, built once outside the repository): w1,
mix24 (24 MP JPEGs, baseline and progressive), progressive24, baseline24, other24 (24 MP PNG, WebP).

    python -m bench memory                                   # w1 and mix24, 3 passes, 3 runs each
    python -m bench memory --sets other24 --passes 2
    python -m bench memory --caches default --alt arena1=:MALLOC_ARENA_MAX=1
"""

from __future__ import annotations

import argparse
import io
import itertools
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.lib import cli, results
from bench.lib.httpbench import CACHES_OFF
from bench.lib.photos import photo_set
from bench.lib.procs import machine_info, status_kib, tree_commit
from bench.lib.servers import KEY, ThumbsvcServer

# After the last response: the resident set then, and again after this long idle.
RESTED_S = 2.0


def media_for(photos: list[Path]) -> tuple[Path, list[str]]:
    """Return a media root holding every photo, and each photo's source reference under it."""
    root = photos[0].parent
    for photo in photos[1:]:
        while root not in photo.parents:
            root = root.parent
    return root, [str(p.relative_to(root)) for p in photos]


def run_once(
    name: str, tree: Path, settings: dict[str, str], photos: list[Path], args: argparse.Namespace
) -> dict[str, Any]:
    import httpx
    from PIL import Image

    from thumbsvc.client import URLSigner

    root, sources = media_for(photos)
    sizes = [(int(w), int(h), fit) for w, h, fit in (s.replace(":", "x").split("x") for s in args.sizes.split(","))]
    base = {"THUMBSVC_MEDIA_ROOT": str(root), "THUMBSVC_RENDER_SLOTS": str(args.slots), "THUMBSVC_QUEUE_TIMEOUT": "120"}
    if args.caches == "off":
        base.update(CACHES_OFF)
    server = ThumbsvcServer(name, tree, {**base, **settings})
    signer = URLSigner(KEY)
    server.start()
    try:
        pid = server.pid
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
        lock = threading.Lock()
        local = threading.local()

        def work(job: tuple[str, int]) -> None:
            if not hasattr(local, "client"):
                local.client = httpx.Client(base_url=server.base, timeout=300)
            path, width = job
            response = local.client.get(path)
            ok = response.status_code == 200
            if ok:
                with Image.open(io.BytesIO(response.content)) as image:
                    ok = image.width <= width and image.format is not None
            key = str(response.status_code) if ok or response.status_code != 200 else "200-bad"
            with lock:
                statuses[key] = statuses.get(key, 0) + 1

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        started = time.monotonic()
        with ThreadPoolExecutor(args.clients) as pool:
            list(pool.map(work, jobs))
        elapsed = time.monotonic() - started
        time.sleep(0.5)
        done.set()
        sampler.join()
        end_kib = status_kib(pid, "VmRSS")
        # The server hands a large render's freed heap back once it has been idle for a second.
        time.sleep(RESTED_S)
        return {
            "server": name,
            "requests": len(jobs),
            "statuses": statuses,
            "seconds": round(elapsed, 2),
            "renders_per_s": round(len(jobs) / elapsed, 2),
            "idle_rss_mib": round(idle_kib / 1024, 1),
            "peak_rss_mib": round(status_kib(pid, "VmHWM") / 1024, 1),
            "median_rss_mib": round(statistics.median(samples) / 1024, 1) if samples else None,
            "end_rss_mib": round(end_kib / 1024, 1),
            "rested_rss_mib": round(status_kib(pid, "VmRSS") / 1024, 1),
        }
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = cli.parser("memory", __doc__)
    parser.add_argument("--sets", default="w1,mix24", help="photo sets, comma-separated (default w1,mix24)")
    parser.add_argument("--photos", help="folder of photos to use instead of W1's six corpus photos")
    parser.add_argument("--sizes", default="150x150:cover,400x300:contain,1200x900:contain")
    parser.add_argument("--format", default="jpeg")
    parser.add_argument("--clients", type=int, default=4, help="requests in flight at once (default 4)")
    parser.add_argument("--slots", type=int, default=2, help="THUMBSVC_RENDER_SLOTS (default 2)")
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each server and set, interleaved (default 3)")
    parser.add_argument("--caches", choices=("off", "default"), default="off")
    cli.add_tree(parser, "served")
    parser.add_argument("--alt", action="append", default=[], metavar="NAME=[TREE][:VAR=VALUE,...]")
    args = parser.parse_args(argv)
    if args.smoke:
        args.sets, args.passes, args.repeat, args.sizes, args.clients = "samples", 1, 1, "400x300:contain", 2
    args.tree = args.tree.resolve()
    servers: list[tuple[str, Path, dict[str, str]]] = [("thumbsvc", args.tree, {})] + [
        (f"thumbsvc:{name}", tree or args.tree, settings) for name, tree, settings in map(cli.parse_alt, args.alt)
    ]
    result = results.Result("memory", sys.argv[1:] if argv is None else list(argv), smoke=args.smoke)
    result.machine = machine_info(args.tree)
    result.settings = {
        k: getattr(args, k) for k in ("sets", "sizes", "format", "clients", "slots", "passes", "repeat", "caches")
    }
    result.settings["servers"] = {
        name: {"tree": str(tree), "commit": tree_commit(tree), "settings": s} for name, tree, s in servers
    }
    for set_name in [s.strip() for s in args.sets.split(",") if s.strip()]:
        photos = photo_set(set_name, args.photos)
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _, _ in servers}
        for rep in range(args.repeat):
            for name, tree, settings in servers if rep % 2 == 0 else servers[::-1]:
                run = run_once(name, tree, settings, photos, args)
                runs[name].append(run)
                print(
                    f"[{set_name}] {name:16} peak {run['peak_rss_mib']:6.1f} MiB  median {run['median_rss_mib']}  "
                    f"idle {run['idle_rss_mib']} -> end {run['end_rss_mib']} -> rested {run['rested_rss_mib']} MiB  "
                    f"{run['renders_per_s']} renders/s  "
                    f"{run['statuses']}",
                    flush=True,
                )
        for name, series in runs.items():
            key = f"{set_name}.{name}"
            result.add(f"{key}.peak_rss_mib", [r["peak_rss_mib"] for r in series], "MiB", "lower")
            result.add(f"{key}.end_rss_mib", [r["end_rss_mib"] for r in series], "MiB", "lower")
            result.add(f"{key}.rested_rss_mib", [r["rested_rss_mib"] for r in series], "MiB", "lower")
            result.add(f"{key}.renders_per_s", [r["renders_per_s"] for r in series], "renders/s", "higher")
            result.add(
                f"{key}.not_200",
                [sum(v for k, v in r["statuses"].items() if k != "200") for r in series],
                "count",
                "lower",
            )
        result.details[set_name] = runs
    return cli.finish(result, args)
