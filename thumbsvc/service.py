"""The request pipeline without HTTP: path in, thumbnail (or an error from errors.py) out.

``Thumbnailer.thumbnail`` runs the steps of DESIGN.md in order: result cache → single
flight → admission (a queue place, before any source traffic) → source cache and single
flight → render in a worker thread while holding a render slot → store the result.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TypeVar

import anyio.to_thread
from anyio import CapacityLimiter

from thumbsvc import memory
from thumbsvc.admission import Admission
from thumbsvc.cache import SingleFlight, TTLCache
from thumbsvc.config import Settings
from thumbsvc.decode import Limits
from thumbsvc.decoded import ETAG_MARK, Decoded, DecodedCache
from thumbsvc.encoding import negotiate
from thumbsvc.errors import BadRequest, Forbidden
from thumbsvc.metrics import Metrics
from thumbsvc.options import RenderOptions
from thumbsvc.pipeline import RENDER_VERSION, render
from thumbsvc.signing import PathSigner
from thumbsvc.sources import SourceImage, Sources, is_remote
from thumbsvc.sources.local import LocalSource
from thumbsvc.urls import ThumbPath, split_path

logger = logging.getLogger("thumbsvc")

# What an entry costs beyond its bytes (key, ETag, objects), so tiny entries cannot flood the cache.
ENTRY_OVERHEAD_BYTES = 256

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ThumbRequest:
    path: ThumbPath
    accept: str | None
    bucket: str  # the Accept class for f:auto, "" otherwise

    @property
    def options(self) -> RenderOptions:
        return self.path.options

    @property
    def cache_key(self) -> str:
        return f"{self.path.payload}|{self.bucket}"


@dataclass(frozen=True, slots=True)
class Thumbnail:
    data: bytes
    media_type: str
    etag: str
    vary_accept: bool


@dataclass(slots=True)
class Timing:
    """What one request cost, for the access log: only the request that did the work has numbers."""

    source: str = "-"  # source cache: HIT, MISS or JOIN ("-" when no source was needed)
    fetch_s: float | None = None
    render_s: float | None = None


@dataclass(frozen=True, slots=True)
class Served:
    thumbnail: Thumbnail
    cache: str  # HIT (result cache), MISS (rendered for this request) or JOIN (shared an identical request's render)
    timing: Timing = field(default_factory=Timing)


class Thumbnailer:
    """Verify, fetch and render. One per process; holds the loaders, the caches and admission control."""

    def __init__(self, settings: Settings, metrics: Metrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics if metrics is not None else Metrics()
        self.limits = Limits.from_settings(settings)
        self.signer = PathSigner(settings.signing_keys)
        self.admission = Admission(
            self.metrics,
            slots=settings.render_slots,
            queue_size=settings.queue_size,
            timeout_s=settings.queue_timeout_s,
            memory_budget=settings.render_memory_budget,
        )
        # Header probes (the memory budget's, the playground's) run in threads of their own, never on
        # anyio's default limiter and never waiting behind the render slots.
        self.render_limiter = CapacityLimiter(settings.render_slots)
        self.results: TTLCache[Thumbnail] = TTLCache(
            settings.cache_bytes, settings.cache_ttl_s, on_evict=partial(self._evicted, "result")
        )
        self.result_flight: SingleFlight[Thumbnail] = SingleFlight()
        self.source_cache: TTLCache[SourceImage] = TTLCache(
            settings.source_cache_bytes, settings.source_cache_ttl_s, on_evict=partial(self._evicted, "source")
        )
        self.source_flight: SingleFlight[SourceImage] = SingleFlight()
        self.decoded = DecodedCache(
            settings.decoded_cache_bytes,
            settings.decoded_cache_ttl_s,
            self.metrics,
            on_evict=partial(self._evicted, "decoded"),
        )
        # Small sizes render from a shared decode while that cache is on: their bytes follow another rule.
        self.render_version = f"{RENDER_VERSION}+{ETAG_MARK}" if self.decoded.enabled else RENDER_VERSION
        root = settings.effective_media_root
        local = LocalSource(root, max_bytes=settings.max_source_bytes) if root else None
        remote = None
        if settings.allowed_sources and not settings.dev_mode:
            # Imported only when remote sources are on: httpx and what it loads are 7 MiB of an idle process.
            from thumbsvc.sources.http import FetchPolicy, HttpSource

            remote = HttpSource(
                FetchPolicy(
                    allowed_sources=settings.allowed_sources,
                    allow_private_networks=settings.allow_private_networks,
                    connect_timeout_s=settings.connect_timeout_s,
                    fetch_timeout_s=settings.fetch_timeout_s,
                    max_redirects=settings.max_redirects,
                    max_source_bytes=settings.max_source_bytes,
                )
            )
        self.sources = Sources(local, remote)

    def parse(self, raw_path: str, accept: str | None) -> ThumbRequest:
        """Given the raw request path, return the verified request.

        Raise ``BadRequest`` for a malformed path and ``Forbidden`` for a bad signature.
        The signature is checked on the exact bytes that arrived, before any option is trusted.
        """
        signature, _, payload = raw_path.lstrip("/").partition("/")
        if not payload or not self.signer.verify(payload, signature):
            raise Forbidden("bad signature", public_message="Invalid signature")
        try:
            path = split_path(raw_path)
        except ValueError as exc:
            raise BadRequest(str(exc), public_message=f"Malformed thumbnail URL: {exc}") from exc
        box_w, box_h = path.options.box
        limit = self.settings.max_output_px
        if (box_w or 0) > limit or (box_h or 0) > limit:
            raise BadRequest(f"box {box_w}x{box_h}", public_message=f"Output size is limited to {limit} px a side")
        bucket = negotiate(accept) if path.options.format == "auto" else ""
        return ThumbRequest(path, accept, bucket)

    async def thumbnail(self, request: ThumbRequest) -> Served:
        """Return the thumbnail: from the result cache, from an identical request in flight, or rendered now.

        Raise ``Overloaded`` when admission refuses the work, and the source and render errors otherwise.
        """
        key = request.cache_key
        cached = self.results.get(key)
        if cached is not None:
            self.metrics.cache_hits.labels("result").inc()
            return Served(cached, "HIT")
        self.metrics.cache_misses.labels("result").inc()
        timing = Timing()
        thumb, joined = await self.result_flight.run(key, partial(self._produce, request, timing))
        if joined:
            self.metrics.flight_joins.labels("result").inc()
            return Served(thumb, "JOIN")
        return Served(thumb, "MISS", timing)

    async def etag(self, request: ThumbRequest) -> tuple[str, str, Timing]:
        """Return the ETag ``thumbnail`` would answer with, without rendering; where it came from
        (HIT: the result cache, REVALIDATED: the source's validator) and what finding it cost.

        From the result cache if the thumbnail is there, else from the source's validator: the source
        is loaded (under admission, as for a render, and into the source cache), never decoded. So
        a conditional request for a thumbnail the client already holds costs a fetch, not a render.
        Raise the admission and source errors.
        """
        cached = self.results.get(request.cache_key)
        if cached is not None:
            self.metrics.cache_hits.labels("result").inc()
            return cached.etag, "HIT", Timing()
        timing = Timing()
        async with self.admission.admit():
            source = await self.load(request.path.source, timing)
        return make_etag(request, source.validator, self.render_version), "REVALIDATED", timing

    async def _produce(self, request: ThumbRequest, timing: Timing) -> Thumbnail:
        budget = self.admission.memory_budget > 0
        async with self.admission.admit():
            source = await self.load(request.path.source, timing)

            async def run(work: Callable[[], T], nbytes: int) -> T:
                return await self.admission.run(self._render, work, timing, nbytes=nbytes)

            if self.decoded.enabled:
                # The decoded-source cache plans the request from its header and says, per kind of render
                # (its own decode, or from a shared frame), what the memory budget is charged.
                rendered = await self.decoded.render(
                    f"{request.path.source}|{source.validator}",
                    source.data,
                    request.options,
                    request.accept,
                    self.limits,
                    run=run,
                    probe=self._probe,
                    estimate=memory.decoded_render_bytes if budget else None,
                )
                self._sizes("decoded")
            else:
                nbytes = await self._measure(source, request) if budget else 0
                self.metrics.decodes.inc()
                work = partial(render, source.data, request.options, self.limits, request.accept)
                rendered = await run(work, nbytes)
        thumb = Thumbnail(
            data=rendered.data,
            media_type=rendered.media_type,
            etag=make_etag(request, source.validator, self.render_version),
            vary_accept=request.options.format == "auto",
        )
        self.results.put(request.cache_key, thumb, len(thumb.data) + len(request.cache_key) + ENTRY_OVERHEAD_BYTES)
        self._sizes("result")
        return thumb

    def _render(self, work: Callable[[], T], timing: Timing) -> T:
        # Runs in a worker thread; prometheus-client metrics are thread-safe.
        self.metrics.renders.inc()
        started = time.perf_counter()
        try:
            return work()
        except BaseException:
            self.metrics.render_errors.inc()
            raise
        finally:
            timing.render_s = time.perf_counter() - started
            self.metrics.render_seconds.observe(timing.render_s)

    async def load(self, ref: str, timing: Timing | None = None) -> SourceImage:
        """Return the source's bytes: from the source cache, from an identical fetch in flight, or fetched now."""
        timing = timing if timing is not None else Timing()
        cached = self.source_cache.get(ref)
        if cached is not None:
            self.metrics.cache_hits.labels("source").inc()
            timing.source = "HIT"
            return cached
        self.metrics.cache_misses.labels("source").inc()
        source, joined = await self.source_flight.run(ref, partial(self._fetch, ref, timing))
        if joined:
            self.metrics.flight_joins.labels("source").inc()
            timing.source = "JOIN"
        return source

    async def _fetch(self, ref: str, timing: Timing) -> SourceImage:
        kind = "remote" if is_remote(ref) else "local"
        started = time.perf_counter()
        source = await self.sources.fetch(ref)
        timing.source = "MISS"
        timing.fetch_s = time.perf_counter() - started
        self.metrics.fetch_seconds.labels(kind).observe(timing.fetch_s)
        self.metrics.source_bytes.labels(kind).inc(len(source.data))
        self.source_cache.put(ref, source, len(source.data) + len(ref) + ENTRY_OVERHEAD_BYTES)
        self._sizes("source")
        return source

    async def _measure(self, source: SourceImage, request: ThumbRequest) -> int:
        """Return the render's estimated working memory from the source's header (for the memory budget).

        Used while the decoded-source cache is off (the render decodes at its own scale); with it on,
        ``DecodedCache.render`` estimates from its own plan. Raise the errors the render would raise
        from the header.
        """

        def probe() -> int:
            return memory.estimate(source.data, request.options, self.limits, request.accept, shared=False)

        return await anyio.to_thread.run_sync(probe, limiter=self.render_limiter)

    async def _probe(self, work: Callable[[], T]) -> T:
        """Run header work in a thread that holds no render slot."""
        return await anyio.to_thread.run_sync(work, limiter=self.render_limiter)

    def _evicted(self, name: str, reason: str) -> None:
        self.metrics.cache_evictions.labels(name, reason).inc()
        self._sizes(name)

    def _sizes(self, name: str) -> None:
        cache: TTLCache[Thumbnail] | TTLCache[SourceImage] | TTLCache[Decoded] = (
            self.results if name == "result" else self.source_cache if name == "source" else self.decoded.frames
        )
        self.metrics.cache_bytes.labels(name).set(cache.bytes)
        self.metrics.cache_entries.labels(name).set(len(cache))

    async def aclose(self) -> None:
        self.results.clear()
        self.source_cache.clear()
        self.decoded.clear()
        self._sizes("result")
        self._sizes("source")
        self._sizes("decoded")
        await self.sources.aclose()


def make_etag(request: ThumbRequest, validator: str, render_version: str = RENDER_VERSION) -> str:
    """A strong ETag from the inputs only: same URL and source give the same tag on every instance."""
    digest = hashlib.blake2b(digest_size=16)
    for part in (render_version, request.cache_key, validator):
        digest.update(part.encode("utf-8") + b"\x00")
    return f'"{digest.hexdigest()}"'
