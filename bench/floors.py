"""floors: what each stage of a cold render costs, and what no resampler or cache could take away (on pyperf).

For each photo set, every stage below is one pyperf benchmark: a value is one pass over the set's
jobs (18 for W1), in CPU time of the worker process, divided by the number of jobs, so values are
CPU ms per thumbnail. pyperf runs each benchmark in fresh worker processes (``--processes``,
``--values``, ``--fast``, ``--rigorous``; calibrated loops) and its suite is written beside the
result as ``<result>.pyperf.json``, for ``python -m pyperf stats|hist|compare_to``.

- ``decode_floor``: the file decoded at 1/8, luma only, the cheapest decode libjpeg-turbo offers
  through Pillow: what is left is entropy decoding, which any decoder of the file pays;
- ``decode``: the decode at the DCT scale thumbsvc picks for the job (header parsing included);
- ``finish``: everything between decode and encode (planes, resampling, orientation, colour);
- ``encode``: thumbsvc's encode of the finished pixels (progressive JPEG from 50 000 px);
- ``encode_baseline``: the same pixels as baseline JPEG with standard tables (libvips's default);
- ``render``: the whole render step end to end;
- ``app``: the whole app in one process (``create_app``, caches off) answering the job's signed URL
  over ASGI (httpx's ASGITransport), one request at a time: the render plus reading and hashing the
  source, routing, signature, admission, threads and the response, without sockets or HTTP parsing.

Ratios reported per set: render / decode and app / decode (issue 16's goal: a cold thumbnail's
CPU within 1.35x of the decode at the chosen DCT scale), and render / decode_floor. The render
stages come from ``bench.lib.adapter`` (the only code here that knows thumbsvc's internals).

    python -m bench floors                         # w1 and w2, every stage, 10 processes x 3 values
    python -m bench floors --sets w1 --stages decode,render,app --fast
    python -m pyperf compare_to OLD.pyperf.json NEW.pyperf.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import io
import json
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, MutableMapping
from pathlib import Path
from typing import Any

from bench.lib import cli, results
from bench.lib.photos import QUALITY, jobs_for, photo_set
from bench.lib.procs import machine_info

STAGES = ("decode_floor", "decode", "finish", "encode", "encode_baseline", "render", "app")
KEY = "bench-floors-key-not-secret"


def decode_floor(data: bytes) -> None:
    """Decode ``data`` the cheapest way Pillow offers (1/8 scale, luma only): entropy decoding is what is left."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        image.draft("L", (max(1, image.width // 8), max(1, image.height // 8)))
        image.load()


@functools.cache
def stage_calls(jobs_file: str, tree: str, set_name: str, stage: str) -> list[Callable[[], object]]:
    """Return one call per job of ``set_name`` that does ``stage`` (made once per worker process)."""
    sys.path.insert(0, tree)
    jobs = json.loads(Path(jobs_file).read_text())[set_name]
    if stage == "app":
        return app_calls(jobs)
    if stage == "decode_floor":
        return [functools.partial(decode_floor, Path(job["path"]).read_bytes()) for job in jobs]
    from bench.lib.adapter import stages

    box = ("width", "height", "fit")
    return [stages(Path(j["path"]).read_bytes(), quality=QUALITY, **{k: j[k] for k in box})[stage] for j in jobs]


def app_calls(jobs: list[dict[str, Any]]) -> list[Callable[[], object]]:
    """Return one call per job that asks the whole app (caches off) for its thumbnail over ASGI.

    The app runs as a server runs it: on one event loop (in a daemon thread) whose root task lives
    as long as the process, so its worker threads are made once and reused. Each call is
    one ASGI exchange, without an HTTP client: what is timed is the app's work, not a client's.
    """
    from thumbsvc.app import create_app
    from thumbsvc.client import URLSigner
    from thumbsvc.config import Settings

    paths = [Path(job["path"]) for job in jobs]
    root = paths[0].parent
    for path in paths[1:]:
        while root not in path.parents:
            root = root.parent
    settings = Settings(keys=(KEY,), media_root=str(root), cache_bytes=0, source_cache_bytes=0, decoded_cache_bytes=0)
    app = create_app(settings)
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    async def serve() -> None:
        # The root task, as uvicorn's: the app's lifespan and worker threads live as long as it does.
        async with app.router.lifespan_context(app):
            ready.set()
            await asyncio.Event().wait()

    threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True).start()
    ready.wait()

    async def exchange(path: str) -> tuple[int, bytes]:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode("ascii"),
            "query_string": b"",
            "root_path": "",
            "headers": [(b"host", b"127.0.0.1"), (b"accept", b"*/*")],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 80),
        }
        started: dict[str, Any] = {}
        body = bytearray()

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                started.update(message)
            elif message["type"] == "http.response.body":
                body.extend(message.get("body", b""))

        await app(scope, receive, send)
        return started["status"], bytes(body)

    def get(path: str) -> None:
        status, body = asyncio.run_coroutine_threadsafe(exchange(path), loop).result()
        if status != 200:
            raise SystemExit(f"app answered {status} to {path}: {body[:200]!r}")

    signer = URLSigner(KEY)
    urls = [
        signer.path(
            str(p.relative_to(root)), width=j["width"], height=j["height"], fit=j["fit"], format="jpeg", quality=QUALITY
        )
        for p, j in zip(paths, jobs, strict=True)
    ]
    return [functools.partial(get, url) for url in urls]


def time_stage(loops: int, jobs_file: str, tree: str, set_name: str, stage: str) -> float:
    """pyperf's time function: CPU seconds of ``loops`` passes over the set's jobs, each job timed alone."""
    calls = stage_calls(jobs_file, tree, set_name, stage)
    total = 0.0
    for _ in range(loops):
        for call in calls:
            started = time.process_time()
            call()
            total += time.process_time() - started
    return total


def worker_args(cmd: list[str], args: argparse.Namespace) -> None:
    """Hand a worker process what it needs to rebuild the same benchmarks (pyperf gives it a bare environment)."""
    cmd += ["--jobs-file", args.jobs_file, "--tree", str(args.tree), "--sets", args.sets, "--stages", args.stages]
    if args.smoke:
        cmd.append("--smoke")


def main(argv: list[str] | None = None) -> int:
    import pyperf  # type: ignore[import-untyped]

    argv = list(sys.argv[1:] if argv is None else argv)
    if "--smoke" in argv and "--worker" not in argv:
        argv.append("--debug-single-value")
    runner = pyperf.Runner(processes=10, values=3, program_args=("-m", "bench", "floors"), add_cmdline_args=worker_args)
    parser = runner.argparser
    parser.prog, parser.description = "python -m bench floors", __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    cli.add_common(parser)
    parser.add_argument("--sets", default="w1,w2", help="photo sets, comma-separated (default w1,w2)")
    parser.add_argument("--photos", help="folder of photos to use instead of W1's six corpus photos")
    parser.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated of {', '.join(STAGES)}")
    cli.add_tree(parser)
    parser.add_argument("--jobs-file", help=argparse.SUPPRESS)
    args = runner.parse_args(argv)
    if args.smoke:
        args.sets = "samples"
    args.tree = args.tree.resolve()
    sets = [s.strip() for s in args.sets.split(",") if s.strip()]
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = set(stages) - set(STAGES)
    if unknown:
        raise SystemExit(f"unknown stage {', '.join(sorted(unknown))}: one of {', '.join(STAGES)}")

    with contextlib.ExitStack() as stack:
        if not args.worker:
            # The manager resolves the photo sets (building derived ones) and hands workers the job list.
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="thumbsvc-bench-floors-")))
            args.jobs_file = str(tmp / "jobs.json")
            table = {name: [vars(job) for job in jobs_for(photo_set(name, args.photos))] for name in sets}
            Path(args.jobs_file).write_text(json.dumps(table))
        counts = {name: len(jobs) for name, jobs in json.loads(Path(args.jobs_file).read_text()).items()}
        benchmarks = {}
        for name in sets:
            for stage in stages:
                bench = runner.bench_time_func(
                    f"{name}.{stage}", time_stage, args.jobs_file, str(args.tree), name, stage, inner_loops=counts[name]
                )
                if bench is not None:
                    benchmarks[(name, stage)] = bench
        if args.worker:
            return 0
        return report(args, sets, stages, benchmarks, argv)


def report(
    args: argparse.Namespace,
    sets: list[str],
    stages: list[str],
    benchmarks: dict[tuple[str, str], Any],
    argv: list[str],
) -> int:
    import pyperf

    result = results.Result("floors", [a for a in argv if a != "--debug-single-value"], smoke=args.smoke)
    result.machine = machine_info(args.tree)
    result.settings = {
        "sets": sets,
        "stages": stages,
        "processes": args.processes,
        "values": args.values,
        "clock": "CPU time of the worker process",
    }
    for name in sets:
        medians = {}
        for stage in stages:
            bench = benchmarks[(name, stage)]
            values = [v * 1000 for v in bench.get_values()]
            result.add(f"{name}.{stage}.ms_per_thumb", values, "ms", "lower")
            medians[stage] = statistics.median(values)
        line = "  ".join(f"{stage} {ms:.1f}" for stage, ms in medians.items())
        for top, floor in (
            ("render", "decode"),
            ("app", "decode"),
            ("render", "decode_floor"),
            ("app", "decode_floor"),
        ):
            if top in medians and medians.get(floor):
                result.add(f"{name}.{top}/{floor}", [medians[top] / medians[floor]], "x", "lower")
                line += f"  {top}/{floor} {medians[top] / medians[floor]:.2f}"
        print(f"[{name}] CPU ms per thumbnail (medians): {line}")
    path = results.write(result, args.out)
    suite = pyperf.BenchmarkSuite(list(benchmarks.values()))
    suite.dump(str(path.with_suffix(".pyperf.json")), replace=True)
    print(f"\nwrote {path} and {path.with_suffix('.pyperf.json')}")
    if args.compare:
        results.print_comparison(args.compare, result.to_json())
    return 0
