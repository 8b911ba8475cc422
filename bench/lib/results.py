"""Result files: what every workload writes, where, and how two of them compare.

A result is one JSON object::

    {"schema": "thumbsvc-bench/1", "workload": "http", "smoke": false, "started": "...",
     "elapsed_s": 61.2, "argv": [...], "commit": "2ce149a", "machine": {...}, "settings": {...},
     "metrics": {"cold.c4.thumbsvc.thumbs_per_core_s":
                     {"unit": "thumbs/core-s", "better": "higher", "values": [13.6, 13.9, 14.0], "median": 13.9},
                 ...},
     "details": {...}}

``metrics`` are the figures worth comparing, each with its value per round (or per run) so a
reader sees the spread; ``details`` is everything else (per job, per round) for the curious and
never goes into a baseline. Ratios against a rival measured in the same run (``.../pyvips``,
``.../thumbor``) have the unit ``x``: they are what holds from one machine to another.

A baseline (``python -m bench baseline``) keeps only the metrics of one result per workload::

    {"schema": "thumbsvc-bench-baseline/1", "release": "0.1.0",
     "workloads": {"http": {"commit": ..., "started": ..., "machine": ..., "settings": ..., "metrics": {...}}}}

Results go outside the repository: ``$THUMBSVC_BENCH_OUT``, else ``~/.cache/thumbsvc-bench/results``
(under ``$THUMBSVC_BENCH_CACHE`` when set), named ``<time>-<workload>.json``.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.lib.photos import REPO, bench_home

SCHEMA = "thumbsvc-bench/1"
BASELINE_SCHEMA = "thumbsvc-bench-baseline/1"


@dataclass
class Result:
    """One run of one workload, filled in by the workload and written by ``write``."""

    workload: str
    argv: list[str]
    smoke: bool = False
    settings: dict[str, Any] = field(default_factory=dict)
    machine: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    started: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S"))
    _t0: float = field(default_factory=time.monotonic)

    def add(self, name: str, values: Iterable[float | None], unit: str, better: str = "lower") -> None:
        """Record metric ``name``: its value per round (``None`` left out), its unit and which way is better."""
        if better not in ("lower", "higher", "none"):
            raise ValueError(f"better must be lower, higher or none, not {better!r}")
        kept = [round(float(v), 4) for v in values if v is not None and math.isfinite(float(v))]
        self.metrics[name] = {
            "unit": unit,
            "better": better,
            "values": kept,
            "median": round(statistics.median(kept), 4) if kept else None,
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "workload": self.workload,
            "smoke": self.smoke,
            "started": self.started,
            "elapsed_s": round(time.monotonic() - self._t0, 1),
            "argv": self.argv,
            "commit": self.machine.get("thumbsvc_commit", "unknown"),
            "machine": {**self.machine, "loadavg_end": [round(v, 2) for v in os.getloadavg()]},
            "settings": self.settings,
            "metrics": self.metrics,
            "details": self.details,
        }


def results_dir() -> Path:
    return Path(os.environ.get("THUMBSVC_BENCH_OUT") or bench_home() / "results")


def inside_repo(path: Path) -> bool:
    resolved = path.resolve()
    return resolved == REPO or REPO in resolved.parents


def write(result: Result, out: str | Path | None) -> Path:
    """Write ``result`` to ``out`` (default: a new file in ``results_dir()``); refuse a path inside the repository."""
    path = Path(out) if out else results_dir() / f"{time.strftime('%Y%m%d-%H%M%S')}-{result.workload}.json"
    if inside_repo(path):
        raise SystemExit(
            f"{path}: results go outside the repository (default {results_dir()}); "
            "a release's baseline goes in bench/baselines/ through `python -m bench baseline`"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result.to_json(), indent=1) + "\n")
    return path


def load(path: str | Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(Path(path).read_text())
    if doc.get("schema") not in (SCHEMA, BASELINE_SCHEMA):
        raise SystemExit(f"{path}: not a result or baseline of this suite (schema {doc.get('schema')!r})")
    return doc


def section(doc: Mapping[str, Any], workload: str) -> Mapping[str, Any] | None:
    """Return the part of a result or baseline that holds ``workload``'s metrics (None if it has none)."""
    if doc.get("schema") == BASELINE_SCHEMA:
        found: Mapping[str, Any] | None = doc["workloads"].get(workload)
        return found
    return doc if doc.get("workload") == workload else None


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3g}" if abs(value) < 100 else f"{value:.1f}"


def compare(base: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Return a table of every metric in both: medians, the ratio new / base and which way it moved.

    A change is called out only when the two runs' ranges (min..max of their values) do not overlap;
    otherwise it is ``~`` (within the spread). Absolute figures compare only on the same machine;
    ratios to a rival of the same run (unit ``x``) carry across machines.
    """
    base_metrics: Mapping[str, Any] = base.get("metrics", {})
    new_metrics: Mapping[str, Any] = new.get("metrics", {})
    lines = [
        f"compared with {base.get('commit', '?')} ({base.get('started', '?')}) -> {new.get('commit', '?')}"
        f" ({new.get('started', '?')})",
        f"{'metric':58} {'unit':>14} {'base':>9} {'now':>9} {'now/base':>9}  verdict",
    ]
    for name in sorted(set(base_metrics) & set(new_metrics)):
        b, n = base_metrics[name], new_metrics[name]
        if b["median"] is None or n["median"] is None:
            continue
        ratio = n["median"] / b["median"] if b["median"] else math.nan
        verdict = "~"
        if b["values"] and n["values"] and (max(n["values"]) < min(b["values"]) or min(n["values"]) > max(b["values"])):
            up = n["median"] > b["median"]
            better = n.get("better", "lower")
            verdict = "changed" if better == "none" else ("better" if up == (better == "higher") else "WORSE")
        lines.append(
            f"{name[:58]:58} {n['unit'][:14]:>14} {_fmt(b['median']):>9} {_fmt(n['median']):>9} {ratio:9.3f}  {verdict}"
        )
    only = sorted(set(base_metrics) ^ set(new_metrics))
    if only:
        lines.append(f"({len(only)} metrics in one file only: {', '.join(only[:6])}{' ...' if len(only) > 6 else ''})")
    return lines


def print_comparison(against: str | Path, new: Mapping[str, Any]) -> None:
    """Print ``new`` compared with the same workload's metrics in the result or baseline at ``against``."""
    doc = load(against)
    base = section(doc, str(new["workload"]))
    if base is None:
        print(f"{against}: holds no {new['workload']} metrics; nothing to compare", file=sys.stderr)
        return
    print("\n".join(compare(base, new)))
