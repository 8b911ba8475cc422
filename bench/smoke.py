"""smoke: every workload's ``--smoke`` (one tiny round on the bundled samples), then plot, baseline and compare.

    python -m bench smoke                      # what .ci/run runs; no timing is asserted
    python -m bench smoke --only http,memory --keep /tmp/smoke

Each workload runs in its own process (``python -m bench NAME --smoke``) with a time limit and
with ``THUMBSVC_BENCH_OUT`` set in its environment, as a user's shell would have it: a workload
that leaked the runner's variables to ``thumbsvc serve`` would see the server refuse them. Then
every result is plotted, the results are made into a baseline, and each is compared with it.
Rivals whose venv is missing (thumbor, pyvips) are skipped by the workloads with a line. Ends with
``N passed, N failed`` and a non-zero status if anything failed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import bench
from bench.lib.photos import REPO

TIMEOUT_S = 120


def run(name: str, argv: list[str], env: dict[str, str], log: list[str]) -> bool:
    started = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "bench", *argv], cwd=REPO, env=env, capture_output=True, text=True, timeout=TIMEOUT_S
        )
    except subprocess.TimeoutExpired:
        print(f"FAILED {name}: over {TIMEOUT_S} s")
        return False
    seconds = time.monotonic() - started
    if done.returncode != 0:
        print(f"FAILED {name} (exit {done.returncode}, {seconds:.1f} s):\n{done.stdout[-1500:]}{done.stderr[-3000:]}")
        return False
    skips = [line for line in done.stdout.splitlines() if "skipped" in line]
    print(f"ok     {name} ({seconds:.1f} s)" + "".join(f"\n         {line}" for line in skips))
    log.append(done.stdout)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench smoke", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", help="comma-separated workloads (default: all)")
    parser.add_argument(
        "--keep", type=Path, help="write the smoke's results and plots here (default: a temporary folder)"
    )
    args = parser.parse_args(argv)
    names = bench.workloads() if not args.only else [n.strip() for n in args.only.split(",") if n.strip()]
    started = time.monotonic()
    passed = failed = 0
    log: list[str] = []
    with tempfile.TemporaryDirectory(prefix="thumbsvc-bench-smoke-") as tmp:
        out = args.keep or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "THUMBSVC_BENCH_OUT": str(out)}
        made = []
        for name in names:
            result = out / f"{name}.json"
            if run(name, [name, "--smoke", "--out", str(result)], env, log):
                passed += 1
                made.append(result)
            else:
                failed += 1
        if made:
            baseline = out / "baseline.json"
            steps = [
                ("plot", ["plot", *map(str, made)]),
                (
                    "baseline",
                    ["baseline", "--release", "smoke", "--allow-smoke", "--out", str(baseline), *map(str, made)],
                ),
                ("compare", ["compare", str(baseline), *map(str, made)]),
            ]
            for label, step in steps:
                ok = run(label, step, env, log)
                passed, failed = passed + ok, failed + (not ok)
    print(f"bench smoke: {time.monotonic() - started:.1f} s")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0
