"""Which async S3 client the S3 loader uses: obstore against aiobotocore, on moto over loopback.

Self-contained: it starts moto in server mode (``ThreadedMotoServer`` on 127.0.0.1, port 0) in a
process of its own, creates an IAM user and access key, a private bucket and two objects (100 kB
and 3 MB of random bytes), turns SigV4 checking on, then runs each client in fresh processes,
alternating, ``--rounds`` times. Per round and client it reports:

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
in the CPU and memory columns. The results go to ``--out`` (a JSON file outside the repository;
default under the system temp folder); the table is printed.

    python -m bench.s3_clients                       # 5 rounds, 200 fetches per size
    python -m bench.s3_clients --rounds 3 --fetches 100 --out /tmp/s3-clients.json

Needs ``obstore``, ``aiobotocore`` and ``moto[server]`` (with boto3) installed; the credentials are
throwaway keys made by moto, and the environment of every child has ``AWS_EC2_METADATA_DISABLED=true``
and explicit keys, so no credential chain looks for instance metadata.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BUCKET = "bench-private"
SIZES = {"100k": 100_000, "3m": 3_000_000}
REGION = "us-east-1"

MOTO = """
import json, logging, os, sys, urllib.request
logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
config = json.loads(sys.argv[1])
import boto3
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
host, port = server.get_host_and_port()
endpoint = f"http://{host}:{port}"
boot = dict(endpoint_url=endpoint, region_name=config["region"], aws_access_key_id="boot", aws_secret_access_key="boot")
iam = boto3.client("iam", **boot)
iam.create_user(UserName="bench")
policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["s3:*"], "Resource": "*"}]}
iam.put_user_policy(UserName="bench", PolicyName="s3", PolicyDocument=json.dumps(policy))
key = iam.create_access_key(UserName="bench")["AccessKey"]
s3 = boto3.client("s3", **boot)
s3.create_bucket(Bucket=config["bucket"])
for name, size in config["sizes"].items():
    s3.put_object(Bucket=config["bucket"], Key=f"objects/{name}.bin", Body=os.urandom(size))
request = urllib.request.Request(
    endpoint + "/moto-api/reset-auth", data=b"0", method="POST", headers={"Content-Type": "text/plain"}
)
urllib.request.urlopen(request).read()
print(json.dumps({"endpoint": endpoint, "key": key["AccessKeyId"], "secret": key["SecretAccessKey"]}), flush=True)
sys.stdin.read()
server.stop()
"""


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run_client(kind: str, endpoint: str, fetches: int) -> dict[str, float]:
    """In a fresh process: import one library, make a client, and time its fetches."""
    import asyncio

    base_rss = rss_mib()
    started = time.perf_counter()
    if kind == "obstore":
        import obstore
        from obstore.store import S3Store
    else:
        from aiobotocore.config import AioConfig
        from aiobotocore.session import get_session
    result: dict[str, float] = {"import_ms": (time.perf_counter() - started) * 1000}
    result["rss_import_mib"] = rss_mib() - base_rss

    async def main() -> None:
        started = time.perf_counter()
        if kind == "obstore":
            store = S3Store(
                BUCKET,
                endpoint=endpoint,
                region=REGION,
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

            await go(get, head, started, None)
        else:
            session = get_session()
            config = AioConfig(retries={"max_attempts": 1}, s3={"addressing_style": "path"})
            async with session.create_client("s3", endpoint_url=endpoint, region_name=REGION, config=config) as client:

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

                await go(get, head, started, None)

    async def go(get, head, started: float, _: None) -> None:  # type: ignore[no-untyped-def]
        result["client_ms"] = (time.perf_counter() - started) * 1000
        t0 = time.perf_counter()
        await get("objects/100k.bin")
        result["first_ms"] = (time.perf_counter() - t0) * 1000
        for name, size in SIZES.items():
            key = f"objects/{name}.bin"
            firsts, totals = [], []
            cpu0 = time.process_time()
            for _ in range(fetches):
                t0 = time.perf_counter()
                first, got = await get(key)
                totals.append(time.perf_counter() - t0)
                firsts.append(first)
                assert got == size, (got, size)
            result[f"{name}_cpu_ms"] = (time.process_time() - cpu0) / fetches * 1000
            result[f"{name}_ttfb_ms"] = statistics.median(firsts) * 1000
            result[f"{name}_total_ms"] = statistics.median(totals) * 1000
            cpu0 = time.process_time()
            for _ in range(fetches // 8):
                await asyncio.gather(*(get(key) for _ in range(8)))
            result[f"{name}_cpu_ms_c8"] = (time.process_time() - cpu0) / (fetches // 8 * 8) * 1000
        heads = []
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

    asyncio.run(main())
    result["rss_mib"] = rss_mib() - base_rss
    return result


def child_env(credentials: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID=credentials["key"],
        AWS_SECRET_ACCESS_KEY=credentials["secret"],
        AWS_REGION=REGION,
        AWS_EC2_METADATA_DISABLED="true",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
    )
    return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.s3_clients", description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--fetches", type=int, default=200, help="sequential GETs per object size and round")
    parser.add_argument("--clients", default="obstore,aiobotocore")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "thumbsvc-s3-clients.json")
    parser.add_argument("--child", nargs=3, metavar=("KIND", "ENDPOINT", "FETCHES"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        kind, endpoint, fetches = args.child
        print(json.dumps(run_client(kind, endpoint, int(fetches))))
        return 0

    base_env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    base_env["AWS_EC2_METADATA_DISABLED"] = "true"
    moto = subprocess.Popen(
        [sys.executable, "-c", MOTO, json.dumps({"region": REGION, "bucket": BUCKET, "sizes": SIZES})],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=base_env,
        text=True,
    )
    assert moto.stdout is not None and moto.stdin is not None
    try:
        credentials = json.loads(moto.stdout.readline())
        kinds = [kind.strip() for kind in args.clients.split(",") if kind.strip()]
        rounds: list[dict[str, dict[str, float]]] = []
        for number in range(args.rounds):
            row: dict[str, dict[str, float]] = {}
            for kind in kinds if number % 2 == 0 else reversed(kinds):
                done = subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "bench.s3_clients",
                        "--child",
                        kind,
                        credentials["endpoint"],
                        str(args.fetches),
                    ],
                    env=child_env(credentials),
                    capture_output=True,
                    text=True,
                    check=True,
                )
                row[kind] = json.loads(done.stdout.strip().splitlines()[-1])
            rounds.append(row)
            print(f"round {number + 1}/{args.rounds} done", file=sys.stderr)
    finally:
        moto.stdin.close()
        moto.wait(timeout=30)
    medians = {
        kind: {metric: statistics.median(r[kind][metric] for r in rounds) for metric in rounds[0][kind]}
        for kind in kinds
    }
    report = {"rounds": rounds, "median": medians, "fetches": args.fetches, "python": sys.version.split()[0]}
    for kind in kinds:
        module = "obstore" if kind == "obstore" else "aiobotocore"
        report.setdefault("versions", {})[kind] = _version(module)
    args.out.write_text(json.dumps(report, indent=2))
    metrics = list(medians[kinds[0]])
    print(f"{'median of ' + str(args.rounds) + ' rounds':<20}" + "".join(f"{kind:>14}" for kind in kinds))
    for metric in metrics:
        print(f"{metric:<20}" + "".join(f"{medians[kind][metric]:>14.2f}" for kind in kinds))
    print(f"saved to {args.out}")
    return 0


def _version(module: str) -> str:
    from importlib.metadata import version

    return version(module)


if __name__ == "__main__":
    raise SystemExit(main())
