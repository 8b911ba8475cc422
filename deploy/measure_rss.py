"""Measure the memory of one ``thumbsvc serve`` process while it renders a folder of images.

    python deploy/measure_rss.py --media ../shared/corpus/photos --sizes 320x240,1600x1200 --concurrency 2

Starts the service on a free loopback port (a throwaway key, the folder as media root, any extra
``--env NAME=VALUE``), asks it for every image at every size and format (all distinct URLs, so every
request is a render), sampling the process's resident set, and prints the baseline, peak (VmHWM) and
final RSS. Use it to size memory limits for your own images: docs/deploy.md has the figures for the corpus.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from thumbsvc.client import URLSigner

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".avif", ".tif", ".tiff", ".bmp"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def status_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise LookupError(field)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--media", type=Path, required=True, help="folder of source images (the media root)")
    parser.add_argument("--sizes", default="320x240,1600x1200", help="comma-separated WxH boxes (fit: cover)")
    parser.add_argument("--formats", default="jpeg,webp", help="comma-separated output formats")
    parser.add_argument("--concurrency", type=int, default=2, help="requests in flight at once")
    parser.add_argument("--rounds", type=int, default=1, help="passes over the images (each at a new size)")
    parser.add_argument("--env", action="append", default=[], help="extra NAME=VALUE for the process")
    args = parser.parse_args(argv)

    images = sorted(p.name for p in args.media.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        parser.error(f"no images in {args.media}")
    key = secrets.token_urlsafe(24)
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("THUMBSVC_")},
        "THUMBSVC_KEY": key,
        "THUMBSVC_MEDIA_ROOT": str(args.media.resolve()),
        "THUMBSVC_HOST": "127.0.0.1",
        "THUMBSVC_PORT": str(port),
        "THUMBSVC_WORKERS": "1",
    }
    env.update(dict(item.split("=", 1) for item in args.env))
    command = [sys.executable, "-m", "thumbsvc.cli", "serve", "--log-level", "warning"]
    process = subprocess.Popen(
        command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise SystemExit("thumbsvc serve did not start")
            time.sleep(0.1)
        baseline_kib = status_kib(process.pid, "VmRSS")

        signer = URLSigner(key, base)
        boxes = [tuple(int(v) for v in size.split("x")) for size in args.sizes.split(",")]
        rounds = [
            [
                signer.url(image, width=w + round_, height=h, fit="cover", format=fmt)
                for image, (w, h), fmt in itertools.product(images, boxes, args.formats.split(","))
            ]
            for round_ in range(args.rounds)
        ]
        samples: list[int] = []
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.05):
                samples.append(status_kib(process.pid, "VmRSS"))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        started = time.monotonic()
        statuses: dict[int, int] = {}
        after_round_kib = []
        with httpx.Client(timeout=120) as client, ThreadPoolExecutor(args.concurrency) as pool:
            for urls in rounds:
                for status in pool.map(lambda url: client.get(url).status_code, urls):
                    statuses[status] = statuses.get(status, 0) + 1
                after_round_kib.append(status_kib(process.pid, "VmRSS"))
        elapsed = time.monotonic() - started
        done.set()
        sampler.join()
        result = {
            "images": len(images),
            "requests": sum(len(urls) for urls in rounds),
            "statuses": statuses,
            "concurrency": args.concurrency,
            "env": args.env,
            "seconds": round(elapsed, 1),
            "baseline_rss_mib": round(baseline_kib / 1024, 1),
            "peak_rss_mib": round(status_kib(process.pid, "VmHWM") / 1024, 1),
            "rss_after_each_round_mib": [round(kib / 1024, 1) for kib in after_round_kib],
            "median_rss_mib": round(sorted(samples)[len(samples) // 2] / 1024, 1) if samples else None,
        }
        print(json.dumps(result))
    finally:
        process.terminate()
        process.wait(timeout=20)
    return 0


if __name__ == "__main__":
    sys.exit(main())
