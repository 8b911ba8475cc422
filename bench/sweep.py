"""Sweep JPEG DCT scale x reducing gap for every job: time (decode + resample) and PSNR of each choice.

This is what the draft policy of the render path should be chosen from: for each job it prints,
per DCT scale (1/1, 1/2, 1/4, 1/8) and reducing gap, the median time and the luma PSNR of the
q85 baseline JPEG against the full-decode LANCZOS reference, next to pyvips's PSNR for the same
job (taken from the newest in-process result). ``--rule`` then evaluates draft rules of the form
"the largest DCT scale whose decoded region keeps at least T(scale) source pixels per output pixel".

    python -m bench.sweep --workload w1 --reps 3
    python -m bench.sweep --rule 8:2,4:1.5,2:1 --rule 8:2,4:2,2:2
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import time
from pathlib import Path

from PIL import Image

from bench.quality import measure
from bench.workloads import REPO, Job, expected_size, jobs_for, source_box, w1_photos, w2_photos

GAPS = (None, 1.0, 1.25, 1.5, 2.0, 3.0)
SCALES = (1, 2, 4, 8)


def render(data: bytes, job: Job, scale: int, gap: float | None) -> tuple[float, bytes]:
    start = time.process_time()
    image = Image.open(io.BytesIO(data))
    src_w, src_h = image.size
    if scale > 1:
        # Floor, not ceiling: Pillow picks the scale from integer quotients of the size asked for.
        image.draft("RGB", (max(1, src_w // scale), max(1, src_h // scale)))
        if image.size[0] != -(-src_w // scale):
            raise RuntimeError(f"draft gave {image.size} for 1/{scale} of {src_w}x{src_h}")
    image.load()
    out = expected_size(src_w, src_h, job.width, job.height, job.fit)
    fx, fy = image.width / src_w, image.height / src_h
    left, top, right, bottom = source_box(src_w, src_h, out[0], out[1], job.fit)
    box = (left * fx, top * fy, right * fx, bottom * fy)
    image = image.resize(out, Image.Resampling.LANCZOS, box=box, reducing_gap=gap)
    elapsed = time.process_time() - start
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    return elapsed * 1000, buffer.getvalue()


def pyvips_psnr() -> dict[tuple[str, str], float]:
    found = sorted((REPO / "bench" / "results").glob("inprocess-*.json"))
    table = {}
    for path in found:
        for workload in json.loads(path.read_text())["workloads"]:
            for item in workload["items"]:
                if "pyvips" in item["arms"] and "psnr" in item["arms"]["pyvips"]:
                    table[(workload["workload"], item["job"])] = item["arms"]["pyvips"]["psnr"]
    return table


def sweep(name: str, jobs: list[Job], reps: int) -> list[dict[str, object]]:
    rows = []
    for job in jobs:
        data = Path(job.path).read_bytes()
        with Image.open(io.BytesIO(data)) as image:
            src_w, src_h = image.size
        out = expected_size(src_w, src_h, job.width, job.height, job.fit)
        left, _, right, _ = source_box(src_w, src_h, out[0], out[1], job.fit)
        ratio = (right - left) / out[0]  # source pixels per output pixel
        for scale in SCALES:
            if ratio / scale < 1.0:
                continue
            for gap in GAPS:
                times = []
                for _ in range(reps):
                    ms, body = render(data, job, scale, gap)
                    times.append(ms)
                quality = measure(job.path, job.fit, body)
                rows.append(
                    {
                        "workload": name,
                        "job": job.label,
                        "ratio": round(ratio, 3),
                        "scale": scale,
                        "gap": gap,
                        "ms": round(statistics.median(times), 2),
                        "psnr": quality["psnr"],
                    }
                )
        print(f"  {job.label}: done", flush=True)
    return rows


def evaluate(
    rows: list[dict[str, object]], rule: dict[int, float], gap: float | None, vips: dict[tuple[str, str], float]
) -> None:
    """Apply a draft rule and report mean time, mean PSNR and the worst PSNR gap to pyvips."""
    by_job: dict[tuple[str, str], list[dict[str, object]]] = {}
    for row in rows:
        by_job.setdefault((row["workload"], row["job"]), []).append(row)  # type: ignore[arg-type]
    for workload in sorted({k[0] for k in by_job}):
        chosen = []
        for (wl, job), options in by_job.items():
            if wl != workload:
                continue
            ratio = float(options[0]["ratio"])  # type: ignore[arg-type]
            scale = max([s for s in SCALES if s == 1 or ratio / s >= rule.get(s, 99)])
            pick = next(o for o in options if o["scale"] == scale and o["gap"] == gap)
            chosen.append((pick, vips.get((wl, job))))
        mean_ms = statistics.fmean(float(p["ms"]) for p, _ in chosen)  # type: ignore[arg-type]
        mean_psnr = statistics.fmean(float(p["psnr"]) for p, _ in chosen)  # type: ignore[arg-type]
        deltas = [float(p["psnr"]) - v for p, v in chosen if v is not None]  # type: ignore[arg-type]
        vmean = statistics.fmean(v for _, v in chosen if v is not None) if deltas else float("nan")
        print(
            f"  {workload} rule {rule} gap {gap}: {mean_ms:6.1f} ms decode+resize, PSNR {mean_psnr:.2f} "
            f"(pyvips {vmean:.2f}), worst delta {min(deltas, default=float('nan')):+.2f} dB"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workload", default="w1,w2")
    parser.add_argument("--photos")
    parser.add_argument("--reps", type=int, default=3, help="timing repetitions (CPU time, median)")
    parser.add_argument("--rows", type=Path, help="reuse a saved sweep instead of measuring")
    parser.add_argument("--rule", action="append", default=[], help="e.g. 8:2,4:1.5,2:1 (scale:min ratio left)")
    args = parser.parse_args(argv)
    if args.rows:
        rows = json.loads(args.rows.read_text())
    else:
        photos = w1_photos(args.photos)
        rows = []
        for name in args.workload.split(","):
            paths = photos if name == "w1" else w2_photos(photos)
            rows += sweep(name, jobs_for(paths), args.reps)
        out = REPO / "bench" / "results" / f"sweep-{time.strftime('%Y%m%d-%H%M%S')}.json"
        out.write_text(json.dumps(rows, indent=0) + "\n")
        print(f"wrote {out}")
        for row in rows:
            print(
                f"{row['workload']} {row['job']:50} ratio {row['ratio']:6.2f} 1/{row['scale']} gap {row['gap']}: "
                f"{row['ms']:7.1f} ms {row['psnr']:6.2f} dB"
            )
    vips = pyvips_psnr()
    for text in args.rule or ["8:2,4:2,2:2"]:
        rule = {int(k): float(v) for k, v in (part.split(":") for part in text.split(","))}
        for gap in GAPS:
            evaluate(rows, rule, gap, vips)


if __name__ == "__main__":
    main()
