"""The only code in bench/ that calls thumbsvc's render internals: update it when they move.

Everything else in the suite goes through public interfaces: ``thumbsvc serve`` over loopback
HTTP, ``thumbsvc.client.URLSigner``, ``thumbsvc.config.Settings`` and ``thumbsvc.app.create_app``.

- ``renderer`` is what the in-process workload times: one thumbnail from source bytes, as the
  service's render step makes it (a ``pipeline.Job`` through ``HEADER_STEPS`` then ``pixel_steps``,
  as ``pipeline.render`` and the service run it), with the operator's watermarks loaded as the
  service loads them (``filters.parse_watermarks``, ``filters.Watermark.load``).
- ``stages`` is what ``bench floors`` times: the same render cut at its step boundaries
  (``pipeline.HEADER_STEPS``, then ``decode``, then the steps after it).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from thumbsvc import pipeline


@dataclass(frozen=True)
class Output:
    data: bytes
    width: int
    height: int


def renderer(watermarks: str = "", files: Mapping[str, bytes] | None = None) -> Callable[..., Output]:
    """Return ``run(data, *, width, height, fit, quality, **options) -> Output``: thumbsvc's render of one thumbnail.

    Set-up (settings, Pillow's limits, watermarks) happens here, once; ``run`` is what is timed.
    ``options`` are the client's keyword arguments (``gravity="smart"``, ``format="webp"``,
    ``watermark="logo"``); the format defaults to JPEG. ``watermarks`` is a ``THUMBSVC_WATERMARKS``
    text whose files are ``files[path]`` (the service reads them from its media root at start-up).
    """
    from thumbsvc import pipeline
    from thumbsvc.config import Settings
    from thumbsvc.decode import Limits, configure
    from thumbsvc.options import make_options

    settings = Settings()  # defaults: the in-process workloads measure the render, not a configuration
    configure(settings.max_source_pixels)
    limits = Limits(
        max_source_pixels=settings.max_source_pixels,
        max_frames=settings.max_frames,
        max_animation_pixels=settings.max_animation_pixels,
        max_output_px=settings.max_output_px,
    )

    loaded = {}
    if watermarks:
        from thumbsvc.filters import Watermark, parse_watermarks

        loaded = {
            name: Watermark.load(spec, (files or {})[spec.path]) for name, spec in parse_watermarks(watermarks).items()
        }

    def run(data: bytes, *, width: int, height: int, fit: str, quality: int, **options: Any) -> Output:
        options.setdefault("format", "jpeg")
        made = make_options(width=width, height=height, fit=fit, quality=quality, **options)
        if not hasattr(pipeline, "run"):  # a checkout from before the steps (--tree/--alt of an old commit)
            rendered = pipeline.render(data, made, limits)
            return Output(rendered.data, rendered.width, rendered.height)
        job = pipeline.run(pipeline.Job(data, made, limits, watermarks=loaded), pipeline.HEADER_STEPS)
        rendered = pipeline.run(job, pipeline.pixel_steps(job)).result
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
    from thumbsvc import pipeline
    from thumbsvc.decode import Limits, configure
    from thumbsvc.encoding import encode
    from thumbsvc.options import make_options

    configure(50_000_000)
    limits = Limits()
    options = make_options(width=width, height=height, fit=fit, format="jpeg", quality=quality)
    after_decode = pipeline.STILL_STEPS[1:-1]  # reduce ... compose: between the decode and the encoder

    def planned() -> pipeline.Job:
        return pipeline.run(pipeline.Job(data, options, limits), pipeline.HEADER_STEPS)

    def decode() -> pipeline.Job:
        return pipeline.run(planned(), (pipeline.decode,))

    decoded = decode()

    def finish() -> pipeline.Job:
        job = planned()
        job.decoded = decoded.decoded
        return pipeline.run(job, (pipeline.decode, *after_decode))

    finished = finish().picture
    return {
        "decode": decode,
        "finish": finish,
        "encode": lambda: encode(finished.copy(), "jpeg", quality),
        "render": lambda: pipeline.render(data, options, limits),
        "encode_baseline": lambda: finished.copy().save(io.BytesIO(), "JPEG", quality=quality),
    }
