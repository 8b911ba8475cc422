"""Decoded sources shared by the sizes of one photo: a short-TTL, byte-bounded cache with single flight.

A gallery page asks for several sizes of one photo within a second or so. JPEG entropy decoding
costs nearly the same at every DCT scale and is most of a render, so with this cache on the sizes
share one decode: the first request decodes (in its render slot) and stores the prepared frame
(``pipeline.prepare``: working mode, still in stored orientation); requests arriving meanwhile wait
for it without holding a slot, later ones find it cached.

Which scale is decoded. ``pipeline.draft`` picks, per request, the coarsest DCT scale that keeps
enough pixels for that request's output (its *own* scale). With the cache on, a large JPEG is
decoded at its own scale or at the *shared* scale, whichever is finer: the coarsest DCT reduction
(1/2, 1/4, 1/8) that keeps at least ``MIN_SHARED_EDGE_PX`` on the long edge, which by the draft rule
serves outputs up to about 1200 px. A request whose own scale is coarser box-reduces the shared
frame by the integer factor (``Image.reduce``), then resamples exactly as from its own decode: it
costs what its own decode's resample costs, without the entropy decoding, and measures within
0.15 dB PSNR of it (docs/performance.md). A source too small for any such reduction (long edge
under twice ``MIN_SHARED_EDGE_PX``) decodes every size at its own scale: its decode is cheap next
to the resample, and decoding it whole for a small size cost more than sharing saved (measured on
1600 px photos); its sizes still share when their own scales agree.

The scale depends on the source and the request only, never on what is cached, so a URL renders
the same bytes from a hit as from a miss; it differs from the cache-off render (box instead of DCT
reduction) for the smaller sizes of large JPEGs, so the ETag says which rule made it (``ETAG_MARK``).

Entries are keyed by (scale, decoded mode, source reference, source validator): the mode because
a JPEG is decoded as YCbCr planes for some output kinds and as RGB for others
(``pipeline.decodes_planar``); the reference too, so the cache
serves the sizes of one source as they are asked for, not every copy of the same bytes under other
names. Animations are never held (every frame would be), nor a frame larger than the whole bound.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Protocol, TypeVar

from PIL import Image

from thumbsvc import animation
from thumbsvc.cache import SingleFlight, TTLCache
from thumbsvc.decode import Limits, open_image, pillow_errors
from thumbsvc.geometry import Plan
from thumbsvc.metrics import Metrics
from thumbsvc.options import RenderOptions
from thumbsvc.pipeline import (
    Job,
    Rendered,
    decodes_planar,
    draft,
    draft_at,
    open_job,
    prepare,
    render,
    render_decoded,
)

__all__ = ["Decoded", "DecodedCache", "Planned", "decode", "plan_request", "render_from", "shared_denominator"]

T = TypeVar("T")

# The shared decode keeps at least this many pixels on its long edge: enough, by pipeline.draft's
# rule, for a 1200x900 output, the largest size a gallery page usually asks for.
MIN_SHARED_EDGE_PX = 1600
DENOMINATORS = (8, 4, 2)  # the JPEG decoder's DCT scales below full size, coarsest first
# Part of the ETag while the cache is on: small sizes come from a reduced shared frame.
ETAG_MARK = f"shared-decode-{MIN_SHARED_EDGE_PX}"
# What an entry costs beyond its pixels (key, objects, the image's info dict).
ENTRY_OVERHEAD_BYTES = 4096
# Pillow stores pixels of every other mode (RGB included) in 4 bytes.
_BYTES_PER_PIXEL = {"1": 1, "L": 1, "P": 1, "I;16": 2}


@dataclass(frozen=True, slots=True)
class Planned:
    """One request, planned from its source's header: its job, and the DCT scales of its decode."""

    image: Image.Image  # opened and drafted to the request's own scale; not decoded
    job: Job  # with the scale of the request's own draft
    layout: Plan
    own: int  # DCT denominator pipeline.draft chose for this request alone (1: full size, or not a JPEG)
    shared: int  # denominator decoded (and cached) for it: own, or the shared scale if that is finer
    planar: bool  # decoded as YCbCr planes (pipeline.decodes_planar)
    animated: bool


@dataclass(frozen=True, slots=True)
class Decoded:
    """A prepared frame (``pipeline.prepare``'s output) decoded at 1/``denominator``, never modified."""

    frame: Image.Image
    denominator: int
    scale: float  # decoded pixels per source pixel, exactly (``pipeline.Job.scale``)
    nbytes: int


def plan_request(data: bytes, options: RenderOptions, limits: Limits, accept: str | None) -> Planned:
    """Given source bytes and options, open the header and plan the render; nothing is decoded.

    Raise the errors of ``pipeline.open_job``.
    """
    image, job, layout = open_job(data, options, limits, accept)
    size = image.size
    with pillow_errors():
        animated = animation.is_animated(image)
        planar = not animated and decodes_planar(image, job.kind)
        scale = 1.0 if animated else draft(image, layout, planar=planar)
    own = round(1 / scale)
    job = replace(job, scale=scale)
    shared = shared_denominator(size)
    return Planned(image, job, layout, own, min(own, shared) if shared > 1 else own, planar, animated)


def shared_denominator(size: tuple[int, int]) -> int:
    """The coarsest DCT denominator that keeps at least MIN_SHARED_EDGE_PX on the long edge (1: none does)."""
    long_edge = max(size)
    for denominator in DENOMINATORS:
        if -(-long_edge // denominator) >= MIN_SHARED_EDGE_PX:
            return denominator
    return 1


def decode(data: bytes, planned: Planned, limits: Limits) -> Decoded:
    """Decode the source at the planned shared scale and prepare it; raise the decode errors."""
    image, scale = planned.image, planned.job.scale
    if planned.shared != planned.own:
        # The planned image is drafted for its own request; a JPEG can be drafted only once.
        image = open_image(data, limits)
        with pillow_errors():
            scale = draft_at(image, planned.shared, planar=planned.planar)
    with pillow_errors():
        image.load()
        frame = prepare(image, replace(planned.job, scale=scale))
    return Decoded(frame, planned.shared, scale, frame_bytes(frame, data))


def render_from(decoded: Decoded, planned: Planned, limits: Limits) -> Rendered:
    """Render one request from a frame decoded at its planned shared scale (as fine as its own or finer)."""
    frame = decoded.frame
    factor = planned.own // decoded.denominator
    if factor > 1:
        with pillow_errors():
            frame = frame.reduce(factor)
    # Each reduced pixel covers ``factor`` decoded pixels a side, the last one fewer (as the DCT pads).
    job = replace(planned.job, scale=decoded.scale / factor)
    return render_decoded(frame, job, planned.layout, limits)


def decode_and_render(data: bytes, planned: Planned, limits: Limits) -> tuple[Decoded, Rendered | Exception]:
    """Decode for everyone, then render this request; its own render error does not spoil the decode."""
    decoded = decode(data, planned, limits)
    try:
        return decoded, render_from(decoded, planned, limits)
    except Exception as exc:
        return decoded, exc


def frame_bytes(frame: Image.Image, data: bytes) -> int:
    """The memory a frame holds: its pixels, the metadata it carries, and for an MPO its source bytes."""
    held = frame.width * frame.height * _BYTES_PER_PIXEL.get(frame.mode, 4)
    held += sum(len(value) for value in frame.info.values() if isinstance(value, bytes))
    # A multi-picture file keeps its source open for its other pictures.
    return held + (len(data) if frame.format == "MPO" else 0)


class Runner(Protocol):
    """Runs blocking work in a worker thread under a render slot (``Admission.run``), holding
    ``nbytes`` of the memory budget."""

    def __call__(self, work: Callable[[], T], nbytes: int, /) -> Awaitable[T]: ...


class Prober(Protocol):
    """Runs header work in a worker thread that holds no render slot."""

    def __call__(self, work: Callable[[], T], /) -> Awaitable[T]: ...


class Estimator(Protocol):
    """The memory a render of ``planned`` holds: with its own decode (``decodes``), or from a decoded frame."""

    def __call__(self, planned: Planned, decodes: bool, /) -> int: ...


class DecodedCache:
    """The decoded frames of one process, and the decodes in flight. ``max_bytes`` or ``ttl_s`` of 0: off."""

    def __init__(
        self, max_bytes: int, ttl_s: float, metrics: Metrics, *, on_evict: Callable[[str], None] | None = None
    ) -> None:
        self.frames: TTLCache[Decoded] = TTLCache(max_bytes, ttl_s, on_evict=on_evict)
        self.flight: SingleFlight[Decoded] = SingleFlight()
        self.metrics = metrics

    @property
    def enabled(self) -> bool:
        return self.frames.enabled

    async def render(
        self,
        source_key: str,
        data: bytes,
        options: RenderOptions,
        accept: str | None,
        limits: Limits,
        *,
        run: Runner,
        probe: Prober,
        estimate: Estimator | None = None,
    ) -> Rendered:
        """Return the thumbnail from a cached frame, from a decode in flight, or from a decode of its own.

        ``source_key`` names the source (reference and validator); ``run`` runs pixel work under a
        render slot, ``probe`` reads the header in a thread without one; ``estimate`` (with a memory
        budget) says what each kind of render holds, so a render from a shared frame is not charged
        for a decode it does not do. Raise the decode and render errors.
        """

        def plan() -> tuple[Planned, int, int]:
            planned = plan_request(data, options, limits, accept)
            if estimate is None:
                return planned, 0, 0
            return planned, estimate(planned, True), 0 if planned.animated else estimate(planned, False)

        planned, decode_bytes, reuse_bytes = await probe(plan)
        if planned.animated:
            self.metrics.decodes.inc()
            return await run(lambda: render(data, options, limits, accept), decode_bytes)
        key = f"{planned.shared}|{'YCbCr' if planned.planar else '-'}|{source_key}"
        cached = self.frames.get(key)
        if cached is not None:
            self.metrics.cache_hits.labels("decoded").inc()
            return await run(lambda: render_from(cached, planned, limits), reuse_bytes)
        self.metrics.cache_misses.labels("decoded").inc()
        own: list[Rendered | Exception] = []

        async def lead() -> Decoded:
            self.metrics.decodes.inc()
            fresh, rendered = await run(lambda: decode_and_render(data, planned, limits), decode_bytes)
            self.frames.put(key, fresh, fresh.nbytes + len(key) + ENTRY_OVERHEAD_BYTES)
            own.append(rendered)
            return fresh

        shared, joined = await self.flight.run(key, lead)
        if joined:
            self.metrics.flight_joins.labels("decoded").inc()
            return await run(lambda: render_from(shared, planned, limits), reuse_bytes)
        if isinstance(own[0], Exception):
            raise own[0]
        return own[0]

    def clear(self) -> None:
        self.frames.clear()
