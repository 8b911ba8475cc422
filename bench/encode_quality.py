"""Default qualities by measurement: file size against luma SSIM for JPEG, WebP and AVIF thumbnails.

    python bench/encode_quality.py [--photos N]

Each corpus photo is rendered by thumbsvc at the typical sizes (400x300 cover, 1200x900 contain)
as lossless PNG; that exact image is the reference. It is then encoded by ``thumbsvc.encoding.encode``
at each quality and scored: bytes, and SSIM (bench/quality.py: Wang et al., luma, 11x11 Gaussian)
against the reference, so the numbers measure the encoder alone. The table gives the median over
photos and sizes. A second table compares baseline (optimised Huffman) and progressive JPEG sizes
by output size, for the progressive threshold.
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from pathlib import Path

from PIL import Image

from bench.quality import luma, ssim
from thumbsvc.decode import Limits, configure
from thumbsvc.encoding import encode
from thumbsvc.options import make_options
from thumbsvc.pipeline import render

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
PHOTOS = [
    "photos/lepton__iphone.jpg",
    "photos/exifsamples__HMD_Nokia_8.3_5G.jpg",
    "photos/lepton__slrhills.jpg",
    "photos/immich__craft-beer.jpg",
    "photos/immich__japanese-shop.jpg",
    "photos/sharp__2569067123_aca715a2ee_o.jpg",
    "png/imagepng__kodim23.png",
    "color/photoprism__Iceland-P3.jpg",
]
SIZES = [{"width": 400, "height": 300, "fit": "cover"}, {"width": 1200, "height": 900}]
QUALITIES = {
    "jpeg": [50, 60, 70, 75, 80, 82, 85, 90, 95],
    "webp": [50, 60, 70, 75, 80, 82, 84, 86, 90],
    "avif": [30, 40, 50, 55, 60, 64, 66, 68, 70, 80],
}


def references(count: int) -> list[Image.Image]:
    configure(50_000_000)
    images = []
    for path in PHOTOS[:count]:
        data = (CORPUS / path).read_bytes()
        for size in SIZES:
            png = render(data, make_options(format="png", **size), Limits()).data  # type: ignore[arg-type]
            with Image.open(io.BytesIO(png)) as image:
                images.append(image.convert("RGB"))
    return images


def sweep(images: list[Image.Image]) -> None:
    lumas = [luma(image) for image in images]
    print(f"{'format':6} {'q':>3} {'SSIM med':>9} {'SSIM min':>9} {'bytes med':>10} {'vs jpeg82':>9} {'ms med':>7}")
    baseline = [len(encode(image.copy(), "jpeg", 82)[0]) for image in images]
    for fmt, qualities in QUALITIES.items():
        for quality in qualities:
            sizes, scores, times = [], [], []
            for image, y_ref in zip(images, lumas, strict=True):
                start = time.perf_counter()
                body, _ = encode(image.copy(), fmt, quality)
                times.append((time.perf_counter() - start) * 1000)
                with Image.open(io.BytesIO(body)) as decoded:
                    scores.append(ssim(luma(decoded.convert("RGB")), y_ref))
                sizes.append(len(body))
            ratio = statistics.median(s / b for s, b in zip(sizes, baseline, strict=True))
            print(
                f"{fmt:6} {quality:3d} {statistics.median(scores):9.4f} {min(scores):9.4f} "
                f"{statistics.median(sizes):10.0f} {ratio:9.2f} {statistics.median(times):7.1f}"
            )


def progressive_threshold(images: list[Image.Image]) -> None:
    print(f"\n{'long edge':>9} {'baseline B':>10} {'progressive B':>13} {'ratio':>6}")
    for edge in (32, 64, 100, 150, 200, 300, 400, 800):
        base, prog = [], []
        for image in images:
            thumb = image.copy()
            thumb.thumbnail((edge, edge))
            for progressive, sink in ((False, base), (True, prog)):
                buffer = io.BytesIO()
                thumb.save(buffer, "JPEG", quality=82, optimize=not progressive, progressive=progressive)
                sink.append(len(buffer.getvalue()))
        ratio = statistics.median(p / b for p, b in zip(prog, base, strict=True))
        print(f"{edge:9d} {statistics.median(base):10.0f} {statistics.median(prog):13.0f} {ratio:6.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=len(PHOTOS))
    args = parser.parse_args()
    images = references(args.photos)
    print(f"{len(images)} references ({args.photos} photos x {len(SIZES)} sizes)\n")
    sweep(images)
    progressive_threshold(images)


if __name__ == "__main__":
    main()
