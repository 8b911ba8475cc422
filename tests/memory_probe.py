"""Peak memory of one render, measured in a fresh process: ``python -m tests.memory_probe FILE W H FIT FORMAT``.

Imports the pipeline, renders a tiny image of the same format and mode first (so lazily loaded
modules and encoders are not counted), resets the kernel's high-water mark, renders FILE on a
thread of its own (as the service does), and prints one JSON object: the growth of the peak
resident set over the resident set before the render, in bytes. Exit status 3 if the kernel
cannot reset the high-water mark (``/proc/self/clear_refs``).
"""

from __future__ import annotations

import io
import json
import sys
import threading
from pathlib import Path

from PIL import Image

from thumbsvc.decode import Limits, configure
from thumbsvc.options import make_options
from thumbsvc.pipeline import render


def status_bytes(field: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


def main(argv: list[str]) -> None:
    path, width, height, fit, fmt = argv
    configure(50_000_000)
    limits = Limits()
    options = make_options(width=int(width), height=int(height), fit=fit, format=fmt)
    data = Path(path).read_bytes()
    with Image.open(io.BytesIO(data)) as opened:
        kind, mode = opened.format, opened.mode
    small = io.BytesIO()
    Image.new(mode, (64, 48)).save(small, kind)
    render(small.getvalue(), options, limits)
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        sys.exit(3)
    before = status_bytes("VmRSS")
    worker = threading.Thread(target=render, args=(data, options, limits))
    worker.start()
    worker.join()
    print(json.dumps({"growth_bytes": status_bytes("VmHWM") - before, "before_bytes": before}))


if __name__ == "__main__":
    main(sys.argv[1:])
