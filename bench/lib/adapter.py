"""The only code in bench/ that calls thumbsvc's render internals: update it when they move.

Everything else in the suite goes through public interfaces: ``thumbsvc serve`` over loopback
HTTP, ``thumbsvc.client.URLSigner``, ``thumbsvc.config.Settings`` and ``thumbsvc.app.create_app``.

- ``renderer`` is what the in-process workload times: one thumbnail from source bytes, as the
  service's render step makes it (today ``thumbsvc.pipeline.render(data, options, limits, accept)``).
- ``stages`` is what ``bench floors`` times: the same render cut at its stage boundaries.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Output:
    data: bytes
    width: int
    height: int


def renderer() -> Callable[..., Output]:
    """Return ``run(data, *, width, height, fit, quality, **options) -> Output``: thumbsvc's render of one thumbnail.

    Set-up (settings, Pillow's limits) happens here, once; ``run`` is what is timed. ``options`` are
    the client's keyword arguments (``gravity="smart"``, ``format="webp"``); the format defaults to JPEG.
    """
    from thumbsvc.config import Settings
    from thumbsvc.decode import Limits, configure
    from thumbsvc.options import make_options
    from thumbsvc.pipeline import render

    settings = Settings()  # defaults: the in-process workloads measure the render, not a configuration
    configure(settings.max_source_pixels)
    limits = Limits.from_settings(settings)

    def run(data: bytes, *, width: int, height: int, fit: str, quality: int, **options: Any) -> Output:
        options.setdefault("format", "jpeg")
        made = make_options(width=width, height=height, fit=fit, quality=quality, **options)
        rendered = render(data, made, limits, None)
        return Output(rendered.data, rendered.width, rendered.height)

    return run


def stages(data: bytes, *, width: int, height: int, fit: str, quality: int) -> dict[str, Callable[[], object]]:
    """Given one JPEG job, return a callable per stage of its render, each doing only that stage.

    - ``decode``: header, then the decode at the DCT scale the render picks (1/1 to 1/8);
    - ``finish``: everything between decode and encode (planes, resampling, orientation, colour);
    - ``encode``: the encoder thumbsvc uses on the finished pixels (progressive from 50 000 px);
    - ``encode_baseline``: the same pixels as baseline JPEG with standard Huffman tables (libvips's default);
    - ``render``: the whole render, end to end (what ``renderer`` runs).

    The inputs each stage needs are made here, once, outside the callables.
    """
    from dataclasses import replace

    from thumbsvc import pipeline
    from thumbsvc.decode import Limits, configure
    from thumbsvc.encoding import encode
    from thumbsvc.options import make_options

    configure(50_000_000)
    limits = Limits()
    options = make_options(width=width, height=height, fit=fit, format="jpeg", quality=quality)

    def opened() -> tuple[Any, Any, Any]:
        image, job, layout = pipeline.open_job(data, options, limits)
        scale = pipeline.draft(image, layout, planar=pipeline.decodes_planar(image, job.kind))
        return image, replace(job, scale=scale), layout

    def decode() -> Any:
        image, job, _ = opened()
        image.load()
        return pipeline.prepare(image, job)

    _, job, layout = opened()
    frame = decode()
    finished = pipeline.finish(frame, job, layout)
    return {
        "decode": decode,
        "finish": lambda: pipeline.finish(frame, job, layout),
        "encode": lambda: encode(finished.copy(), job.kind, quality),
        "render": lambda: pipeline.render(data, options, limits, None),
        "encode_baseline": lambda: finished.copy().save(io.BytesIO(), "JPEG", quality=quality),
    }
