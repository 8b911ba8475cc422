"""In-process benchmark: thumbsvc's render path against plain Pillow and pyvips, single thread.

Each arm runs in its own worker process (``bench.worker``; pyvips from its venv), all fed the same
jobs from source bytes in memory. Rounds are interleaved: every round visits the jobs in a fresh
shuffled order and, for each job, asks every arm in a rotated order, so machine noise lands on
all arms alike. Reported per arm: mean over jobs of the per-job median time (ms per thumbnail),
the spread of the per-round means (p10/p90, IQR), ratios to the baseline arm, the peak RSS of
the arm's process, and the quality of every output (luma PSNR and SSIM, see ``bench.quality``).

    python -m bench.inprocess                     # W1 and W2, arms thumbsvc, pillow, pyvips
    python -m bench.inprocess --workload w1 --rounds 7 --arms thumbsvc,pyvips,pillow-draft
    python -m bench.inprocess --photos /some/folder
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.procs import machine_info, popen, tree_commit, venv_python
from bench.stats import geomean, summary
from bench.workloads import REPO, Job, expected_size, jobs_for, w1_photos, w1r_photos, w2_photos

RESULTS = REPO / "bench" / "results"
DEFAULT_ARMS = "thumbsvc,pillow,pyvips"


class Worker:
    """One arm's worker process, spoken to one JSON line at a time."""

    def __init__(self, arm: str, cpus: set[int] | None, tree: Path) -> None:
        self.arm = arm
        python = venv_python("pyvips") if arm.startswith("pyvips") else sys.executable
        self.proc = popen(
            [python, "-m", "bench.worker", arm.split(":")[0]],
            cpus=cpus,
            env={"VIPS_CONCURRENCY": "1", "OMP_NUM_THREADS": "1", "THUMBSVC_BENCH_TREE": str(tree)},
            stdin=-1,
            stdout=-1,
            text=True,
        )
        self.peak_rss_kib = 0

    def ask(self, request: dict[str, object]) -> dict[str, object]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"worker {self.arm} died (exit {self.proc.wait()})")
        answer: dict[str, object] = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"{self.arm}: {answer['error']}")
        self.peak_rss_kib = max(self.peak_rss_kib, int(answer.get("rss_kib", 0)))  # type: ignore[call-overload]
        return answer

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)


def start_workers(
    arms: list[str], paths: list[str], cpus: set[int] | None, tree: Path, alt_trees: dict[str, Path]
) -> dict[str, Worker]:
    workers = {}
    for arm in arms:
        _, _, alt = arm.partition(":")
        worker = Worker(arm, cpus, alt_trees[alt] if alt else tree)
        try:
            worker.ask({"op": "load", "paths": paths})
        except RuntimeError as exc:
            print(f"  skipping arm {arm}: {exc}", file=sys.stderr)
            worker.proc.kill()
            continue
        workers[arm] = worker
    return workers


def run_workload(name: str, jobs: list[Job], args: argparse.Namespace, scratch: Path) -> dict[str, object]:
    from bench.quality import measure

    paths = sorted({job.path for job in jobs})
    workers = start_workers(args.arms, paths, args.cpus, args.tree, args.alt_trees)
    arms = list(workers)
    if not arms:
        raise SystemExit("no arm could start")
    outputs: dict[str, list[Path]] = {arm: [] for arm in arms}
    dims: dict[str, list[tuple[int, int, int]]] = {arm: [] for arm in arms}
    print(f"[{name}] {len(jobs)} thumbnails x {len(arms)} arms, {args.warmup} warm-up + {args.rounds} rounds")
    # Warm-up: the first pass also keeps every output for the quality check.
    for warm in range(args.warmup):
        for index, job in enumerate(jobs):
            for arm in arms:
                out = scratch / f"{name}-{arm}-{index}.jpg"
                answer = workers[arm].ask(
                    {
                        "op": "run",
                        "path": job.path,
                        "width": job.width,
                        "height": job.height,
                        "fit": job.fit,
                        "out": str(out) if warm == 0 else None,
                    }
                )
                if warm == 0:
                    outputs[arm].append(out)
                    dims[arm].append((int(answer["width"]), int(answer["height"]), int(answer["bytes"])))  # type: ignore[call-overload]
    samples: dict[str, list[list[float]]] = {arm: [[] for _ in jobs] for arm in arms}
    wall: dict[str, list[list[float]]] = {arm: [[] for _ in jobs] for arm in arms}
    round_means: dict[str, list[float]] = {arm: [] for arm in arms}
    started = time.monotonic()
    for rnd in range(args.rounds):
        order = list(range(len(jobs)))
        random.Random(args.seed + rnd).shuffle(order)
        per_round: dict[str, list[float]] = {arm: [] for arm in arms}
        for position, index in enumerate(order):
            job = jobs[index]
            shift = (rnd + position) % len(arms)
            for arm in arms[shift:] + arms[:shift]:
                answer = workers[arm].ask(
                    {"op": "run", "path": job.path, "width": job.width, "height": job.height, "fit": job.fit}
                )
                ms = float(answer[args.clock_key])  # type: ignore[arg-type]
                samples[arm][index].append(ms)
                wall[arm][index].append(float(answer["ms"]))  # type: ignore[arg-type]
                per_round[arm].append(ms)
        for arm in arms:
            round_means[arm].append(statistics.fmean(per_round[arm]))
        line = "  ".join(f"{arm} {round_means[arm][-1]:7.1f}" for arm in arms)
        print(f"  round {rnd + 1}/{args.rounds}: ms/thumbnail  {line}")
    elapsed = time.monotonic() - started
    for worker in workers.values():
        worker.close()

    print(f"[{name}] quality against full-decode LANCZOS references ...")
    items = []
    for index, job in enumerate(jobs):
        item: dict[str, object] = {"job": job.label, "source": job.path, "arms": {}}
        for arm in arms:
            width, height, size = dims[arm][index]
            from PIL import Image

            with Image.open(job.path) as opened:
                orientation = opened.getexif().get(0x0112, 1)
                src_w, src_h = opened.size if orientation < 5 else opened.size[::-1]
            expected = expected_size(src_w, src_h, job.width, job.height, job.fit)
            quality = measure(job.path, job.fit, outputs[arm][index].read_bytes()) if args.quality else {}
            item["arms"][arm] = {  # type: ignore[index]
                "median_ms": round(statistics.median(samples[arm][index]), 2),
                "samples_ms": [round(v, 2) for v in samples[arm][index]],
                "median_wall_ms": round(statistics.median(wall[arm][index]), 2),
                "width": width,
                "height": height,
                "exact_size": (width, height) == expected,
                "bytes": size,
                **quality,
            }
        items.append(item)

    base = args.baseline if args.baseline in arms else arms[-1]
    result_arms: dict[str, dict[str, object]] = {}
    for arm in arms:
        medians = [statistics.median(s) for s in samples[arm]]
        entry: dict[str, object] = {
            "ms_per_thumbnail": round(statistics.fmean(medians), 2),
            "wall_ms_per_thumbnail": round(statistics.fmean(statistics.median(s) for s in wall[arm]), 2),
            "round_ms": summary(round_means[arm]),
            "peak_rss_mib": round(workers[arm].peak_rss_kib / 1024, 1),
            "mean_bytes": round(statistics.fmean(d[2] for d in dims[arm])),
            "exact_sizes": sum(1 for d in items if d["arms"][arm]["exact_size"]),  # type: ignore[index]
        }
        if args.quality:
            psnrs = [float(d["arms"][arm]["psnr"]) for d in items]  # type: ignore[index]
            ssims = [float(d["arms"][arm]["ssim"]) for d in items]  # type: ignore[index]
            strict = [float(d["arms"][arm]["psnr_strict"]) for d in items]  # type: ignore[index]
            chroma = [float(d["arms"][arm]["psnr_chroma"]) for d in items]  # type: ignore[index]
            entry.update(
                psnr_mean=round(statistics.fmean(psnrs), 2),
                psnr_min=round(min(psnrs), 2),
                ssim_mean=round(statistics.fmean(ssims), 4),
                psnr_strict_mean=round(statistics.fmean(strict), 2),
                psnr_chroma_mean=round(statistics.fmean(chroma), 2),
            )
        if arm != base:
            base_medians = [statistics.median(s) for s in samples[base]]
            entry["vs_" + base] = {
                "time_ratio": round(entry["ms_per_thumbnail"] / statistics.fmean(base_medians), 3),  # type: ignore[operator]
                "round_ratio": summary([a / b for a, b in zip(round_means[arm], round_means[base], strict=True)]),
                "job_ratio_geomean": round(geomean([a / b for a, b in zip(medians, base_medians, strict=True)]), 3),
            }
            if args.quality:
                deltas = [float(d["arms"][arm]["psnr"]) - float(d["arms"][base]["psnr"]) for d in items]  # type: ignore[index]
                entry["vs_" + base]["psnr_mean_delta"] = round(statistics.fmean(deltas), 2)  # type: ignore[index]
                entry["vs_" + base]["psnr_worst_delta"] = round(min(deltas), 2)  # type: ignore[index]
        result_arms[arm] = entry
    return {
        "workload": name,
        "baseline": base,
        "rounds": args.rounds,
        "elapsed_s": round(elapsed, 1),
        "arms": result_arms,
        "items": items,
    }


def print_report(result: dict[str, object]) -> None:
    base = result["baseline"]
    print(f"\n== {result['workload']}: ms per thumbnail (mean of per-job medians), spread over rounds, quality ==")
    print(
        f"{'arm':14} {'ms/thumb':>9} {'round p10':>9} {'round p90':>9} {'ratio':>7} {'PSNR':>7} {'min':>7} "
        f"{'SSIM':>7} {'strict':>7} {'chroma':>7} {'RSS MiB':>8} {'KB':>6}"
    )
    for arm, e in result["arms"].items():  # type: ignore[attr-defined]
        ratio = e.get(f"vs_{base}", {}).get("time_ratio", 1.0)
        print(
            f"{arm:14} {e['ms_per_thumbnail']:9.1f} {e['round_ms']['p10']:9.1f} {e['round_ms']['p90']:9.1f} "
            f"{ratio:7.3f} {e.get('psnr_mean', float('nan')):7.2f} {e.get('psnr_min', float('nan')):7.2f} "
            f"{e.get('ssim_mean', float('nan')):7.4f} {e.get('psnr_strict_mean', float('nan')):7.2f} "
            f"{e.get('psnr_chroma_mean', float('nan')):7.2f} "
            f"{e['peak_rss_mib']:8.1f} {e['mean_bytes'] / 1000:6.1f}"
        )
    arms = list(result["arms"])  # type: ignore[call-overload]
    print(f"\n{'job':52} " + " ".join(f"{a[:13]:>13}" for a in arms) + "   (median ms / PSNR dB)")
    for item in result["items"]:  # type: ignore[attr-defined]
        cells = [f"{item['arms'][a]['median_ms']:6.1f}/{item['arms'][a].get('psnr', 0):5.1f}" for a in arms]
        print(f"{item['job'][:52]:52} " + " ".join(f"{c:>13}" for c in cells))
    for arm in (a for a in arms if a.split(":")[0] == "thumbsvc" and base == "pyvips"):
        v = result["arms"][arm]["vs_pyvips"]  # type: ignore[index]
        ok = v["time_ratio"] < 1 and v.get("psnr_mean_delta", 0) >= 0 and v.get("psnr_worst_delta", 0) >= -1
        print(
            f"goal for {arm} (faster than pyvips, mean PSNR >= pyvips, no item > 1 dB below): "
            f"{'MET' if ok else 'NOT MET'} (time ratio {v['time_ratio']}, PSNR mean delta "
            f"{v.get('psnr_mean_delta')}, worst {v.get('psnr_worst_delta')})"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workload", default="w1,w2", help="comma-separated: w1, w2, w1r (default w1,w2)")
    parser.add_argument("--photos", help="folder of photos to use instead of the six corpus photos")
    parser.add_argument(
        "--arms",
        default=DEFAULT_ARMS,
        help="comma-separated of thumbsvc, pillow, pillow-draft, pillow-draft2, pyvips, pyvips-progressive "
        f"(default {DEFAULT_ARMS})",
    )
    parser.add_argument("--baseline", default="pyvips", help="arm the ratios are relative to")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument(
        "--clock",
        choices=("cpu", "wall"),
        default="cpu",
        help="cpu: CPU time of the arm's process (all threads), robust on a shared machine (default); "
        "wall: elapsed time",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cpu", type=int, help="pin every worker to this CPU")
    parser.add_argument(
        "--tree", type=Path, default=REPO, help="checkout whose thumbsvc/ is measured (e.g. a git worktree of a commit)"
    )
    parser.add_argument(
        "--alt",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="another checkout, measured as arm thumbsvc:NAME in the same run (before/after a change)",
    )
    parser.add_argument("--no-quality", dest="quality", action="store_false")
    parser.add_argument("--out", help="JSON file (default bench/results/inprocess-<time>.json)")
    args = parser.parse_args(argv)
    args.arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    args.cpus = {args.cpu} if args.cpu is not None else None
    args.warmup = max(1, args.warmup)
    args.clock_key = "cpu_ms" if args.clock == "cpu" else "ms"
    args.alt_trees = {name: Path(path).resolve() for name, path in (a.split("=", 1) for a in args.alt)}

    photos = w1_photos(args.photos)
    report: dict[str, object] = {
        "benchmark": "inprocess",
        "clock": args.clock,
        "machine": machine_info(args.tree.resolve()),
        "alt_trees": {name: {"path": str(path), "commit": tree_commit(path)} for name, path in args.alt_trees.items()},
        "arms": args.arms,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "workloads": [],
    }
    with tempfile.TemporaryDirectory(prefix="thumbsvc-bench-") as tmp:
        for name in [w.strip() for w in args.workload.split(",")]:
            paths = photos if name == "w1" else w1r_photos(photos) if name == "w1r" else w2_photos(photos)
            result = run_workload(name, jobs_for(paths), args, Path(tmp))  # type: ignore[arg-type]
            print_report(result)
            report["workloads"].append(result)  # type: ignore[attr-defined]
    if args.arms != [a for a in report["workloads"][0]["arms"]]:  # type: ignore[index]
        report["partial"] = True
    out = Path(args.out) if args.out else RESULTS / f"inprocess-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    report["loadavg_end"] = os.getloadavg()
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
