"""Prometheus metrics: one registry per app, multi-process aware.

Every label has a fixed, small set of values (route class, status class, cache name,
source kind, rejection reason): never a host, a path or a URL.

When ``PROMETHEUS_MULTIPROC_DIR`` is set (``thumbsvc serve --workers N`` sets it up), the
values live in that directory, one file per worker, and ``/metrics`` adds them up across
workers. prometheus-client decides the mode when it is first imported, so the variable must
be set before the worker starts.
"""

from __future__ import annotations

import glob
import os
import re

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as prometheus_multiprocess
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

CONTENT_TYPE = CONTENT_TYPE_LATEST
# Route names (app.py and the playground's), the values of the ``route`` label; anything else is "other".
ROUTE_NAMES = (
    "thumbnail",
    "index",
    "healthz",
    "readyz",
    "metrics",
    "playground",
    "playground_grid",
    "playground_sign",
    "playground_static",
)
CACHE_NAMES = ("result", "source", "decoded", "refusal")
REJECT_REASONS = (
    "queue_full",
    "queue_wait",
    "queue_timeout",
    "draining",
    "fetch_full",
    "fetch_host_full",
    "fetch_wait",
    "render_timeout",
)
SOURCE_KINDS = ("local", "remote")

# Renders take milliseconds (small JPEGs) to seconds (50 MP sources, big AVIFs).
RENDER_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
FETCH_BUCKETS_S = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
WAIT_BUCKETS_S = (0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0)
REQUEST_BUCKETS_S = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_PID_FILE = re.compile(r"_(\d+)\.db$")


def multiprocess_dir() -> str | None:
    """The directory of multi-process mode, or None in single-process mode."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class Metrics:
    """All of thumbsvc's metrics, registered on a registry of their own."""

    def __init__(self) -> None:
        self.multiprocess_dir = multiprocess_dir()
        registry = self.registry = CollectorRegistry(auto_describe=True)
        if self.multiprocess_dir is None:
            # Process metrics describe one process: in multi-process mode they would be misleading.
            ProcessCollector(registry=registry)
            PlatformCollector(registry=registry)
            GCCollector(registry=registry)

        self.requests = Counter(
            "thumbsvc_requests_total",
            "HTTP requests answered, by route name and status class.",
            ["route", "status"],
            registry=registry,
        )
        self.request_seconds = Histogram(
            "thumbsvc_request_seconds",
            "Time to answer an HTTP request, by route name.",
            ["route"],
            buckets=REQUEST_BUCKETS_S,
            registry=registry,
        )
        self.renders = Counter("thumbsvc_renders_total", "Renders actually performed.", registry=registry)
        self.render_errors = Counter(
            "thumbsvc_render_errors_total", "Renders that ended in an error.", registry=registry
        )
        self.decodes = Counter(
            "thumbsvc_decodes_total",
            "Source images decoded (a render from a cached or shared decode is not one).",
            registry=registry,
        )
        self.memory_trims = Counter(
            "thumbsvc_memory_trims_total",
            "Times the heap freed by large renders went back to the kernel, once idle.",
            registry=registry,
        )
        self.render_seconds = Histogram(
            "thumbsvc_render_seconds",
            "Pixel work of one render (decode, resize, encode) in its worker thread.",
            buckets=RENDER_BUCKETS_S,
            registry=registry,
        )
        self.fetch_seconds = Histogram(
            "thumbsvc_fetch_seconds",
            "Time to load a source, by kind (local or remote).",
            ["kind"],
            buckets=FETCH_BUCKETS_S,
            registry=registry,
        )
        self.source_bytes = Counter(
            "thumbsvc_source_bytes_total", "Bytes of source images loaded, by kind.", ["kind"], registry=registry
        )
        self.cache_hits = Counter(
            "thumbsvc_cache_hits_total", "Lookups answered from a cache.", ["cache"], registry=registry
        )
        self.cache_misses = Counter(
            "thumbsvc_cache_misses_total", "Lookups a cache could not answer.", ["cache"], registry=registry
        )
        self.cache_evictions = Counter(
            "thumbsvc_cache_evictions_total",
            "Entries dropped from a cache, by reason (size, ttl, or memory: to make room for a render).",
            ["cache", "reason"],
            registry=registry,
        )
        self.cache_bytes = Gauge(
            "thumbsvc_cache_bytes",
            "Bytes held by a cache.",
            ["cache"],
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.cache_entries = Gauge(
            "thumbsvc_cache_entries",
            "Entries held by a cache.",
            ["cache"],
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.flight_joins = Counter(
            "thumbsvc_singleflight_joins_total",
            "Requests that waited for an identical request's render or fetch instead of doing their own.",
            ["cache"],
            registry=registry,
        )
        self.rejected = Counter(
            "thumbsvc_rejected_total",
            "Requests refused with 503 (render queue, fetch slots, render deadline), by reason.",
            ["reason"],
            registry=registry,
        )
        self.queue_depth = Gauge(
            "thumbsvc_queue_depth",
            "Admitted renders waiting for a render slot (downloads are not admitted until their bytes are in).",
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.renders_in_progress = Gauge(
            "thumbsvc_renders_in_progress",
            "Render slots in use.",
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.queue_wait_seconds = Histogram(
            "thumbsvc_queue_wait_seconds",
            "Time an admitted request waited for a render slot.",
            buckets=WAIT_BUCKETS_S,
            registry=registry,
        )
        self._prime()

    def _prime(self) -> None:
        """Create the labelled series at zero so dashboards and rate() see them from the start."""
        for status in ("2xx", "3xx", "4xx", "5xx"):
            self.requests.labels("thumbnail", status)
        for name in CACHE_NAMES:
            self.cache_hits.labels(name)
            self.cache_misses.labels(name)
            self.flight_joins.labels(name)
            self.cache_bytes.labels(name)
            self.cache_entries.labels(name)
            for reason in ("size", "ttl", "memory"):
                self.cache_evictions.labels(name, reason)
        for reason in REJECT_REASONS:
            self.rejected.labels(reason)
        for kind in SOURCE_KINDS:
            self.fetch_seconds.labels(kind)
            self.source_bytes.labels(kind)

    def exposition(self) -> bytes:
        """Return the Prometheus text of this process, or of all workers in multi-process mode."""
        if self.multiprocess_dir is None:
            return bytes(generate_latest(self.registry))
        registry = CollectorRegistry()
        prometheus_multiprocess.MultiProcessCollector(registry, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
        return bytes(generate_latest(registry))

    def forget_dead_workers(self) -> None:
        """Drop the live gauges of workers that have exited (recycled or crashed) from the shared directory."""
        if self.multiprocess_dir is None:
            return
        pids = set()
        for path in glob.glob(os.path.join(self.multiprocess_dir, "gauge_live*_*.db")):
            match = _PID_FILE.search(path)
            if match:
                pids.add(int(match.group(1)))
        for pid in pids:
            if not _alive(pid):
                prometheus_multiprocess.mark_process_dead(pid, self.multiprocess_dir)  # type: ignore[no-untyped-call]

    def worker_exiting(self) -> None:
        """Remove this worker's live gauges, so its queue and cache stop counting once it is gone."""
        if self.multiprocess_dir is not None:
            prometheus_multiprocess.mark_process_dead(os.getpid(), self.multiprocess_dir)  # type: ignore[no-untyped-call]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - someone else's process
        return True
    return True


def prepare_multiprocess_dir(path: str) -> None:
    """Create ``path`` if needed and remove the value files of an earlier run (they would be added in)."""
    os.makedirs(path, exist_ok=True)
    for stale in glob.glob(os.path.join(path, "*.db")):
        os.remove(stale)
