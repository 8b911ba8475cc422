"""One 4000x3000-class JPEG to a 300x200 cover thumbnail: thumbsvc's render path against plain Pillow.

    python bench/single_render.py [--runs 15] [--source PATH]

Both arms run in this process, interleaved, from the same bytes; medians and the ratio are printed.
The plain arm is what a naive service does: ``Image.open → resize(LANCZOS) → save``, with the
cover crop computed the same way.
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from pathlib import Path

from PIL import Image, ImageOps

from thumbsvc.decode import Limits, configure
from thumbsvc.options import make_options
from thumbsvc.pipeline import render

DEFAULT_SOURCE = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "photos" / "exifsamples__42_IndexError.jpg"


def plain_pillow(data: bytes, size: tuple[int, int]) -> bytes:
    image = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    image = ImageOps.fit(image, size, Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=82)
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    args = parser.parse_args()
    data = args.source.read_bytes()
    configure(50_000_000)
    options = make_options(width=300, height=200, fit="cover")
    limits = Limits()
    timings: dict[str, list[float]] = {"thumbsvc": [], "plain": []}
    render(data, options, limits)  # warm both paths once
    plain_pillow(data, (300, 200))
    for _ in range(args.runs):
        for name in ("thumbsvc", "plain"):
            start = time.perf_counter()
            if name == "thumbsvc":
                render(data, options, limits)
            else:
                plain_pillow(data, (300, 200))
            timings[name].append((time.perf_counter() - start) * 1000)
    with Image.open(args.source) as probe:
        print(f"source: {args.source.name} {probe.size[0]}x{probe.size[1]}, {args.runs} interleaved runs")
    for name, values in timings.items():
        q = statistics.quantiles(values, n=4)
        print(f"{name:>9}: median {statistics.median(values):7.1f} ms  (IQR {q[0]:.1f}-{q[2]:.1f} ms)")
    ratio = statistics.median(timings["plain"]) / statistics.median(timings["thumbsvc"])
    print(f"thumbsvc is {ratio:.1f}x faster than plain Pillow")


if __name__ == "__main__":
    main()
