"""Where one render's time goes, stage by stage, and what no resampler or cache could take away.

For every job of a workload, thumbsvc's own render path (``pipeline``) is run with each stage
timed alone, in CPU time, median of ``--runs``:

- ``decode``: the JPEG decode at the DCT scale ``pipeline.draft`` picks for the job (header
  parsing included);
- ``decode_floor``: the same file decoded at 1/8, luma only, the cheapest decode libjpeg-turbo
  offers through Pillow: what is left is entropy decoding, which every decoder of the file pays;
- ``finish``: everything between decode and encode (plane split, resampling, orientation, colour);
- ``encode``: encoding the finished thumbnail as thumbsvc does (progressive JPEG from 50 000 px);
- ``encode_baseline``: the same pixels encoded as libvips does by default (baseline, standard
  Huffman tables), for comparison;
- ``total``: ``pipeline.render`` end to end.

    python -m bench.floors                     # W1 and W2, 7 runs each
    python -m bench.floors --workload w2 --runs 11 --out bench/results/floors.json

The report sums each column over the workload's jobs (ms per thumbnail = the mean), so a goal
can be set against what its stages cost: a rival that takes less than ``decode + encode`` per
thumbnail cannot be matched by a faster resampler.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from bench.procs import machine_info
from bench.workloads import QUALITY, REPO, jobs_for, w1_photos, w2_photos

STAGES = ("decode", "decode_floor", "finish", "encode", "encode_baseline", "total")


def cpu_ms(func: Callable[[], object], runs: int) -> float:
    samples = []
    for _ in range(runs):
        started = time.process_time()
        func()
        samples.append((time.process_time() - started) * 1000)
    return statistics.median(samples)


def measure_job(data: bytes, width: int, height: int, fit: str, runs: int) -> dict[str, float]:
    from PIL import Image

    from thumbsvc import pipeline
    from thumbsvc.decode import Limits
    from thumbsvc.encoding import encode
    from thumbsvc.options import make_options

    limits = Limits()
    options = make_options(width=width, height=height, fit=fit, format="jpeg", quality=QUALITY)

    def opened() -> tuple[Image.Image, pipeline.Job, pipeline.Plan]:
        image, job, layout = pipeline.open_job(data, options, limits)
        scale = pipeline.draft(image, layout, planar=pipeline.decodes_planar(image, job.kind))
        return image, replace(job, scale=scale), layout

    def decode() -> Image.Image:
        image, job, _ = opened()
        image.load()
        return pipeline.prepare(image, job)

    def decode_floor() -> None:
        image = Image.open(io.BytesIO(data))
        image.draft("L", (max(1, image.width // 8), max(1, image.height // 8)))
        image.load()

    _, job, layout = opened()
    frame = decode()
    finished = pipeline.finish(frame, job, layout)

    def encode_baseline() -> None:
        image = finished.copy()
        image.save(io.BytesIO(), "JPEG", quality=QUALITY)

    return {
        "decode": cpu_ms(decode, runs),
        "decode_floor": cpu_ms(decode_floor, runs),
        "finish": cpu_ms(lambda: pipeline.finish(frame, job, layout), runs),
        "encode": cpu_ms(lambda: encode(finished.copy(), job.kind, QUALITY), runs),
        "encode_baseline": cpu_ms(encode_baseline, runs),
        "total": cpu_ms(lambda: pipeline.render(data, options, limits), runs),
        "scale": job.scale,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workload", default="w1,w2", help="comma-separated: w1, w2")
    parser.add_argument("--photos", help="folder of photos to use instead of the six corpus photos")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--tree", help="checkout whose thumbsvc/ is measured")
    parser.add_argument("--out", help="JSON file (default bench/results/floors-<time>.json)")
    args = parser.parse_args(argv)
    tree = Path(args.tree).resolve() if args.tree else REPO
    sys.path.insert(0, str(tree))
    photos = w1_photos(args.photos)
    sets = {"w1": photos, "w2": w2_photos(photos)}
    result: dict[str, object] = {"benchmark": "floors", "machine": machine_info(tree), "runs": args.runs}
    workloads = []
    for name in args.workload.split(","):
        jobs = jobs_for(sets[name])
        rows = []
        for job in jobs:
            data = Path(job.path).read_bytes()
            row = measure_job(data, job.width, job.height, job.fit, args.runs)
            rows.append({"job": job.label, **{k: round(v, 2) for k, v in row.items()}})
            print(f"[{name}] {job.label:48} " + "  ".join(f"{k} {row[k]:6.1f}" for k in STAGES))
        means = {k: round(statistics.fmean(r[k] for r in rows), 2) for k in STAGES}
        print(f"[{name}] mean ms per thumbnail: " + "  ".join(f"{k} {v}" for k, v in means.items()))
        workloads.append({"workload": name, "jobs": rows, "mean_ms": means})
    result["workloads"] = workloads
    out = Path(args.out or REPO / "bench" / "results" / f"floors-{time.strftime('%Y%m%d-%H%M%S')}.json")
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
