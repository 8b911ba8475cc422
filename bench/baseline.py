"""baseline: a release's reference figures, from result files, for ``bench/baselines/``.

    python -m bench baseline --release 0.1.0 R1.json R2.json ...   # writes bench/baselines/0.1.0.json

Keeps each workload's metrics (medians and per-round values) with its commit, date, machine and
settings, never the details: a baseline is a few KB. One per release is committed; everything else
stays outside the repository. Later runs compare with it: ``python -m bench NAME --compare
bench/baselines/0.1.0.json``. Smoke results are refused.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from bench.lib import results
from bench.lib.photos import REPO

BASELINES = REPO / "bench" / "baselines"
MAX_BYTES = 32_000


def make(docs: list[dict[str, Any]], release: str) -> dict[str, Any]:
    workloads: dict[str, Any] = {}
    for doc in docs:
        if doc["workload"] in workloads:
            raise SystemExit(f"two results of {doc['workload']}: give one per workload")
        workloads[doc["workload"]] = {
            key: doc.get(key) for key in ("commit", "started", "argv", "machine", "settings", "metrics")
        }
    return {"schema": results.BASELINE_SCHEMA, "release": release, "workloads": workloads}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench baseline", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("results", type=Path, nargs="+")
    parser.add_argument("--release", required=True, help="the release these figures belong to, e.g. 0.1.0")
    parser.add_argument("--out", type=Path, help="default bench/baselines/RELEASE.json")
    parser.add_argument("--allow-smoke", action="store_true", help=argparse.SUPPRESS)  # for the smoke's own check
    args = parser.parse_args(argv)
    docs = [results.load(path) for path in args.results]
    if not args.allow_smoke and any(doc.get("smoke") for doc in docs):
        raise SystemExit("a smoke result is no baseline: run the workloads for real")
    text = json.dumps(make(docs, args.release), indent=1) + "\n"
    out = args.out or BASELINES / f"{args.release}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    size = len(text.encode())
    print(f"wrote {out} ({size / 1000:.1f} KB)" + (" - larger than a baseline should be" if size > MAX_BYTES else ""))
    return 0
