"""The in-process arms, each in its own process: jobs as JSON lines on stdin, answers on stdout.

``bench inprocess`` starts ``python -m bench.lib.arms ARM TREE`` from the repository root (the pyvips
arms with the pyvips venv's interpreter, which has no Pillow: keep this module's imports lazy).
Each arm maps source bytes already in memory to encoded JPEG bytes (``thumbsvc-json``: the f:json
answer); only that is timed. To add an arm, add a factory to ``ARMS``. The ``thumbsvc-*`` arms are
thumbsvc with one option each (a filter, smart crop, f:json): their ratio to ``thumbsvc`` in the same
run is what the option costs. Requests::

    {"op": "load", "paths": [...]}                       read the sources into memory
    {"op": "run", "path": p, "width": w, "height": h, "fit": f, "out": file-or-null}

Each answer is one JSON line, ``{"ms", "cpu_ms", "width", "height", "bytes", "rss_kib"}`` or ``{"error"}``:
``ms`` is wall time, ``cpu_ms`` the CPU time of all the process's threads, ``rss_kib`` the process's
peak resident set so far (VmHWM).
"""

from __future__ import annotations

import gc
import io
import json
import os
import resource
import sys
import time
from collections.abc import Callable

QUALITY = 85
# thumbsvc writes JPEGs of this many pixels or more progressive (docs/rendering.md); the like-for-like
# pyvips arm does the same.
PROGRESSIVE_FROM_PX = 50_000
Arm = Callable[[bytes, int, int, str], tuple[bytes, int, int]]


def _pillow_geometry(
    size: tuple[int, int], width: int, height: int, fit: str
) -> tuple[tuple[int, int], tuple[float, float, float, float]]:
    """Return (output size, float source box) for cover / contain, never enlarging."""
    from bench.lib.photos import expected_size, source_box

    out = expected_size(size[0], size[1], width, height, fit)
    return out, source_box(size[0], size[1], out[0], out[1], fit)


def pillow_arm(draft: float | None = None) -> Arm:
    """Plain Pillow: open -> exif_transpose -> LANCZOS resize -> save q85.

    With ``draft``, ask the JPEG decoder for a DCT-scaled image of at least ``draft`` times
    the output size first and resample with ``reducing_gap=2`` (what ``Image.thumbnail`` does).
    """
    from PIL import Image, ImageOps

    def run(data: bytes, width: int, height: int, fit: str) -> tuple[bytes, int, int]:
        image: Image.Image = Image.open(io.BytesIO(data))
        if draft is not None and image.format == "JPEG":
            orientation = image.getexif().get(0x0112, 1)
            upright = image.size if orientation < 5 else image.size[::-1]
            (out_w, out_h), box = _pillow_geometry(upright, width, height, fit)
            want = (box[2] - box[0], box[3] - box[1])
            scale = max(out_w / want[0], out_h / want[1]) * draft
            target = (int(image.width * scale), int(image.height * scale))
            image.draft("RGB", target)
        image = ImageOps.exif_transpose(image)
        if image.mode not in ("RGB", "L"):
            image = image.convert("RGB")
        (out_w, out_h), box = _pillow_geometry(image.size, width, height, fit)
        if (out_w, out_h) != image.size:
            gap = 2.0 if draft is not None else None
            image = image.resize((out_w, out_h), Image.Resampling.LANCZOS, box=box, reducing_gap=gap)
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=QUALITY)
        return buffer.getvalue(), image.width, image.height

    return run


def thumbsvc_arm(tree: str, watermarks: str = "", files: dict[str, bytes] | None = None, **options: object) -> Arm:
    """thumbsvc's render step, through ``bench.lib.adapter`` (from checkout ``tree``); ``options`` as the client's,
    ``watermarks`` and ``files`` the operator's watermarks (``adapter.renderer``)."""
    sys.path.insert(0, tree)
    from bench.lib.adapter import renderer

    render = renderer(watermarks, files)

    def run(data: bytes, width: int, height: int, fit: str) -> tuple[bytes, int, int]:
        out = render(data, width=width, height=height, fit=fit, quality=QUALITY, **options)
        return out.data, out.width, out.height

    return run


def pyvips_arm(progressive: bool = False) -> Arm:
    """pyvips ``thumbnail`` (shrink-on-load, centre crop for cover, never enlarging), one thread, no operation cache.

    With ``progressive``, ``jpegsave`` writes progressive JPEG (``interlace``) where thumbsvc does
    (outputs of PROGRESSIVE_FROM_PX or more): like for like. Without, libvips's own default:
    baseline without optimised Huffman tables, about 6x cheaper to encode.
    """
    import pyvips  # type: ignore[import-not-found]  # only in the pyvips venv

    pyvips.cache_set_max(0)
    pyvips.cache_set_max_mem(0)

    def run(data: bytes, width: int, height: int, fit: str) -> tuple[bytes, int, int]:
        if fit == "cover":
            image = pyvips.Image.thumbnail_buffer(data, width, height=height, crop="centre", size="down")
        else:
            image = pyvips.Image.thumbnail_buffer(data, width, height=height, size="down")
        interlace = progressive and image.width * image.height >= PROGRESSIVE_FROM_PX
        out = image.jpegsave_buffer(Q=QUALITY, keep="none", interlace=interlace)
        return out, image.width, image.height

    return run


# The watermark arm's definition: what an operator writes in THUMBSVC_WATERMARKS (the defaults spelled out).
WATERMARKS = "bench=marks/bench.png;gravity=south-east;margin=0.02;opacity=0.5;scale=0.2"


def watermark_png() -> bytes:
    """A small RGBA PNG like an operator's logo (240x80: a rounded plate with a mark and soft edges)."""
    from PIL import Image, ImageDraw, ImageFilter

    image = Image.new("RGBA", (240, 80), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.rounded_rectangle((4, 4, 235, 75), radius=18, fill=(255, 255, 255, 200), outline=(20, 40, 90, 255), width=4)
    draw.ellipse((16, 16, 64, 64), fill=(10, 88, 202, 255))
    for index, width in enumerate((140, 110, 150)):
        draw.rectangle((80, 20 + index * 16, 80 + width, 28 + index * 16), fill=(20, 40, 90, 255))
    buffer = io.BytesIO()
    image.filter(ImageFilter.SMOOTH).save(buffer, "PNG")
    return buffer.getvalue()


def watermark_arm(tree: str) -> Arm:
    return thumbsvc_arm(tree, WATERMARKS, {"marks/bench.png": watermark_png()}, watermark="bench")


# name -> factory(tree). Arms whose name starts with "pyvips" run in the pyvips venv.
ARMS: dict[str, Callable[[str], Arm]] = {
    "thumbsvc": thumbsvc_arm,
    "thumbsvc-smart": lambda tree: thumbsvc_arm(tree, gravity="smart"),  # what smart crop costs (cover jobs)
    # One filter each, at the example values (docs/performance.md, "What each filter costs").
    "thumbsvc-trim": lambda tree: thumbsvc_arm(tree, trim=10),
    "thumbsvc-rot": lambda tree: thumbsvc_arm(tree, rotate=90),
    "thumbsvc-flip": lambda tree: thumbsvc_arm(tree, flip="h"),
    "thumbsvc-gray": lambda tree: thumbsvc_arm(tree, grayscale=True),
    "thumbsvc-blur": lambda tree: thumbsvc_arm(tree, blur=2.5),
    "thumbsvc-sharp": lambda tree: thumbsvc_arm(tree, sharpen=1),
    "thumbsvc-wm": watermark_arm,
    "thumbsvc-json": lambda tree: thumbsvc_arm(tree, format="json"),  # f:json: the facts, no image
    "pillow": lambda tree: pillow_arm(),
    "pillow-draft": lambda tree: pillow_arm(draft=1.0),
    "pillow-draft2": lambda tree: pillow_arm(draft=2.0),
    "pyvips": lambda tree: pyvips_arm(),
    "pyvips-progressive": lambda tree: pyvips_arm(progressive=True),
}


def peak_rss_kib() -> int:
    """Return this process's peak resident set (VmHWM).

    Not ``ru_maxrss``: Linux carries the parent's resident set at fork into the child's
    ``ru_maxrss`` across exec, so a worker forked from a big parent would report the parent.
    """
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # pragma: no cover - not Linux


def main() -> None:
    name, tree = sys.argv[1], sys.argv[2]
    # Keep the protocol channel clean: anything a library prints goes to stderr.
    proto = sys.stdout
    sys.stdout = sys.stderr
    arm = ARMS[name](tree)
    sources: dict[str, bytes] = {}
    for line in sys.stdin:
        request = json.loads(line)
        try:
            if request["op"] == "load":
                for path in request["paths"]:
                    with open(path, "rb") as handle:
                        sources[path] = handle.read()
                answer: dict[str, object] = {"ok": True}
            elif request["op"] == "run":
                data = sources[request["path"]]
                gc.collect()
                start, cpu_start = time.perf_counter(), time.process_time()
                out, width, height = arm(data, request["width"], request["height"], request["fit"])
                elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
                if request.get("out"):
                    with open(request["out"], "wb") as handle:
                        handle.write(out)
                peak = peak_rss_kib()
                answer = {
                    "ms": elapsed * 1000,
                    "cpu_ms": cpu * 1000,
                    "width": width,
                    "height": height,
                    "bytes": len(out),
                    "rss_kib": peak,
                }
            else:
                break
        except Exception as exc:
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        proto.write(json.dumps(answer) + "\n")
        proto.flush()


if __name__ == "__main__":
    os.environ.setdefault("VIPS_CONCURRENCY", "1")
    main()
