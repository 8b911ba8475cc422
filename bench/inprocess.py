"""inprocess: thumbsvc's render step against plain Pillow and pyvips, one thread each, with quality.

Each arm runs in its own process (``bench.lib.arms``; the pyvips arms from the pyvips venv, skipped
with a line when it is missing) and maps source bytes already in memory to a JPEG; only that is
timed, in CPU time of the arm's process by default (a shared machine inflates wall time, not CPU).
Rounds are interleaved: every round visits the jobs in a new shuffled order and asks every arm in
a rotated order, so noise lands on all arms alike. Every output is checked against the contract's
size and scored (luma PSNR and SSIM, chroma PSNR) against a full-decode LANCZOS reference
(``bench.lib.quality``).

Metrics per photo set: ms per thumbnail (mean over jobs of the per-job median; values: the
per-round means), the ratio to the reference arm per round (``--reference``; by default
``pyvips-progressive``, which writes progressive JPEG where thumbsvc does, else ``pyvips``, else
``thumbsvc``, else the last arm), mean and worst-item PSNR difference to it (JPEG outputs only),
peak RSS of each arm's process. The ratio per job (``--per-job`` prints them) is the median over
rounds of the arm's time over the reference's in the same round.

    python -m bench inprocess                                   # w1,w2; thumbsvc, pillow, pyvips-progressive, pyvips
    python -m bench inprocess --sets w1,w2,w1r --rounds 7
    python -m bench inprocess --alt new=/tmp/wt-new --arms thumbsvc,thumbsvc:new,pyvips-progressive
    python -m bench inprocess --arms thumbsvc,thumbsvc-smart --sets w1 --no-quality   # what gravity=smart costs
    python -m bench inprocess --sets w1 --sizes 400x300:cover --no-quality --per-job \\
        --arms thumbsvc,thumbsvc-trim,thumbsvc-rot,thumbsvc-flip,thumbsvc-gray,thumbsvc-blur,thumbsvc-sharp,\\
thumbsvc-wm,thumbsvc-json                                       # what each filter and f:json cost
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.lib import cli, results
from bench.lib.arms import ARMS
from bench.lib.photos import REPO, SIZES, Job, expected_size, jobs_for, parse_sizes, photo_set
from bench.lib.procs import machine_info, skipped, tree_commit, venv_python
from bench.lib.stats import geomean, summary

DEFAULT_ARMS = "thumbsvc,pillow,pyvips-progressive,pyvips"
REFERENCE_ARMS = ("pyvips-progressive", "pyvips", "thumbsvc")  # the first of these that runs, by default


class Worker:
    """One arm's worker process, spoken to one JSON line at a time."""

    def __init__(self, arm: str, python: Path, tree: Path, cpu: int | None) -> None:
        self.arm = arm
        kind = arm.split(":")[0]
        env = {**os.environ, "VIPS_CONCURRENCY": "1", "OMP_NUM_THREADS": "1"}

        def pin() -> None:
            if cpu is not None:
                os.sched_setaffinity(0, {cpu})

        self.proc = subprocess.Popen(
            [str(python), "-m", "bench.lib.arms", kind, str(tree)],
            cwd=REPO,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            preexec_fn=pin,
        )
        self.peak_rss_kib = 0

    def ask(self, request: dict[str, object]) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"worker {self.arm} died (exit {self.proc.wait()})")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"{self.arm}: {answer['error']}")
        self.peak_rss_kib = max(self.peak_rss_kib, int(answer.get("rss_kib", 0)))
        return answer

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)


@dataclass
class Samples:
    cpu: list[list[float]]
    wall: list[list[float]]
    rounds: list[float] = field(default_factory=list)
    outputs: list[tuple[int, int, int]] = field(default_factory=list)


def start_workers(args: argparse.Namespace, paths: list[str]) -> dict[str, Worker]:
    """Start every arm that can start; print a line for each that cannot."""
    workers = {}
    for arm in args.arms:
        kind, _, alt = arm.partition(":")
        if kind not in ARMS:
            raise SystemExit(f"unknown arm {kind!r}: one of {', '.join(ARMS)}")
        python = venv_python("pyvips") if kind.startswith("pyvips") else Path(sys.executable)
        if python is None:
            print(skipped(f"arm {arm}", "pyvips"))
            continue
        if alt and alt not in args.alt_trees:
            raise SystemExit(f"arm {arm}: no --alt {alt}=TREE")
        worker = Worker(arm, python, args.alt_trees[alt] if alt else args.tree, args.cpu)
        try:
            worker.ask({"op": "load", "paths": paths})
        except RuntimeError as exc:
            print(f"arm {arm}: skipped, it did not start ({exc})")
            worker.proc.kill()
            continue
        workers[arm] = worker
    if not workers:
        raise SystemExit("no arm could start")
    return workers


def run_set(name: str, jobs: list[Job], args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    paths = sorted({job.path for job in jobs})
    workers = start_workers(args, paths)
    arms = list(workers)
    samples = {arm: Samples([[] for _ in jobs], [[] for _ in jobs]) for arm in arms}
    print(f"[{name}] {len(jobs)} thumbnails x {len(arms)} arms, {args.warmup} warm-up + {args.rounds} rounds")
    try:
        # Warm-up; the first pass keeps every output for the quality check.
        for warm in range(args.warmup):
            for index, job in enumerate(jobs):
                for arm in arms:
                    out = scratch / f"{name}-{arm}-{index}.jpg"
                    request = {"op": "run", "path": job.path, "width": job.width, "height": job.height, "fit": job.fit}
                    answer = workers[arm].ask({**request, "out": str(out) if warm == 0 else None})
                    if warm == 0:
                        samples[arm].outputs.append((int(answer["width"]), int(answer["height"]), int(answer["bytes"])))
        for rnd in range(args.rounds):
            order = list(range(len(jobs)))
            random.Random(args.seed + rnd).shuffle(order)
            per_round: dict[str, list[float]] = {arm: [] for arm in arms}
            for position, index in enumerate(order):
                job = jobs[index]
                shift = (rnd + position) % len(arms)
                for arm in arms[shift:] + arms[:shift]:
                    request = {"op": "run", "path": job.path, "width": job.width, "height": job.height, "fit": job.fit}
                    answer = workers[arm].ask(request)
                    samples[arm].cpu[index].append(float(answer["cpu_ms"]))
                    samples[arm].wall[index].append(float(answer["ms"]))
                    per_round[arm].append(float(answer[args.clock_key]))
            for arm in arms:
                samples[arm].rounds.append(statistics.fmean(per_round[arm]))
            print(
                f"  round {rnd + 1}/{args.rounds}: ms/thumbnail  "
                + "  ".join(f"{a} {samples[a].rounds[-1]:.1f}" for a in arms)
            )
    finally:
        for worker in workers.values():
            worker.close()
    return {"arms": arms, "samples": samples, "peak_rss_kib": {a: workers[a].peak_rss_kib for a in arms}}


def score(
    name: str, jobs: list[Job], run: dict[str, Any], args: argparse.Namespace, scratch: Path
) -> list[dict[str, Any]]:
    """Return one row per job: each arm's median time, size, exactness and quality."""
    from PIL import Image

    measure: Callable[[str, str, bytes], dict[str, Any]] | None = None
    if args.quality:
        from bench.lib import quality

        measure = quality.measure
    items = []
    for index, job in enumerate(jobs):
        with Image.open(job.path) as opened:
            orientation = opened.getexif().get(0x0112, 1)
            src_w, src_h = opened.size if orientation < 5 else opened.size[::-1]
        expected = expected_size(src_w, src_h, job.width, job.height, job.fit)
        row: dict[str, Any] = {"job": job.label, "arms": {}}
        for arm in run["arms"]:
            s: Samples = run["samples"][arm]
            width, height, size = s.outputs[index]
            out = (scratch / f"{name}-{arm}-{index}.jpg").read_bytes()
            scored = measure is not None and out[:2] == b"\xff\xd8"  # a JPEG (not f:json's facts)
            row["arms"][arm] = {
                "median_ms": round(statistics.median(s.cpu[index] if args.clock == "cpu" else s.wall[index]), 2),
                "median_wall_ms": round(statistics.median(s.wall[index]), 2),
                "width": width,
                "height": height,
                "exact_size": (width, height) == expected,
                "bytes": size,
                **(measure(job.path, job.fit, out) if measure is not None and scored else {}),
            }
        items.append(row)
    return items


def record(
    result: results.Result, name: str, run: dict[str, Any], items: list[dict[str, Any]], args: argparse.Namespace
) -> None:
    arms: list[str] = run["arms"]
    if args.reference and args.reference not in arms:
        raise SystemExit(f"--reference {args.reference}: not one of the arms that ran ({', '.join(arms)})")
    reference = args.reference or next((a for a in REFERENCE_ARMS if a in arms), arms[-1])
    if not args.reference and not reference.startswith("pyvips"):
        print(f"(no pyvips arm ran: ratios are to {reference})")
    ref: Samples = run["samples"][reference]
    clock = "cpu" if args.clock == "cpu" else "wall"
    print(f"\n== {name}: CPU ms per thumbnail, ratio to {reference} per round, quality ==")
    for arm in arms:
        s: Samples = run["samples"][arm]
        medians = [row["arms"][arm]["median_ms"] for row in items]
        result.add(f"{name}.{arm}.ms_per_thumb", s.rounds, "ms", "lower")
        result.add(f"{name}.{arm}.peak_rss_mib", [run["peak_rss_kib"][arm] / 1024], "MiB", "lower")
        exact = sum(1 for row in items if row["arms"][arm]["exact_size"])
        spread = summary(s.rounds)
        line = f"  {arm:20} {statistics.fmean(medians):7.1f} ms  rounds {spread['p10']:.1f}..{spread['p90']:.1f}"
        line += f"  exact sizes {exact}/{len(items)}  rss {run['peak_rss_kib'][arm] / 1024:.0f} MiB"
        psnrs = [row["arms"][arm]["psnr"] for row in items if "psnr" in row["arms"][arm]]
        if psnrs:
            result.add(f"{name}.{arm}.psnr_mean", [statistics.fmean(psnrs)], "dB", "higher")
            line += f"  PSNR {statistics.fmean(psnrs):.2f} (min {min(psnrs):.2f})"
        if arm != reference:
            ratios = [a / b for a, b in zip(s.rounds, ref.rounds, strict=True)]
            result.add(f"{name}.{arm}/{reference}.time_ratio", ratios, "x", "lower")
            ref_medians = [row["arms"][reference]["median_ms"] for row in items]
            job_ratio = geomean([a / b for a, b in zip(medians, ref_medians, strict=True)])
            line += f"  x{statistics.median(ratios):.3f} (rounds {min(ratios):.3f}..{max(ratios):.3f}"
            line += f", jobs {job_ratio:.3f})"
            per_job = job_ratios(getattr(s, clock), getattr(ref, clock))
            for row, ratio in zip(items, per_job, strict=True):
                row["arms"][arm][f"ratio_to_{reference}"] = round(ratio, 4)
            if psnrs and len(psnrs) == len(items) and all("psnr" in row["arms"][reference] for row in items):
                deltas = [row["arms"][arm]["psnr"] - row["arms"][reference]["psnr"] for row in items]
                result.add(f"{name}.{arm}/{reference}.psnr_mean_delta", [statistics.fmean(deltas)], "dB", "higher")
                result.add(f"{name}.{arm}/{reference}.psnr_worst_delta", [min(deltas)], "dB", "higher")
                worst = items[deltas.index(min(deltas))]["job"]
                line += f"  PSNR {statistics.fmean(deltas):+.2f} dB, worst {min(deltas):+.2f} ({worst})"
        print(line)
    if args.per_job:
        print_per_job(items, arms, reference)


def job_ratios(arm: list[list[float]], reference: list[list[float]]) -> list[float]:
    """Per job, the median over rounds of the arm's time over the reference's in the same round."""
    return [
        statistics.median(a / b for a, b in zip(times, ref_times, strict=True))
        for times, ref_times in zip(arm, reference, strict=True)
    ]


def print_per_job(items: list[dict[str, Any]], arms: list[str], reference: str) -> None:
    others = [arm for arm in arms if arm != reference]
    print(f"\n  per job: {reference} median ms, then each arm's median ratio to it over rounds")
    print(f"  {'job':44} {reference:>10} " + " ".join(f"{arm.removeprefix('thumbsvc-'):>9}" for arm in others))
    for row in items:
        cells = " ".join(f"{row['arms'][arm][f'ratio_to_{reference}']:9.3f}" for arm in others)
        print(f"  {row['job'][:44]:44} {row['arms'][reference]['median_ms']:10.1f} {cells}")


def main(argv: list[str] | None = None) -> int:
    parser = cli.parser("inprocess", __doc__)
    parser.add_argument("--sets", default="w1,w2", help="photo sets, comma-separated: w1, w2, w1r (default w1,w2)")
    parser.add_argument("--photos", help="folder of photos to use instead of W1's six corpus photos")
    parser.add_argument(
        "--arms", default=DEFAULT_ARMS, help=f"comma-separated of {', '.join(ARMS)}; thumbsvc:NAME for an --alt"
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument(
        "--clock", choices=("cpu", "wall"), default="cpu", help="cpu: CPU time of the arm's process (default)"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cpu", type=int, help="pin every worker to this CPU")
    cli.add_tree(parser)
    parser.add_argument(
        "--alt", action="append", default=[], metavar="NAME=TREE", help="another checkout, arm thumbsvc:NAME"
    )
    parser.add_argument("--no-quality", dest="quality", action="store_false")
    parser.add_argument(
        "--sizes", help="thumbnails of each photo, WxH:fit comma-separated (default 150x150:cover,400x300:contain,...)"
    )
    parser.add_argument("--reference", help="the arm ratios are to (default: pyvips-progressive, pyvips or thumbsvc)")
    parser.add_argument("--per-job", action="store_true", help="print each job's ratio to the reference")
    args = parser.parse_args(argv)
    if args.smoke:
        # Every arm of thumbsvc with an option (filters, f:json, smart crop) runs too: the smoke checks each.
        extra = [a for a in ARMS if a.startswith("thumbsvc-") and a not in args.arms.split(",")]
        args.sets, args.rounds = "samples", 1
        args.arms = ",".join([a for a in args.arms.split(",") if not a.startswith("thumbsvc:")] + extra)
    sizes = parse_sizes(args.sizes) if args.sizes else SIZES
    args.arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    args.warmup = max(1, args.warmup)
    args.clock_key = "cpu_ms" if args.clock == "cpu" else "ms"
    args.tree = args.tree.resolve()
    args.alt_trees = {}
    for spec in args.alt:
        alt, tree, _ = cli.parse_alt(spec)
        args.alt_trees[alt] = tree or args.tree

    result = results.Result("inprocess", sys.argv[1:] if argv is None else list(argv), smoke=args.smoke)
    result.machine = machine_info(args.tree)
    result.settings = {
        "sets": args.sets,
        "arms": args.arms,
        "rounds": args.rounds,
        "warmup": args.warmup,
        "clock": args.clock,
        "sizes": [f"{w}x{h}:{fit}" for w, h, fit in sizes],
        "reference": args.reference,
        "alt": {alt: {"tree": str(tree), "commit": tree_commit(tree)} for alt, tree in args.alt_trees.items()},
    }
    with tempfile.TemporaryDirectory(prefix="thumbsvc-bench-") as tmp:
        for name in [s.strip() for s in args.sets.split(",") if s.strip()]:
            jobs = jobs_for(photo_set(name, args.photos), sizes)
            run = run_set(name, jobs, args, Path(tmp))
            items = score(name, jobs, run, args, Path(tmp))
            record(result, name, run, items, args)
            result.details[name] = {"arms": run["arms"], "items": items}
    return cli.finish(result, args)
