"""plot: one PNG per result file: every metric's median and range, one panel per unit.

    python -m bench plot RESULT.json [RESULT.json ...]        # RESULT.png beside each result
    python -m bench plot RESULT.json --out docs/perf/http.png  # where docs/performance.md shows it
    python -m bench plot RESULT.json --match per_core          # only metrics whose name contains this

Bars are medians, whiskers the lowest and highest value (per round or per run); the title names
the workload, the commit and the date, so a picture is never read for another commit's.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench.lib import results

# Units whose metrics are drawn first (the rest follow in the order they appear).
PREFERRED = ("thumbs/core-s", "x", "ms", "thumbs/s", "cores", "MiB")


def plot(doc: dict[str, Any], out: Path, match: str | None = None) -> bool:
    """Draw ``doc``'s metrics into ``out``; return False, drawing nothing, for a skipped run (no metric at all)."""
    if not doc["metrics"] and doc.get("details", {}).get("skipped"):
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
    for name, metric in doc["metrics"].items():
        if metric["median"] is None or (match and match not in name):
            continue
        panels[metric["unit"]].append((name, metric))
    if not panels:
        raise SystemExit(f"no metric to plot in {doc.get('workload')} result")
    units = sorted(panels, key=lambda u: (PREFERRED.index(u) if u in PREFERRED else len(PREFERRED), u))
    heights = [0.9 + 0.28 * len(panels[u]) for u in units]
    fig, axes = plt.subplots(len(units), 1, figsize=(9, sum(heights) + 0.8), squeeze=False, height_ratios=heights)
    for ax, unit in zip(axes[:, 0], units, strict=True):
        rows = panels[unit]
        medians = [m["median"] for _, m in rows]
        low = [m["median"] - min(m["values"]) for _, m in rows]
        high = [max(m["values"]) - m["median"] for _, m in rows]
        colours = ["#2b6cb0" if "thumbsvc" in name else "#a0aec0" for name, _ in rows]
        positions = range(len(rows))
        ax.barh(positions, medians, xerr=[low, high], capsize=3, color=colours)
        ax.set_yticks(list(positions), [name for name, _ in rows], fontsize=7)
        ax.invert_yaxis()
        better = {m["better"] for _, m in rows}
        direction = f" ({better.pop()} is better)" if len(better) == 1 and "none" not in better else ""
        ax.set_xlabel(unit + direction, fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
        for pos, value in zip(positions, medians, strict=True):
            ax.annotate(
                f"{value:.3g}", (value, pos), xytext=(3, 0), textcoords="offset points", va="center", fontsize=6
            )
    smoke = "  [SMOKE: figures mean nothing]" if doc.get("smoke") else ""
    fig.suptitle(
        f"bench {doc['workload']} at {doc.get('commit', '?')}, {doc.get('started', '?')}{smoke}\n"
        f"median of rounds, whiskers min-max; {doc.get('machine', {}).get('cpu', '')}",
        fontsize=9,
    )
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench plot", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("result", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, help="PNG file (one result only; default RESULT.png beside it)")
    parser.add_argument("--match", help="only metrics whose name contains this text")
    args = parser.parse_args(argv)
    if args.out and len(args.result) > 1:
        raise SystemExit("--out takes one result")
    for path in args.result:
        doc = results.load(path)
        if doc.get("schema") != results.SCHEMA:
            raise SystemExit(f"{path}: a baseline; plot the result files it was made from")
        out = args.out or path.with_suffix(".png")
        if plot(doc, out, args.match):
            print(f"wrote {out}")
        else:
            print(f"{path}: nothing to plot, the run was skipped ({doc['details']['skipped']})")
    return 0
