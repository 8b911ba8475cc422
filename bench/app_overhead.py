"""What a cold request costs beyond its render: the whole app in one process, over ASGI, on W1.

The app (``create_app``, caches off) serves the 18 W1 thumbnails ``--passes`` times through
httpx's ASGI transport, ``--clients`` at a time; the CPU time of the process is split into the
render (``pipeline.render``, as the service calls it), reading and hashing the source
(``LocalSource._read``) and everything else (routing, signature, admission, threads, response,
access log). The first two are timed with ``time.thread_time`` around the functions, so the
split holds with several clients.

    python -m bench.app_overhead                 # 1 client, 3 passes
    python -m bench.app_overhead --clients 2
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from bench.workloads import QUALITY, jobs_for, w1_photos

KEY = "bench-overhead-key-not-secret"


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(spent: collections.Counter[str], label: str, func: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.thread_time()
        try:
            return func(*args, **kwargs)
        finally:
            spent[label] += time.thread_time() - started

    return wrapper


async def serve(paths: list[str], root: Path, passes: int, clients: int) -> None:
    from thumbsvc.app import create_app
    from thumbsvc.config import Settings

    settings = Settings(keys=(KEY,), media_root=str(root), cache_bytes=0, source_cache_bytes=0, decoded_cache_bytes=0)
    app = create_app(settings)
    queue = list(paths) * passes
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:

            async def client() -> None:
                while queue:
                    response = await http.get(queue.pop())
                    if response.status_code != 200:
                        raise SystemExit(f"{response.status_code}: {response.text}")

            await asyncio.gather(*(client() for _ in range(clients)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", help="folder of photos to use instead of the six corpus photos")
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--clients", type=int, default=1)
    args = parser.parse_args(argv)

    import thumbsvc.service as service
    import thumbsvc.sources.local as local
    from thumbsvc.client import URLSigner

    photos = w1_photos(args.photos)
    jobs = jobs_for(photos)
    signer = URLSigner(KEY)
    paths = [
        signer.path(Path(j.path).name, width=j.width, height=j.height, fit=j.fit, format="jpeg", quality=QUALITY)
        for j in jobs
    ]
    spent: collections.Counter[str] = collections.Counter()
    service.render = timed(spent, "render", service.render)  # type: ignore[assignment]
    local.LocalSource._read = timed(spent, "read", local.LocalSource._read)  # type: ignore[method-assign]

    asyncio.run(serve(paths[:3], photos[0].parent, 1, 1))  # warm-up: imports, first decodes
    spent.clear()
    started_cpu, started = cpu_s(), time.perf_counter()
    asyncio.run(serve(paths, photos[0].parent, args.passes, args.clients))
    total = cpu_s() - started_cpu
    wall = time.perf_counter() - started
    count = len(paths) * args.passes
    per = {name: round(seconds / count * 1000, 2) for name, seconds in spent.items()}
    other = round(total / count * 1000 - sum(per.values()), 2)
    print(
        f"{count} requests, {args.clients} client(s): CPU ms per thumbnail {total / count * 1000:.2f} "
        f"= render {per.get('render')} + read and hash {per.get('read')} + everything else {other}; "
        f"cores used {total / wall:.2f}"
    )


if __name__ == "__main__":
    main()
