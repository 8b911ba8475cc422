"""Plot the newest (or given) benchmark results into docs/performance.png.

python -m bench.plot [--inprocess FILE] [--http FILE] [--out docs/performance.png]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bench.workloads import REPO

RESULTS = REPO / "bench" / "results"


def newest(prefix: str) -> Path | None:
    found = sorted(RESULTS.glob(f"{prefix}-*.json"))
    return found[-1] if found else None


def main(argv: list[str] | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inprocess", type=Path, default=newest("inprocess"))
    parser.add_argument("--http", type=Path, default=newest("http"))
    parser.add_argument("--no-http", dest="http", action="store_const", const=None, help="in-process panels only")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "performance.png")
    args = parser.parse_args(argv)

    panels = []
    inproc = json.loads(args.inprocess.read_text()) if args.inprocess else None
    http = json.loads(args.http.read_text()) if args.http else None
    if inproc:
        panels += [("inprocess", w) for w in inproc["workloads"]]
    if http:
        panels += [("http", v) for v in http["variants"]]
    if not panels:
        raise SystemExit("no results to plot")
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 4.2), squeeze=False)
    for ax, (kind, data) in zip(axes[0], panels, strict=True):
        if kind == "inprocess":
            arms = list(data["arms"])
            ms = [data["arms"][a]["ms_per_thumbnail"] for a in arms]
            low = [m - data["arms"][a]["round_ms"]["p10"] for a, m in zip(arms, ms, strict=True)]
            high = [data["arms"][a]["round_ms"]["p90"] - m for a, m in zip(arms, ms, strict=True)]
            bars = ax.bar(
                arms,
                ms,
                yerr=[[max(0, v) for v in low], [max(0, v) for v in high]],
                capsize=4,
                color=["#2b6cb0" if a.startswith("thumbsvc") else "#a0aec0" for a in arms],
            )
            for bar, arm in zip(bars, arms, strict=True):
                psnr = data["arms"][arm].get("psnr_mean")
                label = f"{bar.get_height():.0f} ms" + (f"\n{psnr:.1f} dB" if psnr else "")
                ax.annotate(
                    label,
                    (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center",
                    va="bottom",
                    fontsize=8,
                    xytext=(0, 3),
                    textcoords="offset points",
                )
            ax.set_title(
                f"in-process {data['workload'].upper()}: ms per thumbnail\n(1 thread, p10-p90 of rounds)", fontsize=9
            )
            ax.set_ylim(0, max(ms) * 1.25)
            ax.set_ylabel("ms per thumbnail (lower is better)")
            ax.tick_params(axis="x", labelrotation=20, labelsize=8)
        else:
            levels = data["levels"]
            names = list(levels[0]["servers"])
            width = 0.8 / len(names)
            for i, name in enumerate(names):
                xs = [j + i * width for j in range(len(levels))]
                med = [lv["servers"][name]["thumbs_per_s"]["median"] for lv in levels]
                lo = [
                    m - min(r["thumbs_per_s"] for r in lv["servers"][name]["rounds"])
                    for m, lv in zip(med, levels, strict=True)
                ]
                hi = [
                    max(r["thumbs_per_s"] for r in lv["servers"][name]["rounds"]) - m
                    for m, lv in zip(med, levels, strict=True)
                ]
                blues = ["#2b6cb0", "#63b3ed", "#90cdf4"]
                ax.bar(
                    xs,
                    med,
                    width,
                    yerr=[lo, hi],
                    capsize=3,
                    label=name,
                    color=blues[i % len(blues)] if name.startswith("thumbsvc") else "#ed8936",
                )
            ax.set_xticks([j + width * (len(names) - 1) / 2 for j in range(len(levels))])
            ax.set_xticklabels([f"{lv['clients']} clients" for lv in levels], fontsize=8)
            ax.set_title(f"HTTP {data['variant']}: thumbnails/s\n(median of rounds, min-max)", fontsize=9)
            ax.set_ylabel("thumbnails/s (higher is better)")
            ax.legend(fontsize=8)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
