"""One benchmark arm in its own process: reads jobs as JSON lines on stdin, answers on stdout.

Run as ``python -m bench.worker ARM`` from the repository root (the pyvips arm runs with the
pyvips venv's interpreter). Each arm maps source bytes already in memory to encoded JPEG bytes;
only that is timed. Requests::

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
Arm = Callable[[bytes, int, int, str], tuple[bytes, int, int]]


def _pillow_geometry(size: tuple[int, int], width: int, height: int, fit: str):  # type: ignore[no-untyped-def]
    """Return (output size, float source box) for cover / contain, never enlarging."""
    from bench.workloads import expected_size, source_box

    out = expected_size(size[0], size[1], width, height, fit)
    return out, source_box(size[0], size[1], out[0], out[1], fit)


def pillow_arm(draft: float | None = None) -> Arm:
    """Plain Pillow: open -> exif_transpose -> LANCZOS resize -> save q85.

    With ``draft``, ask the JPEG decoder for a DCT-scaled image of at least ``draft`` times
    the output size first and resample with ``reducing_gap=2`` (what ``Image.thumbnail`` does).
    """
    from PIL import Image, ImageOps

    def run(data: bytes, width: int, height: int, fit: str) -> tuple[bytes, int, int]:
        image = Image.open(io.BytesIO(data))
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


def thumbsvc_arm() -> Arm:
    """thumbsvc's own render path, exactly as the server calls it (from $THUMBSVC_BENCH_TREE if set)."""
    tree = os.environ.get("THUMBSVC_BENCH_TREE")
    if tree:
        sys.path.insert(0, tree)
    from thumbsvc.config import Settings
    from thumbsvc.decode import configure
    from thumbsvc.options import make_options
    from thumbsvc.pipeline import Limits, render

    settings = Settings()
    configure(settings.max_source_pixels)
    limits = Limits.from_settings(settings)

    def run(data: bytes, width: int, height: int, fit: str) -> tuple[bytes, int, int]:
        options = make_options(width=width, height=height, fit=fit, format="jpeg", quality=QUALITY)
        rendered = render(data, options, limits)
        return rendered.data, rendered.width, rendered.height

    return run


def pyvips_arm(progressive: bool = False) -> Arm:
    """pyvips ``thumbnail`` (shrink-on-load, centre crop for cover), one thread, operation cache off.

    With ``progressive``, ``jpegsave`` writes progressive JPEG (``interlace``), as thumbsvc does from
    50 000 px; the default is libvips's own default, baseline without optimised Huffman tables.
    """
    import pyvips

    pyvips.cache_set_max(0)
    pyvips.cache_set_max_mem(0)

    def run(data: bytes, width: int, height: int, fit: str) -> tuple[bytes, int, int]:
        if fit == "cover":
            image = pyvips.Image.thumbnail_buffer(data, width, height=height, crop="centre")
        else:
            image = pyvips.Image.thumbnail_buffer(data, width, height=height)
        out = image.jpegsave_buffer(Q=QUALITY, keep="none", interlace=progressive)
        return out, image.width, image.height

    return run


ARMS: dict[str, Callable[[], Arm]] = {
    "thumbsvc": thumbsvc_arm,
    "pillow": pillow_arm,
    "pillow-draft": lambda: pillow_arm(draft=1.0),
    "pillow-draft2": lambda: pillow_arm(draft=2.0),
    "pyvips": pyvips_arm,
    "pyvips-progressive": lambda: pyvips_arm(progressive=True),
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
    name = sys.argv[1]
    # Keep the protocol channel clean: anything a library prints goes to stderr.
    proto = sys.stdout
    sys.stdout = sys.stderr
    arm = ARMS[name]()
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
