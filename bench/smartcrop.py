"""What ``gravity=smart`` costs over a centre crop: whole renders, interleaved, same bytes.

    python bench/smartcrop.py [--runs 31] [--size 300x200] [PHOTO ...]

For each photo (default: three corpus photos, 4032x3024 first) both arms render the same
cover thumbnail through ``thumbsvc.pipeline.render`` (decode with DCT scaling, resize,
encode), alternating run by run so machine noise hits both alike. Both wall time and the
thread's CPU time (``time.thread_time``, which other processes on a busy machine do not
inflate) are recorded; medians and the overhead are printed. The smart arm's extra work
is one saliency map on a copy of at most 128 px.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from thumbsvc.decode import Limits, configure
from thumbsvc.options import make_options
from thumbsvc.pipeline import render

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
DEFAULT_PHOTOS = [
    CORPUS / "photos" / "exifsamples__42_IndexError.jpg",
    CORPUS / "photos" / "leptonrs__zeros_in_dqt_tables.jpg",
    CORPUS / "photos" / "sharp__2569067123_aca715a2ee_o.jpg",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photos", nargs="*", type=Path, default=DEFAULT_PHOTOS)
    parser.add_argument("--runs", type=int, default=31)
    parser.add_argument("--size", default="300x200")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    configure(50_000_000)
    limits = Limits()
    arms = {
        "centre": make_options(width=width, height=height, fit="cover"),
        "smart": make_options(width=width, height=height, fit="cover", gravity="smart"),
    }
    for photo in args.photos:
        data = photo.read_bytes()
        wall: dict[str, list[float]] = {name: [] for name in arms}
        cpu: dict[str, list[float]] = {name: [] for name in arms}
        for options in arms.values():
            render(data, options, limits)  # warm up (and build any colour transform once)
        for _ in range(args.runs):
            for name, options in arms.items():
                start, start_cpu = time.perf_counter(), time.thread_time()
                render(data, options, limits)
                cpu[name].append((time.thread_time() - start_cpu) * 1000)
                wall[name].append((time.perf_counter() - start) * 1000)
        print(f"{photo.name}: {args.size} cover, {args.runs} interleaved runs (medians)")
        for label, table in (("cpu ", cpu), ("wall", wall)):
            centre, smart = (statistics.median(table[name]) for name in arms)
            print(
                f"  {label}: centre {centre:6.1f} ms  smart {smart:6.1f} ms  "
                f"overhead {smart - centre:+5.1f} ms ({100 * (smart / centre - 1):+.1f} %)"
            )


if __name__ == "__main__":
    main()
