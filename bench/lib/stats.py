"""Small statistics helpers shared by the benchmarks (no numpy needed)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence


def quantile(values: Sequence[float], q: float) -> float:
    """Return the ``q`` quantile (linear interpolation, like numpy's default)."""
    data = sorted(values)
    if not data:
        return math.nan
    pos = (len(data) - 1) * q
    low = math.floor(pos)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (pos - low)


def summary(values: Sequence[float]) -> dict[str, float]:
    """Return median, p10, p90, IQR (p25..p75) and count, rounded for reports."""
    return {
        "median": round(statistics.median(values), 3) if values else math.nan,
        "p10": round(quantile(values, 0.10), 3),
        "p25": round(quantile(values, 0.25), 3),
        "p75": round(quantile(values, 0.75), 3),
        "p90": round(quantile(values, 0.90), 3),
        "n": len(values),
    }


def geomean(values: Sequence[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else math.nan
