"""How much memory renders may use by default: read the process's memory limit, subtract what is not renders.

With a container memory limit (cgroup v2 ``memory.max``, or v1 ``memory.limit_in_bytes``), the
render memory budget is what is left of the limit after an idle process, the caches' byte bounds
and a safety margin; one render alone may use all of it (the hard ceiling). With no limit, the
budget is ``BUDGET_PER_SLOT`` per render slot and the ceiling ``DEFAULT_CEILING``: two 24 MP
progressive JPEGs decode together on two slots (docs/operations.md, "Memory").

Pure functions over numbers and file contents; ``memory_limit`` is the only one that reads files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# Without a memory limit: per render slot (a 24 MP progressive JPEG's render is estimated at about 99 MB).
BUDGET_PER_SLOT = 100_000_000
DEFAULT_CEILING = 512_000_000
# An idle process with its imports (about 45 MiB measured) and the buffers of requests in flight.
BASELINE_BYTES = 64_000_000
# Kept free under a limit: allocator slack, sources held by queued requests, estimates' error.
MARGIN_FRACTION = 0.10
MIN_MARGIN_BYTES = 32_000_000
# Below this there is no room for even one ordinary render: refuse to start rather than 413 everything.
MIN_BUDGET_BYTES = 64_000_000
# cgroup v1 writes a page-rounded 2**63 for "no limit"; anything this large is no limit.
UNLIMITED_BYTES = 1 << 60


@dataclass(frozen=True, slots=True)
class RenderMemory:
    """The default render memory budget and hard ceiling, and where they came from (for check-config)."""

    budget: int
    ceiling: int
    source: str


def read_limit(text: str) -> int | None:
    """Given the text of a cgroup memory limit file, return the limit in bytes, or None for no limit."""
    value = text.strip()
    if not value or value == "max":
        return None
    try:
        limit = int(value)
    except ValueError:
        return None
    return limit if 0 < limit < UNLIMITED_BYTES else None


def memory_limit(root: Path = Path("/sys/fs/cgroup"), proc_cgroup: Path = Path("/proc/self/cgroup")) -> int | None:
    """Return this process's cgroup memory limit in bytes, or None when there is none (or no cgroup)."""
    v2_path = v1_path = ""
    try:
        for line in proc_cgroup.read_text().splitlines():
            hierarchy, _, rest = line.partition(":")
            controllers, _, path = rest.partition(":")
            if hierarchy == "0" and controllers == "":
                v2_path = path
            elif "memory" in controllers.split(","):
                v1_path = path
    except OSError:
        pass
    candidates = [
        root / v2_path.lstrip("/") / "memory.max",
        root / "memory.max",
        root / "memory" / v1_path.lstrip("/") / "memory.limit_in_bytes",
        root / "memory" / "memory.limit_in_bytes",
    ]
    limits = []
    for candidate in candidates:
        try:
            limit = read_limit(candidate.read_text())
        except OSError:
            continue
        if limit is not None:
            limits.append(limit)
    return min(limits) if limits else None


def render_memory(limit: int | None, *, slots: int, cache_bytes: int) -> RenderMemory:
    """Given the memory limit (or None), the render slots and the caches' byte bounds, return the defaults.

    Raise ``ValueError`` naming what to change when a limit leaves less than ``MIN_BUDGET_BYTES``.
    """
    if limit is None:
        return RenderMemory(
            slots * BUDGET_PER_SLOT,
            DEFAULT_CEILING,
            f"{BUDGET_PER_SLOT // 1_000_000} MB per render slot, no memory limit",
        )
    margin = max(MIN_MARGIN_BYTES, int(limit * MARGIN_FRACTION))
    available = limit - BASELINE_BYTES - cache_bytes - margin
    if available < MIN_BUDGET_BYTES:
        raise ValueError(
            f"the memory limit ({_mb(limit)}) leaves {_mb(max(0, available))} for renders after the caches "
            f"({_mb(cache_bytes)}), an idle process ({_mb(BASELINE_BYTES)}) and a margin ({_mb(margin)}); "
            "raise the limit or lower THUMBSVC_CACHE_BYTES, THUMBSVC_SOURCE_CACHE_BYTES and "
            "THUMBSVC_DECODED_CACHE_BYTES"
        )
    source = (
        f"memory limit {_mb(limit)} less caches {_mb(cache_bytes)}, idle process {_mb(BASELINE_BYTES)}, "
        f"margin {_mb(margin)}"
    )
    return RenderMemory(available, available, source)


def _mb(nbytes: int) -> str:
    return f"{nbytes / 1_000_000:.0f} MB"
