"""s3_clients: which async S3 client the S3 loader uses, obstore against aiobotocore, on moto over loopback.

Self-contained: it starts moto in server mode on 127.0.0.1 in a process of its own
(``bench.lib.origins.MotoStore``: an IAM user and its access key, a private bucket with two
objects of 100 kB and 3 MB of random bytes, then SigV4 and IAM checks on), then runs each client
in fresh processes, alternating, ``--rounds`` times. Per round and client it reports:

- ``import_ms``: importing the library (``import obstore`` / ``from aiobotocore.session import get_session``);
- ``client_ms``: making the client (aiobotocore loads botocore's service model here);
- ``rss_import_mib`` / ``rss_mib``: resident memory over a bare interpreter after the import, and after
  the fetches;
- ``first_ms``: the first GET of a new client (credentials, connection, request);
- per object size, over ``--fetches`` sequential GETs on a warm client: median time to the first body
  byte (``ttfb_ms``), median time for the whole body (``total_ms``) and the client process's CPU time per
  fetch (``cpu_ms``: every thread, so obstore's Rust runtime counts too; moto runs elsewhere);
- the same with 8 fetches in flight (``cpu_ms_c8``), and per HEAD (``head_ms``, ``head_cpu_ms``).

Moto is a Python server: its latency dominates the wall-clock numbers, so the client's own cost is
in the CPU and memory columns, and in the ratios ``obstore/aiobotocore.*`` of the same round.
What a fetch costs the whole service (each kind of source side by side) is ``python -m bench http
--variant cold,cold-http,cold-s3``.

    python -m bench s3_clients                       # 5 rounds, 200 fetches per size
    python -m bench s3_clients --rounds 3 --fetches 100
    python -m bench s3_clients --smoke               # one round of 8 fetches: checks it runs

Needs ``moto[server]`` (the test extra) and the clients: ``obstore`` (the s3 extra) and
``aiobotocore`` (``pip install aiobotocore``). A client that is not installed is skipped with a
line; without moto, or without either client, the run is skipped with one line and its result
holds no metric. The credentials are throwaway keys made by moto, and the environment of every
child has explicit keys and ``AWS_EC2_METADATA_DISABLED=true``, so no credential chain looks for
instance metadata.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from bench.lib import cli, results
from bench.lib.origins import MOTO_MODULES, MotoStore, aws_environment, not_installed, without_aws
from bench.lib.photos import REPO
from bench.lib.procs import machine_info

BUCKET = "bench-private"
SIZES = {"100k": 100_000, "3m": 3_000_000}
# client -> what its import costs (what the loader would import), the first its package's name
IMPORTS = {
    "obstore": ("obstore", "obstore.store"),
    "aiobotocore": ("aiobotocore", "aiobotocore.config", "aiobotocore.session"),
}
# The client's own cost, where the two are set against each other round by round (wall time is moto's).
RATIOS = ("import_ms", "client_ms", "rss_import_mib", "rss_mib", "100k_cpu_ms", "3m_cpu_ms", "head_cpu_ms")

Get = Callable[[str], Awaitable[tuple[float, int]]]
Head = Callable[[str], Awaitable[None]]


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def measure(get: Get, head: Head, started: float, fetches: int, result: dict[str, float]) -> None:
    """Time ``get`` and ``head`` on a warm client (``started``: when making the client began)."""
    result["client_ms"] = (time.perf_counter() - started) * 1000
    t0 = time.perf_counter()
    await get("objects/100k.bin")
    result["first_ms"] = (time.perf_counter() - t0) * 1000
    for name, size in SIZES.items():
        key = f"objects/{name}.bin"
        firsts: list[float] = []
        totals: list[float] = []
        cpu0 = time.process_time()
        for _ in range(fetches):
            t0 = time.perf_counter()
            first, got = await get(key)
            totals.append(time.perf_counter() - t0)
            firsts.append(first)
            if got != size:
                raise RuntimeError(f"{key}: {got} bytes, expected {size}")
        result[f"{name}_cpu_ms"] = (time.process_time() - cpu0) / fetches * 1000
        result[f"{name}_ttfb_ms"] = statistics.median(firsts) * 1000
        result[f"{name}_total_ms"] = statistics.median(totals) * 1000
        cpu0 = time.process_time()
        for _ in range(fetches // 8):
            await asyncio.gather(*(get(key) for _ in range(8)))
        result[f"{name}_cpu_ms_c8"] = (time.process_time() - cpu0) / (fetches // 8 * 8) * 1000
    heads: list[float] = []
    cpu0 = time.process_time()
    for _ in range(fetches):
        t0 = time.perf_counter()
        await head("objects/100k.bin")
        heads.append(time.perf_counter() - t0)
    result["head_cpu_ms"] = (time.process_time() - cpu0) / fetches * 1000
    result["head_ms"] = statistics.median(heads) * 1000
    # obstore's runtime thread may still be leaving the loop's wake-up call when the last await returns;
    # exiting at that instant aborts the interpreter (docs/sources.md), so let it finish.
    await asyncio.sleep(0.01)


async def with_obstore(endpoint: str, region: str, fetches: int, result: dict[str, float]) -> None:
    import obstore
    from obstore.store import S3Store

    started = time.perf_counter()
    store = S3Store(
        BUCKET,
        endpoint=endpoint,
        region=region,
        virtual_hosted_style_request=False,
        client_options={"allow_http": True},
        retry_config={"max_retries": 0},
    )

    async def get(key: str) -> tuple[float, int]:
        t0 = time.perf_counter()
        response = await obstore.get_async(store, key)
        first = 0.0
        size = 0
        async for chunk in response.stream(min_chunk_size=64 * 1024):
            if not size:
                first = time.perf_counter() - t0
            size += len(chunk)
        return first, size

    async def head(key: str) -> None:
        await obstore.head_async(store, key)

    await measure(get, head, started, fetches, result)


async def with_aiobotocore(endpoint: str, region: str, fetches: int, result: dict[str, float]) -> None:
    config_module = importlib.import_module("aiobotocore.config")  # untyped, and not in any extra
    session_module = importlib.import_module("aiobotocore.session")
    started = time.perf_counter()
    session = session_module.get_session()
    config = config_module.AioConfig(retries={"max_attempts": 1}, s3={"addressing_style": "path"})
    async with session.create_client("s3", endpoint_url=endpoint, region_name=region, config=config) as client:

        async def get(key: str) -> tuple[float, int]:
            t0 = time.perf_counter()
            response = await client.get_object(Bucket=BUCKET, Key=key)
            first = 0.0
            size = 0
            async with response["Body"] as body:
                async for chunk in body.iter_chunks(64 * 1024):
                    if not size:
                        first = time.perf_counter() - t0
                    size += len(chunk)
            return first, size

        async def head(key: str) -> None:
            await client.head_object(Bucket=BUCKET, Key=key)

        await measure(get, head, started, fetches, result)


def run_client(kind: str, endpoint: str, fetches: int) -> dict[str, float]:
    """In a fresh process: import one library, make a client, and time its fetches."""
    base_rss = rss_mib()
    started = time.perf_counter()
    for module in IMPORTS[kind]:
        importlib.import_module(module)
    result: dict[str, float] = {"import_ms": (time.perf_counter() - started) * 1000}
    result["rss_import_mib"] = rss_mib() - base_rss
    region = os.environ["AWS_REGION"]
    fetch = with_obstore if kind == "obstore" else with_aiobotocore
    asyncio.run(fetch(endpoint, region, fetches, result))
    result["rss_mib"] = rss_mib() - base_rss
    return result


def unit(metric: str) -> str:
    return "MiB" if metric.endswith("_mib") else "ms"


def main(argv: list[str] | None = None) -> int:
    parser = cli.parser("s3_clients", __doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--fetches", type=int, default=200, help="sequential GETs per object size and round (>= 8)")
    parser.add_argument("--clients", default="obstore,aiobotocore", help="comma-separated: obstore, aiobotocore")
    parser.add_argument("--child", nargs=3, metavar=("KIND", "ENDPOINT", "FETCHES"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        kind, endpoint, fetches = args.child
        print(json.dumps(run_client(kind, endpoint, int(fetches))))
        return 0
    if args.smoke:
        args.rounds, args.fetches = 1, 8
    if args.fetches < 8:
        raise SystemExit("--fetches: at least 8 (the concurrent part runs 8 at a time)")
    asked = [kind.strip() for kind in args.clients.split(",") if kind.strip()]
    unknown = [kind for kind in asked if kind not in IMPORTS]
    if unknown:
        raise SystemExit(f"unknown client {', '.join(unknown)}: one of {', '.join(IMPORTS)}")

    result = results.Result("s3_clients", sys.argv[1:] if argv is None else list(argv), smoke=args.smoke)
    result.machine = machine_info()
    gone = not_installed(*MOTO_MODULES)
    kinds = [kind for kind in asked if not not_installed(kind)]
    if gone or not kinds:
        reason = (
            f"{', '.join(gone)} not installed (pip install -e '.[test]')"
            if gone
            else f"{' and '.join(asked)} not installed (pip install -e '.[s3]', pip install aiobotocore)"
        )
        print(f"s3_clients: skipped, {reason}")
        result.details["skipped"] = reason
        return cli.finish(result, args)
    for kind in asked:
        if kind not in kinds:
            print(f"{kind}: skipped, not installed (pip install {kind})")
    result.settings = {
        "rounds": args.rounds,
        "fetches": args.fetches,
        "sizes": SIZES,
        "clients": kinds,
        "versions": {kind: _version(kind) for kind in kinds},
    }

    moto = MotoStore(BUCKET, random={f"objects/{name}.bin": size for name, size in SIZES.items()})
    rounds: list[dict[str, dict[str, float]]] = []
    with tempfile.TemporaryDirectory(prefix="thumbsvc-bench-s3-") as logs:
        try:
            store = moto.start(Path(logs) / "moto.log")
            env = {**without_aws(os.environ), **aws_environment(store)}
            for number in range(args.rounds):
                row: dict[str, dict[str, float]] = {}
                for kind in kinds if number % 2 == 0 else kinds[::-1]:
                    argv_child = ["--child", kind, store.endpoint, str(args.fetches)]
                    done = subprocess.run(
                        [sys.executable, "-m", "bench", "s3_clients", *argv_child],
                        cwd=REPO,
                        env=env,
                        capture_output=True,
                        text=True,
                    )
                    if done.returncode != 0:
                        raise SystemExit(f"{kind} (exit {done.returncode}):\n{done.stderr[-2000:]}")
                    row[kind] = json.loads(done.stdout.strip().splitlines()[-1])
                rounds.append(row)
                print(f"round {number + 1}/{args.rounds} done", file=sys.stderr)
        finally:
            moto.stop()

    metrics = list(rounds[0][kinds[0]])
    for kind in kinds:
        for metric in metrics:
            result.add(f"{kind}.{metric}", [row[kind][metric] for row in rounds], unit(metric), "lower")
    if len(kinds) == 2:
        mine, theirs = kinds if kinds[0] == "obstore" else kinds[::-1]
        for metric in RATIOS:
            values = [row[mine][metric] / row[theirs][metric] if row[theirs][metric] else None for row in rounds]
            result.add(f"{mine}/{theirs}.{metric}", values, "x", "lower")
    result.details["rounds"] = rounds

    print(f"{'median of ' + str(args.rounds) + ' rounds':<20}" + "".join(f"{kind:>14}" for kind in kinds))
    for metric in metrics:
        medians = (statistics.median(row[kind][metric] for row in rounds) for kind in kinds)
        print(f"{metric:<20}" + "".join(f"{value:>14.2f}" for value in medians))
    return cli.finish(result, args)


def _version(module: str) -> str:
    from importlib.metadata import version

    return version(module)


if __name__ == "__main__":
    raise SystemExit(main())
