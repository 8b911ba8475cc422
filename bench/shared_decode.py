"""What a shared decode saves, job by job: the numbers the decoded-source cache's policy was chosen from.

For every W1/W2 job it times (CPU, median of ``--reps``), with thumbsvc's own functions from ``--tree``:

- ``own``: the whole render with the cache off (``pipeline.render``: draft to the job's own DCT
  scale, decode, resample, encode);
- ``shared decode``: decoding the photo once at the shared scale (``decoded.decode``);
- ``from shared``: one job's render from that frame (``decoded.render_from``: box ``reduce()`` down
  to its own scale, then the same resample and encode);
- ``no reduce``: the same, resampling straight from the shared frame (the alternative not taken);

and the luma PSNR of each output against the full-decode LANCZOS reference (``bench.quality``).

    python -m bench.shared_decode --tree /tmp/wt-new
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TypeVar

if not __package__:  # pragma: no cover - guard against `python bench/<script>.py`
    raise SystemExit("run bench scripts as modules from the repository root, e.g. python -m bench.shared_decode")

from bench.procs import machine_info
from bench.workloads import REPO, SIZES, w1_photos, w2_photos

RESULTS = REPO / "bench" / "results"
T = TypeVar("T")


def timed(reps: int, work: Callable[[], T]) -> tuple[float, T]:
    """Return the median CPU milliseconds of ``reps`` runs of ``work`` and its last result."""
    times, result = [], None
    for _ in range(reps):
        start = time.process_time()
        result = work()
        times.append((time.process_time() - start) * 1000)
    return statistics.median(times), result  # type: ignore[return-value]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tree", type=Path, default=REPO, help="checkout whose thumbsvc/ is measured")
    parser.add_argument("--workload", default="w1,w2")
    parser.add_argument("--photos", help="folder of photos to use instead of the six corpus photos")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--out", help="JSON file (default bench/results/shared-decode-<time>.json)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(args.tree.resolve()))
    from bench.quality import measure
    from thumbsvc.config import Settings
    from thumbsvc.decode import configure
    from thumbsvc.decoded import decode, plan_request, render_from
    from thumbsvc.options import make_options
    from thumbsvc.pipeline import Limits, render

    settings = Settings()
    configure(settings.max_source_pixels)
    limits = Limits.from_settings(settings)

    def decode_fresh(data: bytes, options: object) -> object:
        # Open and plan again each time: a JPEG is drafted once, by the decode that uses it.
        return decode(data, plan_request(data, options, limits, None), limits)  # type: ignore[arg-type]

    photos = w1_photos(args.photos)
    workloads = {"w1": photos, "w2": w2_photos(photos)}
    report: dict[str, object] = {
        "benchmark": "shared_decode",
        "machine": machine_info(args.tree.resolve()),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "reps": args.reps,
        "workloads": {},
    }
    for name in [w.strip() for w in args.workload.split(",") if w.strip()]:
        rows = []
        print(f"\n== {name}: CPU ms (PSNR dB) ==")
        print(f"{'job':44} {'own/shr':>9} {'own':>14} {'from shared':>14} {'no reduce':>14}")
        for photo in workloads[name]:
            data = photo.read_bytes()
            jobs = [
                (w, h, fit, make_options(width=w, height=h, fit=fit, format="jpeg", quality=85)) for w, h, fit in SIZES
            ]
            plans = [plan_request(data, options, limits, None) for *_, options in jobs]
            # One decode per distinct shared scale, as the cache does it (one for all three once the
            # draft rule takes 1/2 for 1200x900).
            frames, decode_ms = {}, {}
            for planned in plans:
                if planned.shared not in frames:
                    decode_ms[planned.shared], frames[planned.shared] = timed(
                        args.reps, partial(decode_fresh, data, planned.job.options)
                    )
            page_own, page_shared = 0.0, sum(decode_ms.values())
            for (w, h, fit, options), planned in zip(jobs, plans, strict=True):
                frame = frames[planned.shared]
                own_ms, own = timed(args.reps, partial(render, data, options, limits))
                shared_ms, from_shared = timed(args.reps, partial(render_from, frame, planned, limits))
                direct = dataclasses.replace(planned, own=frame.denominator)
                direct_ms, no_reduce = timed(args.reps, partial(render_from, frame, direct, limits))
                row = {
                    "job": f"{photo.stem} {w}x{h} {fit}",
                    "own_scale": planned.own,
                    "shared_scale": frame.denominator,
                    "own_ms": round(own_ms, 2),
                    "own_psnr": measure(str(photo), fit, own.data)["psnr"],
                    "from_shared_ms": round(shared_ms, 2),
                    "from_shared_psnr": measure(str(photo), fit, from_shared.data)["psnr"],
                    "no_reduce_ms": round(direct_ms, 2),
                    "no_reduce_psnr": measure(str(photo), fit, no_reduce.data)["psnr"],
                }
                page_own += own_ms
                page_shared += shared_ms
                rows.append(row)
                print(
                    f"{row['job']:44} {f'1/{planned.own} 1/{frame.denominator}':>9} "
                    f"{own_ms:6.1f} ({row['own_psnr']:5.2f}) {shared_ms:6.1f} ({row['from_shared_psnr']:5.2f}) "
                    f"{direct_ms:6.1f} ({row['no_reduce_psnr']:5.2f})"
                )
            decodes = {f"1/{d}": round(ms, 2) for d, ms in decode_ms.items()}
            rows.append(
                {
                    "job": f"{photo.stem} page",
                    "shared_decode_ms": decodes,
                    "page_own_ms": round(page_own, 2),
                    "page_shared_ms": round(page_shared, 2),
                }
            )
            print(f"{photo.stem + ' page':44} decodes {decodes}  page: own {page_own:6.1f}  shared {page_shared:6.1f}")
        report["workloads"][name] = rows  # type: ignore[index]
    out = Path(args.out) if args.out else RESULTS / f"shared-decode-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
